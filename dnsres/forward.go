package dnsres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/publicsuffix"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/dnsres/internal/wire"
)

// Defaults of ForwarderConfig.
const (
	DefaultForwardTimeout  = 2 * time.Second
	DefaultForwardAttempts = 3
)

// ForwarderConfig configures a Forwarder. Upstreams is required.
type ForwarderConfig struct {
	// Upstreams are the recursive servers to forward to, "host:port" with
	// an IP address host (no name resolution here). Queries start at the
	// next upstream in turn and move on after an error, a timeout or a
	// SERVFAIL/REFUSED answer.
	Upstreams []string
	// Timeout bounds one attempt; zero means DefaultForwardTimeout (2 s).
	Timeout time.Duration
	// Attempts is the number of attempts per question across upstreams;
	// zero means DefaultForwardAttempts (3).
	Attempts int
	// Sockets is the number of pre-opened UDP sockets (each on its own
	// kernel-chosen random port, replaced by a fresh one after 2,000
	// queries) that upstream queries are spread over at random; zero
	// means DefaultForwardSockets; negative opens a fresh socket per
	// query instead (slower: a socket, connect and close each time).
	Sockets int
	// FetchesPerDomain caps the questions outstanding at once for names
	// of one registered domain (the public suffix plus one label, e.g.
	// city.example.jp.; the forwarder does not know the zone cuts): one
	// more fails at once with ErrZoneFetchLimit, so a random-subdomain
	// flood against one domain whose servers stop answering cannot tie up
	// the resolver. Zero means DefaultFetchesPerZone (200); negative
	// means no limit.
	FetchesPerDomain int
	// Sink, when not nil, receives one alert per domain and minute when
	// a domain reaches FetchesPerDomain (as RecursorConfig.Sink).
	Sink detect.Sink
}

// DefaultForwardSockets is the default of ForwarderConfig.Sockets.
const DefaultForwardSockets = 32

// Forwarder is a Resolver that forwards questions to upstream recursive
// servers over UDP (TCP when the answer is truncated). Each attempt uses a
// fresh socket (a random source port chosen by the kernel) and a random
// message ID, and accepts only a response from the upstream's address whose
// ID and question match; anything else is ignored until the timeout.
// Safe for concurrent use.
type Forwarder struct {
	ups      []netip.AddrPort
	timeout  time.Duration
	attempts int
	next     atomic.Uint32
	pool     *upool                // nil: a fresh socket per query
	limit    *fetchLimiter[string] // per registered domain; nil: no limit
}

var _ Resolver = (*Forwarder)(nil)

// NewForwarder validates cfg and returns a Forwarder.
func NewForwarder(cfg ForwarderConfig) (*Forwarder, error) {
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("dnsres: ForwarderConfig.Upstreams is empty")
	}
	f := &Forwarder{timeout: cfg.Timeout, attempts: cfg.Attempts}
	for i, u := range cfg.Upstreams {
		ap, err := netip.ParseAddrPort(u)
		if err != nil {
			return nil, fmt.Errorf("dnsres: ForwarderConfig.Upstreams[%d] %q: want ip:port: %w", i, u, err)
		}
		f.ups = append(f.ups, ap)
	}
	if f.timeout < 0 || f.attempts < 0 {
		return nil, errors.New("dnsres: ForwarderConfig: Timeout and Attempts must not be negative")
	}
	if f.timeout == 0 {
		f.timeout = DefaultForwardTimeout
	}
	if f.attempts == 0 {
		f.attempts = DefaultForwardAttempts
	}
	if cfg.FetchesPerDomain >= 0 {
		n := cfg.FetchesPerDomain
		if n == 0 {
			n = DefaultFetchesPerZone
		}
		f.limit = newFetchLimiter[string](n, cfg.Sink, time.Now)
	}
	if cfg.Sockets >= 0 {
		n := cfg.Sockets
		if n == 0 {
			n = DefaultForwardSockets
		}
		p, err := newUpool(n, f.timeout)
		if err != nil {
			return nil, err
		}
		f.pool = p
	}
	return f, nil
}

// Close closes the forwarder's sockets; queries after Close fail. It
// returns nil.
func (f *Forwarder) Close() error {
	if f.pool != nil {
		f.pool.close()
	}
	return nil
}

// exchange asks one upstream, over the socket pool when there is one, and
// again over TCP when the answer is truncated.
func (f *Forwarder) exchange(ctx context.Context, server netip.AddrPort, q Question) ([]byte, error) {
	return poolExchange(ctx, f.pool, server, q, f.timeout, true)
}

// poolExchange asks server over pool (a fresh socket when pool is nil)
// and again over TCP when the answer is truncated.
func poolExchange(ctx context.Context, pool *upool, server netip.AddrPort, q Question, timeout time.Duration, rd bool) ([]byte, error) {
	if pool == nil {
		return exchangeWire(ctx, server, q, timeout, rd)
	}
	query, id, err := buildQuery(q, rd)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	b, err := pool.exchange(ctx, server, query, deadline)
	if err == nil && b[2]&0x02 != 0 { // TC
		return exchangeTCP(ctx, server, query, id, deadline)
	}
	return b, err
}

// Resolve forwards q and returns the first usable answer.
func (f *Forwarder) Resolve(ctx context.Context, q Question) (*dns.Msg, error) {
	b, err := f.ResolveWire(ctx, q)
	if err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadReply, err)
	}
	return m, nil
}

// ResolveWire is Resolve returning the validated reply as it was received
// (the caller owns the bytes).
func (f *Forwarder) ResolveWire(ctx context.Context, q Question) ([]byte, error) {
	if f.limit != nil {
		domain := registeredDomain(q.Name)
		if !f.limit.acquire(domain) {
			return nil, fmt.Errorf("%w: %s", ErrZoneFetchLimit, domain)
		}
		defer f.limit.release(domain)
	}
	start := int(f.next.Add(1))
	var last []byte
	var errs []error
	for a := 0; a < f.attempts; a++ {
		if ctx.Err() != nil {
			break
		}
		up := f.ups[(start+a)%len(f.ups)]
		b, err := f.exchange(ctx, up, q)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch int(b[3] & 0xF) {
		case dns.RcodeServerFailure, dns.RcodeRefused, dns.RcodeNotImplemented, dns.RcodeFormatError:
			last = b
			continue
		}
		return b, nil
	}
	if last != nil {
		return last, nil
	}
	if len(errs) == 0 {
		errs = append(errs, ctx.Err())
	}
	return nil, fmt.Errorf("dnsres: forward %s %s: %w", q.Name, typeString(q.Type), errors.Join(errs...))
}

// ForwarderStats are a Forwarder's counters.
type ForwarderStats struct {
	// FetchLimited is the number of questions failed at once because
	// their domain was at ForwarderConfig.FetchesPerDomain.
	FetchLimited uint64
	// DomainsAtLimit are the registered domains at the limit now.
	DomainsAtLimit []string
}

// Stats returns the forwarder's counters. Safe for concurrent use.
func (f *Forwarder) Stats() ForwarderStats {
	var st ForwarderStats
	if f.limit != nil {
		st.FetchLimited = f.limit.limited.Load()
		st.DomainsAtLimit = f.limit.atLimit()
	}
	return st
}

// Outstanding returns the questions outstanding for names of the
// registered domain of name.
func (f *Forwarder) Outstanding(name string) int {
	return f.limit.outstanding(registeredDomain(name))
}

// registeredDomain returns the public suffix of name plus one label,
// lower-case and fully qualified ("a.b.example.co.jp." →
// "example.co.jp."; under an unlisted TLD such as test., the last two
// labels), or name itself when it is a public suffix.
func registeredDomain(name string) string {
	n := lowerFQDN(name)
	if n == "." {
		return n
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(n[:len(n)-1])
	if err != nil {
		return n
	}
	return d + "."
}

// Errors of Exchange.
var (
	ErrTimeout  = errors.New("dnsres: upstream timeout")
	ErrBadReply = errors.New("dnsres: malformed upstream reply")
)

var exchBufs = sync.Pool{New: func() any { b := make([]byte, 65535); return &b }}

// Exchange sends q (recursion desired; EDNS0 1232 with q's DO bit) to
// server over UDP from a fresh socket with a random ID, waiting at most
// timeout (and ctx), and retries over TCP when the answer is truncated.
// Replies from other addresses, or with another ID or question, are
// ignored (spoofing defence); the first matching reply is returned.
func Exchange(ctx context.Context, server netip.AddrPort, q Question, timeout time.Duration) (*dns.Msg, error) {
	return exchange(ctx, server, q, timeout, true)
}

func exchange(ctx context.Context, server netip.AddrPort, q Question, timeout time.Duration, rd bool) (*dns.Msg, error) {
	b, err := exchangeWire(ctx, server, q, timeout, rd)
	if err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return nil, fmt.Errorf("%w from %s: %v", ErrBadReply, server, err)
	}
	return m, nil
}

// buildQuery packs a query for q with a random ID: header, question and
// an OPT record (payload 1232, DO as asked), without dns.Msg.
func buildQuery(q Question, rd bool) (query []byte, id uint16, err error) {
	w, ok := toWire(q.Name)
	if !ok {
		return nil, 0, fmt.Errorf("dnsres: bad name %q", q.Name)
	}
	id = uint16(rand.Uint32())
	b := make([]byte, 0, 12+len(w)+4+11)
	var flags byte
	if rd {
		flags = 1
	}
	var cd byte
	if q.CD {
		cd = 0x10
	}
	b = append(b, byte(id>>8), byte(id), flags, cd, 0, 1, 0, 0, 0, 0, 0, 1)
	b = append(b, w...)
	b = append(b, byte(q.Type>>8), byte(q.Type), byte(q.Class>>8), byte(q.Class))
	var do byte
	if q.DO {
		do = 0x80
	}
	b = append(b, 0, 0, 41, byte(DefaultUDPSize>>8), byte(DefaultUDPSize&0xFF), 0, 0, do, 0, 0, 0)
	return b, id, nil
}

// exchangeWire is Exchange returning the matching reply's bytes.
func exchangeWire(ctx context.Context, server netip.AddrPort, q Question, timeout time.Duration, rd bool) ([]byte, error) {
	query, id, err := buildQuery(q, rd)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	b, err := exchangeUDP(ctx, server, query, id, deadline)
	if err == nil && b[2]&0x02 != 0 { // TC
		return exchangeTCP(ctx, server, query, id, deadline)
	}
	return b, err
}

func exchangeUDP(ctx context.Context, server netip.AddrPort, query []byte, id uint16, deadline time.Time) ([]byte, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return nil, fmt.Errorf("dnsres: upstream %s: %w", server, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(query); err != nil {
		return nil, fmt.Errorf("dnsres: upstream %s: %w", server, err)
	}
	bp := exchBufs.Get().(*[]byte)
	defer exchBufs.Put(bp)
	buf := *bp
	for {
		n, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, fmt.Errorf("%w: %s", ErrTimeout, server)
			}
			return nil, fmt.Errorf("dnsres: upstream %s: %w", server, err)
		}
		if matchReply(buf[:n], query) {
			return append([]byte(nil), buf[:n]...), nil
		}
		// Wrong ID or question: a late or spoofed reply. Keep waiting.
	}
}

func exchangeTCP(ctx context.Context, server netip.AddrPort, query []byte, id uint16, deadline time.Time) ([]byte, error) {
	d := net.Dialer{Deadline: deadline}
	c, err := d.DialContext(ctx, "tcp", server.String())
	if err != nil {
		return nil, fmt.Errorf("dnsres: upstream %s tcp: %w", server, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	_ = c.SetDeadline(deadline)
	out := make([]byte, 2+len(query))
	binary.BigEndian.PutUint16(out, uint16(len(query)))
	copy(out[2:], query)
	if _, err := c.Write(out); err != nil {
		return nil, fmt.Errorf("dnsres: upstream %s tcp: %w", server, err)
	}
	var lb [2]byte
	if _, err := io.ReadFull(c, lb[:]); err != nil {
		return nil, fmt.Errorf("dnsres: upstream %s tcp: %w", server, err)
	}
	buf := make([]byte, binary.BigEndian.Uint16(lb[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, fmt.Errorf("dnsres: upstream %s tcp: %w", server, err)
	}
	if !matchReply(buf, query) {
		return nil, fmt.Errorf("%w from %s over tcp", ErrBadReply, server)
	}
	return buf, nil
}

// matchReply reports whether b is a response to query: same ID, QR set,
// opcode QUERY, exactly one question equal to the query's (name compared
// case-insensitively, uncompressed) — and the rest of the message walks.
func matchReply(b, query []byte) bool {
	if len(b) < 12 || b[0] != query[0] || b[1] != query[1] || b[2]&0x80 == 0 || b[2]&0x78 != 0 {
		return false
	}
	if binary.BigEndian.Uint16(b[4:]) != 1 {
		return false
	}
	qend := 12
	for qend < len(query) && query[qend] != 0 {
		qend += 1 + int(query[qend])
	}
	qend += 1 + 4
	if len(b) < qend {
		return false
	}
	for i := 12; i < qend; i++ {
		x, y := b[i], query[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return wire.Records(b, func(wire.RR) {}) == nil
}
