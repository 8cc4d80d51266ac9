package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jichitai/seccloud/detect"
)

// Reasons an external event is dropped (the keys of Stats.Dropped).
const (
	DropMalformed = "malformed"    // not parseable as the format
	DropTooLarge  = "too_large"    // a line, message or field over the limits
	DropUTF8      = "invalid_utf8" // bytes that are not UTF-8
	DropTime      = "time"         // a timestamp too far in the past or future
	DropIgnored   = "ignored"      // a valid record of a kind not ingested (EVE stats, flow, ...)
)

// DropError is why one record was dropped; Reason is one of the Drop*
// constants.
type DropError struct {
	Reason string
	Err    error
}

func (e *DropError) Error() string { return "ingest: " + e.Reason + ": " + e.Err.Error() }
func (e *DropError) Unwrap() error { return e.Err }

func drop(reason, format string, args ...any) error {
	return &DropError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Limits bound what a parser accepts. The zero value of each field means
// its default.
type Limits struct {
	// MaxField is the longest string field accepted (URL, signature,
	// message, ...); default 8 KiB. An event with a longer field is dropped
	// (DropTooLarge), not truncated: a hostile record must not pass as a
	// shortened, plausible one.
	MaxField int
	// MaxPast and MaxFuture bound an event's time around now; defaults
	// 7 days and 1 hour. Outside them the event is dropped (DropTime).
	MaxPast, MaxFuture time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxField <= 0 {
		l.MaxField = 8 << 10
	}
	if l.MaxPast <= 0 {
		l.MaxPast = 7 * 24 * time.Hour
	}
	if l.MaxFuture <= 0 {
		l.MaxFuture = time.Hour
	}
	return l
}

func (l Limits) checkTime(t, now time.Time) error {
	if t.Before(now.Add(-l.MaxPast)) || t.After(now.Add(l.MaxFuture)) {
		return drop(DropTime, "time %s is outside [now-%v, now+%v]", t.UTC().Format(time.RFC3339), l.MaxPast, l.MaxFuture)
	}
	return nil
}

// checkFields drops an event with an over-long string field.
func (l Limits) checkFields(ss ...string) error {
	for _, s := range ss {
		if len(s) > l.MaxField {
			return drop(DropTooLarge, "field of %d bytes (limit %d)", len(s), l.MaxField)
		}
	}
	return nil
}

// eve is the subset of a Suricata EVE JSON record that becomes an event.
type eve struct {
	Timestamp string          `json:"timestamp"`
	EventType string          `json:"event_type"`
	FlowID    json.Number     `json:"flow_id"`
	SrcIP     string          `json:"src_ip"`
	SrcPort   int             `json:"src_port"`
	DestIP    string          `json:"dest_ip"`
	DestPort  int             `json:"dest_port"`
	Proto     string          `json:"proto"`
	AppProto  string          `json:"app_proto"`
	Host      string          `json:"host"`
	Alert     *eveAlert       `json:"alert"`
	HTTP      *eveHTTP        `json:"http"`
	DNS       json.RawMessage `json:"dns"`
	TLS       *struct {
		SNI string `json:"sni"`
	} `json:"tls"`
	Anomaly *struct {
		Type  string `json:"type"`
		Event string `json:"event"`
	} `json:"anomaly"`
	FileInfo *struct {
		Filename string `json:"filename"`
		Magic    string `json:"magic"`
		SHA256   string `json:"sha256"`
		Size     int64  `json:"size"`
	} `json:"fileinfo"`
}

type eveAlert struct {
	Action      string `json:"action"`
	SignatureID int64  `json:"signature_id"`
	Rev         int    `json:"rev"`
	Signature   string `json:"signature"`
	Category    string `json:"category"`
	Severity    int    `json:"severity"`
}

type eveHTTP struct {
	Hostname  string `json:"hostname"`
	URL       string `json:"url"`
	Method    string `json:"http_method"`
	Status    int    `json:"status"`
	UserAgent string `json:"http_user_agent"`
	Referer   string `json:"http_refer"`
	Length    int64  `json:"length"`
}

type eveDNS struct {
	Type   string `json:"type"`
	RRName string `json:"rrname"`
	RRType string `json:"rrtype"`
	RCode  string `json:"rcode"`
	ID     uint16 `json:"id"`
}

// EVE timestamps: 2026-11-02T10:00:00.123456+0900.
var eveLayouts = []string{"2006-01-02T15:04:05.999999999-0700", time.RFC3339Nano}

// ParseEVE turns one Suricata EVE JSON record into an event of module
// "ids": alerts (event_type "alert", also "drop") become Kind "alert"
// events with the verdict block (alert.action "blocked") or report
// ("allowed": the IDS saw it, the traffic passed), rule id
// "suricata-<signature_id>", the signature as rule name and message, and the
// Suricata severity in labels.ids_severity (it is never the seccloud level);
// "anomaly" records become events with Kind "alert" too; "fileinfo" records
// with a sha256 become file events (file.*) for the threat-intel hash rules.
// Other event types (flow, stats, netflow, ...) are DropIgnored. The tenant is left
// to the caller. Errors are *DropError.
func ParseEVE(line []byte, now time.Time, lim Limits) (detect.Event, error) {
	lim = lim.withDefaults()
	line = bytes.TrimSpace(line)
	if !utf8.Valid(line) {
		return detect.Event{}, drop(DropUTF8, "EVE record is not valid UTF-8")
	}
	var r eve
	if err := json.Unmarshal(line, &r); err != nil {
		return detect.Event{}, drop(DropMalformed, "EVE: %v", err)
	}
	var kind string
	switch r.EventType {
	case "alert", "drop":
		if r.Alert == nil {
			return detect.Event{}, drop(DropMalformed, "EVE %s record without alert", r.EventType)
		}
		kind = "alert"
	case "anomaly":
		kind = "alert"
	case "fileinfo":
		// Files the IDS saw, by hash: the default malware rule checks
		// file.hash.sha256 against the threat intel. Without a hash there
		// is nothing to check.
		if r.FileInfo == nil || r.FileInfo.SHA256 == "" {
			return detect.Event{}, drop(DropIgnored, "EVE fileinfo without sha256")
		}
		kind = "event"
	case "":
		return detect.Event{}, drop(DropMalformed, "EVE record without event_type")
	default:
		return detect.Event{}, drop(DropIgnored, "EVE event_type %q", r.EventType)
	}
	var t time.Time
	var err error
	for _, layout := range eveLayouts {
		if t, err = time.Parse(layout, r.Timestamp); err == nil {
			break
		}
	}
	if err != nil {
		return detect.Event{}, drop(DropMalformed, "EVE timestamp %q", r.Timestamp)
	}
	if err := lim.checkTime(t, now); err != nil {
		return detect.Event{}, err
	}
	ev := detect.Event{Time: t.UTC(), Module: "ids", Dataset: "suricata.eve", Kind: kind, Category: "intrusion_detection",
		Type: "info", Action: r.EventType}
	if r.FlowID != "" {
		// A label, not event.id: several alerts of one flow are distinct
		// events (natsink deduplicates on event.id).
		ev.Labels = append(ev.Labels, detect.Label{Key: "flow_id", Value: r.FlowID.String()})
	}
	src, err := addrPort(r.SrcIP, r.SrcPort)
	if err != nil {
		return detect.Event{}, err
	}
	dst, err := addrPort(r.DestIP, r.DestPort)
	if err != nil {
		return detect.Event{}, err
	}
	ev.Client, ev.Dest = src, dst
	if r.Alert != nil {
		a := r.Alert
		ev.Verdict = detect.Verdict{Action: detect.ActionReport, Rule: "suricata-" + strconv.FormatInt(a.SignatureID, 10),
			RuleName: a.Signature, Reason: a.Category}
		if a.Action == "blocked" || r.EventType == "drop" {
			ev.Verdict.Action = detect.ActionBlock
			ev.Type = "denied"
		}
		ev.Message = a.Signature
		ev.Labels = append(ev.Labels, detect.Label{Key: "ids_severity", Value: strconv.Itoa(a.Severity)})
		if a.Category != "" {
			ev.Labels = append(ev.Labels, detect.Label{Key: "ids_category", Value: a.Category})
		}
	}
	if r.Anomaly != nil {
		ev.Message = strings.TrimSpace(r.Anomaly.Type + " " + r.Anomaly.Event)
		ev.Verdict = detect.Verdict{Action: detect.ActionReport, Rule: "suricata-anomaly", RuleName: ev.Message}
	}
	if r.Proto != "" {
		ev.Labels = append(ev.Labels, detect.Label{Key: "network_transport", Value: strings.ToLower(r.Proto)})
	}
	if r.AppProto != "" {
		ev.Labels = append(ev.Labels, detect.Label{Key: "app_proto", Value: r.AppProto})
	}
	if r.Host != "" {
		ev.Labels = append(ev.Labels, detect.Label{Key: "sensor", Value: r.Host})
	}
	if h := r.HTTP; h != nil {
		ev.DestDomain = h.Hostname
		ev.HTTP = detect.HTTPInfo{Method: h.Method, Status: h.Status, UserAgent: h.UserAgent, Referrer: h.Referer}
		if h.Hostname != "" {
			scheme := "http"
			if r.DestPort == 443 {
				scheme = "https"
			}
			ev.URL = scheme + "://" + h.Hostname + h.URL
		}
		ev.BytesIn = max(h.Length, 0)
	}
	if r.TLS != nil && ev.DestDomain == "" {
		ev.DestDomain = r.TLS.SNI
	}
	if fi := r.FileInfo; fi != nil {
		ev.Category = "file"
		ev.File = detect.FileInfo{Name: fi.Filename, Size: max(fi.Size, 0), SHA256: strings.ToLower(fi.SHA256), Mime: fi.Magic}
		ev.Message = fi.Filename
	}
	if len(r.DNS) > 0 {
		var d eveDNS
		if json.Unmarshal(r.DNS, &d) == nil {
			ev.DNS = detect.DNSInfo{QName: d.RRName, QType: d.RRType, RCode: d.RCode, ID: d.ID}
		}
	}
	if err := lim.checkFields(ev.Message, ev.URL, ev.DestDomain, ev.Verdict.RuleName, ev.Verdict.Reason,
		ev.HTTP.UserAgent, ev.HTTP.Referrer, ev.HTTP.Method, ev.DNS.QName, ev.File.Name, ev.File.SHA256, ev.File.Mime); err != nil {
		return detect.Event{}, err
	}
	for _, l := range ev.Labels {
		if err := lim.checkFields(l.Value); err != nil {
			return detect.Event{}, err
		}
	}
	return ev, nil
}

func addrPort(ip string, port int) (netip.AddrPort, error) {
	if ip == "" {
		return netip.AddrPort{}, nil
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.AddrPort{}, drop(DropMalformed, "address %q", truncate(ip, 64))
	}
	if port < 0 || port > 65535 {
		return netip.AddrPort{}, drop(DropMalformed, "port %d", port)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
