package mailrelay

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
)

// Config configures a relay Server. Hostname, Directory and Queue.Dir are
// required; every other field has a documented default at its zero value.
type Config struct {
	// Hostname is the relay's own name, used in the greeting, EHLO reply,
	// Received: headers and as the DSN reporting MTA. Required.
	Hostname string
	// Directory resolves tenants: the client address (outbound) and the
	// recipient domain (inbound). Required.
	Directory tenant.Directory
	// Session holds the SMTP server limits and TLS.
	Session SessionConfig
	// Queue holds the durable queue settings.
	Queue QueueConfig
	// Delivery holds the next-hop and retry settings.
	Delivery DeliveryConfig
	// Auth holds the SPF/DKIM/DMARC settings; a nil Auth.Resolver turns
	// sender authentication off.
	Auth AuthConfig
	// Recipients, when set, validates recipients in tenant domains (as
	// Postfix's relay_recipient_maps): an unknown user gets 550 5.1.1 at
	// RCPT, so the relay never accepts mail it would have to bounce (no
	// backscatter). Nil accepts every address of a tenant domain.
	Recipients RecipientChecker
	// Filters inspect every message after DATA, in order; the first
	// verdict that stops the message wins. Nil means none.
	Filters []Filter
	// Content configures the built-in content checks (anti-virus,
	// block/allow lists, attachments, spam, advertising, sanitisation),
	// run after Filters. The zero value checks nothing.
	Content ContentConfig
	// Quarantine configures the quarantine store; an empty Dir means
	// none (quarantine verdicts are then refused with 550).
	Quarantine QuarantineConfig
	// ReportOnly makes every filter and authentication verdict that would
	// stop a message a "report" verdict: the message passes and the event
	// says what would have happened. A tenant's Policy.ReportOnly does the
	// same for its own mail (the sender's tenant outbound, each
	// recipient tenant's share inbound). Relay rules (no open relay) are never
	// report-only.
	ReportOnly bool
	// OutboundLimit caps the recipients one outbound sender (the tenant
	// and the envelope sender address) may be given over time: beyond it
	// RCPT gets 450 4.7.1 (the client retries later) and the session's
	// first refusal is an event (rule mail-sender-rate, tempfail), so a
	// hijacked account cannot send a burst of spam through the prefecture's
	// line. *ratelimit.Keyed[string] implements it. Nil means no cap.
	OutboundLimit SenderLimiter
	// Sink receives one event per message and per delivery attempt; nil
	// means detect.Discard.
	Sink detect.Sink
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// SessionConfig holds the SMTP server settings. The zero value is usable.
type SessionConfig struct {
	// TLS enables STARTTLS when non-nil.
	TLS *tls.Config
	// MaxSize is the largest message accepted (SIZE); 0 means 25 MiB.
	MaxSize int64
	// MaxRecipients caps RCPT per transaction; 0 means 100. Further RCPTs
	// get 452 4.5.3 (RFC 5321 4.5.3.1.10), so the client sends them later.
	MaxRecipients int
	// CommandTimeout bounds the wait for each command; 0 means 5 minutes.
	CommandTimeout time.Duration
	// DataTimeout bounds reading a whole DATA body; 0 means 10 minutes.
	DataTimeout time.Duration
	// TLSHandshakeTimeout bounds the STARTTLS handshake; 0 means 10 s.
	TLSHandshakeTimeout time.Duration
	// MaxConns caps concurrent sessions; further clients get 421. 0 means
	// 1000.
	MaxConns int
	// MaxErrors closes a session after this many rejected commands; 0
	// means 20.
	MaxErrors int
}

// QueueConfig configures the durable queue.
type QueueConfig struct {
	// Dir holds the queue's journal segments. Required.
	Dir string
	// SegmentSize is the journal segment size; 0 means 64 MiB.
	SegmentSize int64
	// NoSync turns fsync off. Never in production: a crash then loses
	// acknowledged mail. For CPU-only benchmarks.
	NoSync bool
}

// BouncePolicy says what happens to recipients that failed permanently.
type BouncePolicy uint8

// The bounce policies.
const (
	// BounceDSN sends a delivery status notification (RFC 3464) to the
	// envelope sender (never for the null sender). The default.
	BounceDSN BouncePolicy = iota
	// BounceDrop drops failed recipients with an event and no DSN.
	BounceDrop
)

// RecipientChecker says whether tenant has a mailbox for addr. An error
// defers the recipient (451 4.3.0). Implementations must be safe for
// concurrent use.
type RecipientChecker interface {
	ValidRecipient(ctx context.Context, tenant, addr string) (bool, error)
}

// MXResolver looks up mail exchangers; *net.Resolver implements it.
type MXResolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

// DeliveryConfig configures delivery to the next hops.
type DeliveryConfig struct {
	// Workers is the number of concurrent deliveries; 0 means 32.
	Workers int
	// Smarthost, when set (host:port), receives all outbound mail (mail
	// for domains no tenant owns). Empty means MX lookup with Resolver.
	Smarthost string
	// Resolver looks up MX records for outbound mail without a
	// Smarthost; nil means net.DefaultResolver. Tests inject a fake.
	Resolver MXResolver
	// Port is the port used with MX hosts; 0 means 25.
	Port int
	// Dial opens next-hop connections; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialTenant, when set, replaces Dial and is told which tenant's mail
	// is being sent: the sender's tenant id for mail to the internet, ""
	// for deliveries to a tenant's mail servers. The appliance binds the
	// tenant's egress address here. Idle connections are then kept per
	// tenant and host.
	DialTenant func(ctx context.Context, tenant, network, addr string) (net.Conn, error)
	// TLS is used for STARTTLS towards next hops that offer it; nil means
	// opportunistic STARTTLS without certificate verification (as
	// Postfix's "may" level). Set NoTLS to never use STARTTLS.
	TLS   *tls.Config
	NoTLS bool
	// Timeout bounds each client command and reply; 0 means 2 minutes.
	Timeout time.Duration
	// MinBackoff is the first retry delay after a temporary failure,
	// doubled at each attempt up to MaxBackoff; 0 means 1 minute and 1
	// hour.
	MinBackoff, MaxBackoff time.Duration
	// MaxAge is how long a message is retried before its remaining
	// recipients bounce; 0 means 5 days.
	MaxAge time.Duration
	// DelayNotice is the age after which the sender gets one "delayed"
	// DSN for recipients still being retried; 0 means 4 hours, negative
	// means never. Only under BounceDSN.
	DelayNotice time.Duration
	// Bounce is the policy for permanent failures; the zero value is
	// BounceDSN.
	Bounce BouncePolicy
	// MaxIdlePerHost caps idle next-hop connections kept per host; 0
	// means 16.
	MaxIdlePerHost int
}

func (c *Config) setDefaults() error {
	if c.Hostname == "" {
		return fmt.Errorf("mailrelay: Config.Hostname is empty")
	}
	if checkHelo(c.Hostname) != nil {
		return fmt.Errorf("mailrelay: Config.Hostname %q is not a host name", c.Hostname)
	}
	if c.Directory == nil {
		return fmt.Errorf("mailrelay: Config.Directory is nil")
	}
	if c.Queue.Dir == "" {
		return fmt.Errorf("mailrelay: Config.Queue.Dir is empty")
	}
	s := &c.Session
	if s.MaxSize < 0 || s.MaxRecipients < 0 || s.MaxConns < 0 || s.MaxErrors < 0 {
		return fmt.Errorf("mailrelay: Config.Session has a negative limit")
	}
	if s.MaxSize == 0 {
		s.MaxSize = 25 << 20
	}
	if s.MaxRecipients == 0 {
		s.MaxRecipients = 100
	}
	if s.CommandTimeout == 0 {
		s.CommandTimeout = 5 * time.Minute
	}
	if s.DataTimeout == 0 {
		s.DataTimeout = 10 * time.Minute
	}
	if s.TLSHandshakeTimeout == 0 {
		s.TLSHandshakeTimeout = 10 * time.Second
	}
	if s.MaxConns == 0 {
		s.MaxConns = 1000
	}
	if s.MaxErrors == 0 {
		s.MaxErrors = 20
	}
	d := &c.Delivery
	if d.Workers < 0 {
		return fmt.Errorf("mailrelay: Config.Delivery.Workers is negative")
	}
	if d.Workers == 0 {
		d.Workers = 32
	}
	if d.Smarthost != "" {
		if _, _, err := net.SplitHostPort(d.Smarthost); err != nil {
			return fmt.Errorf("mailrelay: Config.Delivery.Smarthost: %w", err)
		}
	}
	if d.Resolver == nil {
		d.Resolver = net.DefaultResolver
	}
	if d.Port == 0 {
		d.Port = 25
	}
	if d.Dial == nil {
		var dl net.Dialer
		d.Dial = dl.DialContext
	}
	if d.Timeout == 0 {
		d.Timeout = 2 * time.Minute
	}
	if d.MinBackoff == 0 {
		d.MinBackoff = time.Minute
	}
	if d.MaxBackoff == 0 {
		d.MaxBackoff = time.Hour
	}
	if d.MaxAge == 0 {
		d.MaxAge = 5 * 24 * time.Hour
	}
	if d.DelayNotice == 0 {
		d.DelayNotice = 4 * time.Hour
	}
	if d.MaxIdlePerHost == 0 {
		d.MaxIdlePerHost = 16
	}
	if d.Bounce > BounceDrop {
		return fmt.Errorf("mailrelay: Config.Delivery.Bounce %d is unknown", d.Bounce)
	}
	for i, k := range c.Auth.SigningKeys {
		if k.Domain == "" || k.Selector == "" || k.Signer == nil {
			return fmt.Errorf("mailrelay: Config.Auth.SigningKeys[%d] needs Domain, Selector and Signer", i)
		}
	}
	if c.Sink == nil {
		c.Sink = detect.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// SenderLimiter decides whether an outbound sender (key: tenant id, NUL,
// lower-cased envelope sender) may be given one more recipient.
// *ratelimit.Keyed[string] implements it. Implementations must be safe
// for concurrent use.
type SenderLimiter interface {
	Allow(key string) bool
}
