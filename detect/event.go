package detect

import (
	"net/netip"
	"time"
)

// Event is one thing a security function saw and decided: a proxied request,
// a DNS query, a relayed mail, a WAF decision, a correlation result. Every
// function emits exactly one Event per unit of work to its [Sink].
//
// Event is a plain value: copy it freely. Fields left at their zero value are
// omitted from the ECS encoding. Slices and maps held by an Event must not be
// modified after it was passed to a Sink.
type Event struct {
	// Time is when the event happened (ECS @timestamp). The zero value is
	// replaced by the emitter's clock where the pipeline sets it; encoders
	// write it as RFC 3339 with nanoseconds in UTC.
	Time time.Time
	// ID is an optional unique event id (event.id).
	ID string

	// Module is the emitting function: "proxy", "dns", "mail", "waf",
	// "detect", "appliance" (event.module).
	Module string
	// Dataset names the log within the module, e.g. "proxy.access"
	// (event.dataset). Empty is omitted.
	Dataset string
	// Kind is the ECS event.kind: "event", "alert", "metric", "state",
	// "signal" or "pipeline_error". Empty encodes as "event".
	Kind string
	// Category is the ECS event.category, e.g. "web", "network", "email",
	// "intrusion_detection", "malware".
	Category string
	// Type is the ECS event.type, e.g. "access", "connection", "denied",
	// "allowed", "info".
	Type string
	// Action is what happened in the module's words (event.action), e.g.
	// "http_request", "dns_query", "smtp_delivery".
	Action string
	// Outcome is "success", "failure" or "unknown" (event.outcome).
	Outcome string
	// Severity is the judged severity (event.severity); see [Severity].
	Severity Severity
	// Duration is how long the unit of work took (event.duration, in ns).
	Duration time.Duration

	// Tenant is the connecting body's id (organization.id); empty when the
	// source belongs to no tenant (e.g. the internet).
	Tenant string
	// Client is the source address and port (source.ip, source.port).
	Client netip.AddrPort
	// Terminal identifies the end terminal when known, e.g. from
	// X-Forwarded-For behind a municipality's own proxy (host.name / host.ip).
	Terminal string
	// Dest is the destination address and port (destination.ip/port).
	Dest netip.AddrPort
	// DestDomain is the destination name (destination.domain).
	DestDomain string
	// BytesIn and BytesOut count bytes received from and sent to the
	// client (source.bytes / destination.bytes).
	BytesIn, BytesOut int64

	// URL is the full request URL (url.full); HTTP holds method, status and
	// user agent.
	URL  string
	HTTP HTTPInfo
	// DNS holds the query and answer of a DNS event.
	DNS DNSInfo
	// Email holds the envelope and headers of a mail event.
	Email EmailInfo
	// File describes an inspected file (file.name, file.hash.sha256).
	File FileInfo

	// Verdict is the decision taken (rule.*, event.action verdict label).
	Verdict Verdict
	// Message is a short human text (message).
	Message string
	// Labels are extra key/value pairs (labels.*). Keys should be
	// lower-case ASCII; duplicate keys keep the last value when decoded.
	Labels []Label
}

// HTTPInfo is the HTTP part of an event (http.*, user_agent.original).
type HTTPInfo struct {
	Method    string
	Status    int
	UserAgent string
	Referrer  string
}

// DNSInfo is the DNS part of an event (dns.*).
type DNSInfo struct {
	QName    string
	QType    string
	RCode    string
	Answers  []string
	ID       uint16
	Resolved []netip.Addr
}

// EmailInfo is the mail part of an event (email.*).
type EmailInfo struct {
	From      string
	To        []string
	Subject   string
	MessageID string
	Direction string // "inbound" or "outbound"
}

// FileInfo describes a file seen in a transfer (file.*).
type FileInfo struct {
	Name   string
	Size   int64
	SHA256 string
	Mime   string
}

// Label is one extra key/value pair of an event.
type Label struct {
	Key, Value string
}

// Label returns the value of the label named key and whether it is present.
func (e *Event) Label(key string) (string, bool) {
	for i := len(e.Labels) - 1; i >= 0; i-- {
		if e.Labels[i].Key == key {
			return e.Labels[i].Value, true
		}
	}
	return "", false
}
