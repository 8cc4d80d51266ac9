package dnsres

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/dnsres/internal/wire"
	"github.com/jichitai/seccloud/tenant"
)

// Handler answers one query. It is the CoreDNS shape: a handler either
// writes the response through w (now, or later through a detached writer,
// see [Request.Detach]) and returns the response code it wrote, or writes
// nothing and returns an error or one of dns.RcodeServerFailure,
// dns.RcodeRefused, dns.RcodeFormatError, dns.RcodeNotImplemented, in
// which case the server answers with that code (SERVFAIL for an error).
//
// ServeDNS is called on the server's read loop: it must not wait on the
// network. A handler that must wait (an upstream query) detaches the
// request and answers from another goroutine, as [Cache] does.
type Handler interface {
	ServeDNS(ctx context.Context, w ResponseWriter, r *Request) (int, error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, w ResponseWriter, r *Request) (int, error)

// ServeDNS calls f(ctx, w, r).
func (f HandlerFunc) ServeDNS(ctx context.Context, w ResponseWriter, r *Request) (int, error) {
	return f(ctx, w, r)
}

// Middleware is one step of a handler chain: it returns a Handler that
// does its work and calls next (or answers by itself).
type Middleware func(next Handler) Handler

// Chain returns h wrapped by mws, the first middleware outermost:
// Chain(h, a, b) runs a, then b, then h.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// ResponseWriter sends the response to a query. Each query gets exactly
// one response: writes after the first are ignored and return
// ErrAnswered. The server's writers are safe for use by one goroutine at a
// time.
type ResponseWriter interface {
	// WriteMsg packs m with name compression and sends it, setting what the
	// server owns: the ID, the question as asked, QR, RA, the EDNS0 OPT
	// record (present when the query had one, payload size 1232, DO as
	// asked) and truncation with TC=1 when the response does not fit the
	// client's UDP payload size.
	WriteMsg(m *dns.Msg) error
	// WriteWire sends b as it is: a complete packed response whose ID,
	// flags, OPT record and size the caller has made right for the
	// request. The writer does not retain b.
	WriteWire(b []byte) error
	// Detach returns a writer answering r, a detached copy of the request
	// being served (see Request.Detach), that stays usable after ServeDNS
	// has returned. Writers that wrap another must detach the wrapped one
	// and wrap the result.
	Detach(r *Request) ResponseWriter
}

// Request is one query being served. The server fills the fields above
// the line; handlers annotate the ones below it for the query log.
//
// A Request is owned by the server's read loop and reused after ServeDNS
// returns: a handler that answers later must call Detach.
type Request struct {
	// Raw is the query as received (valid until ServeDNS returns, or for
	// the lifetime of a detached copy).
	Raw []byte
	// ID is the query's message ID.
	ID uint16
	// Type and Class are the question's type and class.
	Type, Class uint16
	// RD and CD are the query's recursion-desired and checking-disabled
	// bits.
	RD, CD bool
	// EDNS is true when the query carried an OPT record; UDPSize is the
	// payload size the client can receive (512 without EDNS); DO is the
	// DNSSEC OK bit.
	EDNS    bool
	UDPSize uint16
	DO      bool
	// Client is the source address and port; TCP is true for queries over
	// TCP.
	Client netip.AddrPort
	TCP    bool
	// Tenant is the connecting body the client belongs to (never nil: the
	// server refuses clients in no tenant before calling handlers).
	Tenant *tenant.Tenant
	// Start is when the query was received.
	Start time.Time

	// Verdict is the policy decision, Severity its judged severity;
	// both go to the query log event (which becomes an alert when the
	// verdict is set).
	Verdict  detect.Verdict
	Severity detect.Severity
	// Source says where the answer came from: "cache" (hit), "stale"
	// (served stale), "upstream" (cache miss), "zone", "policy"; empty
	// means the server itself (refusals, errors).
	Source string
	// Answers and Resolved, when set, are logged instead of being read
	// from the response (dns.answers, dns.resolved_ip). Never modify
	// them after setting.
	Answers  []string
	Resolved []netip.Addr

	name    string // presentation form, lazily
	key     []byte // wire name + type + class + flag byte
	nameLen int    // bytes of the wire name in key
	qend    int    // end of the question in Raw
	ourUDP  int    // the server's EDNS0 payload size
	keyBuf  [wire.MaxKey]byte
}

// Name returns the question name, lower-cased, in presentation form with
// a trailing dot (e.g. "www.example.jp.").
func (r *Request) Name() string {
	if r.name == "" {
		r.name = wire.NameString(r.key[:r.nameLen])
	}
	return r.name
}

// Question returns the question as a dns.Question (name lower-cased).
func (r *Request) Question() dns.Question {
	return dns.Question{Name: r.Name(), Qtype: r.Type, Qclass: r.Class}
}

// Msg unpacks the query into a new dns.Msg.
func (r *Request) Msg() (*dns.Msg, error) {
	m := new(dns.Msg)
	if err := m.Unpack(r.Raw); err != nil {
		return nil, err
	}
	return m, nil
}

// Detach returns a copy of r that owns its memory, for answering after
// ServeDNS has returned; pair it with w.Detach(copy).
func (r *Request) Detach() *Request {
	c := new(Request)
	*c = *r
	c.Raw = append([]byte(nil), r.Raw...)
	c.key = c.keyBuf[:len(r.key)]
	return c
}

// NewRequest returns a Request for a question as if the server had
// received it from client at start, for using handlers offline (e.g.
// Detector.Check over a query log) and in tests. Tenant may be nil.
func NewRequest(name string, qtype uint16, client netip.AddrPort, t *tenant.Tenant, start time.Time) (*Request, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	raw, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("dnsres: request for %q: %w", name, err)
	}
	r := new(Request)
	var q wire.Query
	if err := wire.ParseQuery(raw, &q, r.keyBuf[:]); err != nil {
		return nil, fmt.Errorf("dnsres: request for %q: %w", name, err)
	}
	r.setQuery(raw, &q)
	r.Client, r.Tenant, r.Start, r.ourUDP = client, t, start, DefaultUDPSize
	return r, nil
}

// setQuery fills the server-owned fields from a parsed query.
func (r *Request) setQuery(raw []byte, q *wire.Query) {
	r.Raw = raw
	r.ID = q.ID
	r.Type, r.Class = q.Type, q.Class
	r.RD, r.CD = q.Flags&wire.FlagRD != 0, q.Flags&wire.FlagCD != 0
	r.EDNS, r.UDPSize, r.DO = q.EDNS, q.UDPSize, q.DO
	r.key = q.Key
	r.nameLen = len(q.Name)
	r.qend = q.QEnd
	r.name = ""
	r.Verdict, r.Severity, r.Source = detect.Verdict{}, 0, ""
	r.Answers, r.Resolved = nil, nil
}

// maxUDP is the largest UDP response the client takes: its EDNS0 size
// capped at ours (or 512 without EDNS).
func (r *Request) maxUDP(ours int) int {
	if !r.EDNS {
		return 512
	}
	return min(int(r.UDPSize), ours)
}

// TenantRouter returns a Handler that passes each query to the handler
// of its tenant (by tenant id), or to def for tenants not in byTenant —
// e.g. one Cache per tenant with its own upstreams (a view), the others
// sharing the default cache. byTenant must not be modified afterwards.
// It allocates nothing per query.
func TenantRouter(byTenant map[string]Handler, def Handler) Handler {
	if len(byTenant) == 0 {
		return def
	}
	return HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) (int, error) {
		if r.Tenant != nil {
			if h, ok := byTenant[r.Tenant.ID]; ok {
				return h.ServeDNS(ctx, w, r)
			}
		}
		return def.ServeDNS(ctx, w, r)
	})
}
