package dnsres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Defaults of RecursorConfig.
const (
	DefaultRecursorTimeout    = 800 * time.Millisecond
	DefaultRecursorMaxQueries = 48
	maxNSDepth                = 4
)

// RecursorConfig configures a Recursor. RootHints is required: the
// package has no built-in list of root servers and never sends a query
// to an address it was not given or referred to.
type RecursorConfig struct {
	// RootHints are the addresses ("ip" or "ip:port") of the root
	// servers to start from.
	RootHints []string
	// Port is the port of the servers learned from referrals; zero means
	// 53.
	Port int
	// AllowedNets, when not empty, are the only networks queries are sent
	// to; servers outside them are skipped (e.g. loopback only in tests).
	AllowedNets []netip.Prefix
	// Timeout bounds one query to one server; zero means
	// DefaultRecursorTimeout (800 ms).
	Timeout time.Duration
	// MaxQueries bounds the queries sent for one resolution (CNAME chains
	// and name server lookups included); zero means
	// DefaultRecursorMaxQueries.
	MaxQueries int
	// NoQNAMEMinimisation turns QNAME minimisation (RFC 9156) off: by
	// default each server is asked only for the name one label below its
	// zone (type A), up to 10 labels, and the full name once no more
	// zone cuts are found.
	NoQNAMEMinimisation bool
	// MaxDelegations bounds the delegation cache (zone → name-server
	// addresses learned from referrals, kept for the NS TTL, at most one
	// day), which lets a resolution start at the closest known zone
	// instead of the root; zero means DefaultMaxDelegations; negative
	// turns the cache off.
	MaxDelegations int
	// Now is the clock of the delegation cache; nil means time.Now.
	Now func() time.Time
	// Sockets is the number of pre-opened UDP sockets queries are spread
	// over (as ForwarderConfig.Sockets); zero means DefaultForwardSockets;
	// negative opens a fresh socket per query.
	Sockets int
}

// DefaultMaxDelegations is the default of RecursorConfig.MaxDelegations.
const DefaultMaxDelegations = 10_000

// maxMinimise bounds the labels added one at a time (RFC 9156 §2.3).
const maxMinimise = 10

type delegation struct {
	servers []netip.AddrPort
	expires time.Time
}

// Recursor is a Resolver that iterates from the root hints: it follows
// referrals (using in-bailiwick glue, resolving glueless name servers),
// CNAME chains up to 8 links, and accepts only records within the
// bailiwick of the server that sent them. A server that times out or
// answers SERVFAIL/REFUSED (lame) is skipped for the next one. It
// minimises QNAMEs (RFC 9156: each server is asked for one label below
// its zone, type A, then the full question once no more zone cuts are
// found; NXDOMAIN on the way ends the resolution, RFC 8020) and caches
// delegations (zone → server addresses, for the NS TTL), starting at the
// closest cached zone and falling back to the root when that zone's
// servers fail. It does not validate DNSSEC. Safe for concurrent use.
type Recursor struct {
	roots      []netip.AddrPort
	port       uint16
	allowed    []netip.Prefix
	timeout    time.Duration
	maxQueries int
	qmin       bool
	maxDeleg   int
	now        func() time.Time
	dmu        sync.Mutex
	deleg      map[string]delegation
	sent       atomic.Uint64
	pool       *upool
}

// Close closes the recursor's sockets; resolutions after Close fail. It
// returns nil.
func (r *Recursor) Close() error {
	if r.pool != nil {
		r.pool.close()
	}
	return nil
}

var _ Resolver = (*Recursor)(nil)

// Queries returns the number of queries sent to servers so far.
func (r *Recursor) Queries() uint64 { return r.sent.Load() }

// closest returns the servers of the closest enclosing zone of name in
// the delegation cache, or the roots.
func (r *Recursor) closest(name string) ([]netip.AddrPort, string, bool) {
	if r.maxDeleg > 0 {
		now := r.now()
		r.dmu.Lock()
		for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
			if d, ok := r.deleg[name[off:]]; ok {
				if now.Before(d.expires) {
					r.dmu.Unlock()
					return d.servers, name[off:], true
				}
				delete(r.deleg, name[off:])
			}
		}
		r.dmu.Unlock()
	}
	return r.roots, ".", false
}

// remember caches the servers of zone for ttl.
func (r *Recursor) remember(zone string, servers []netip.AddrPort, ttl uint32) {
	if r.maxDeleg <= 0 || zone == "." {
		return
	}
	d := time.Duration(min(max(ttl, 5), 86400)) * time.Second
	r.dmu.Lock()
	if len(r.deleg) >= r.maxDeleg {
		now := r.now()
		for k, v := range r.deleg {
			if !now.Before(v.expires) {
				delete(r.deleg, k)
			}
		}
		if len(r.deleg) >= r.maxDeleg {
			clear(r.deleg)
		}
	}
	r.deleg[zone] = delegation{servers: servers, expires: r.now().Add(d)}
	r.dmu.Unlock()
}

func (r *Recursor) forget(zone string) {
	r.dmu.Lock()
	delete(r.deleg, zone)
	r.dmu.Unlock()
}

// referral returns the child zone and its NS records when resp refers
// from zone towards name.
func referral(resp *dns.Msg, zone, name string) (string, []*dns.NS) {
	child := ""
	var nss []*dns.NS
	for _, rr := range resp.Ns {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		owner := strings.ToLower(ns.Hdr.Name)
		if owner == zone || !dns.IsSubDomain(owner, name) || (child != "" && owner != child) {
			continue
		}
		child = owner
		nss = append(nss, ns)
	}
	return child, nss
}

// NewRecursor validates cfg and returns a Recursor.
func NewRecursor(cfg RecursorConfig) (*Recursor, error) {
	if len(cfg.RootHints) == 0 {
		return nil, errors.New("dnsres: RecursorConfig.RootHints is empty")
	}
	if cfg.Port < 0 || cfg.Port > 65535 || cfg.Timeout < 0 || cfg.MaxQueries < 0 {
		return nil, errors.New("dnsres: RecursorConfig: Port, Timeout or MaxQueries out of range")
	}
	r := &Recursor{port: 53, allowed: cfg.AllowedNets, timeout: cfg.Timeout, maxQueries: cfg.MaxQueries,
		qmin: !cfg.NoQNAMEMinimisation, maxDeleg: cfg.MaxDelegations, now: cfg.Now, deleg: map[string]delegation{}}
	if r.maxDeleg == 0 {
		r.maxDeleg = DefaultMaxDelegations
	}
	if r.now == nil {
		r.now = time.Now
	}
	if cfg.Port != 0 {
		r.port = uint16(cfg.Port)
	}
	if r.timeout == 0 {
		r.timeout = DefaultRecursorTimeout
	}
	if r.maxQueries == 0 {
		r.maxQueries = DefaultRecursorMaxQueries
	}
	for i, h := range cfg.RootHints {
		ap, err := netip.ParseAddrPort(h)
		if err != nil {
			a, err2 := netip.ParseAddr(h)
			if err2 != nil {
				return nil, fmt.Errorf("dnsres: RecursorConfig.RootHints[%d] %q: want ip or ip:port", i, h)
			}
			ap = netip.AddrPortFrom(a, r.port)
		}
		r.roots = append(r.roots, ap)
	}
	if cfg.Sockets >= 0 {
		n := cfg.Sockets
		if n == 0 {
			n = DefaultForwardSockets
		}
		p, err := newUpool(n, r.timeout)
		if err != nil {
			return nil, err
		}
		r.pool = p
	}
	return r, nil
}

// ErrFetchLimit is returned when a resolution needs more queries than
// MaxQueries (or name server lookups nest too deep).
var ErrFetchLimit = errors.New("dnsres: recursion fetch limit reached")

type recState struct {
	queries int
}

// Resolve resolves q iteratively.
func (r *Recursor) Resolve(ctx context.Context, q Question) (*dns.Msg, error) {
	st := &recState{}
	return r.resolve(ctx, st, lowerFQDN(q.Name), q.Type, 0)
}

func (r *Recursor) resolve(ctx context.Context, st *recState, name string, qtype uint16, depth int) (*dns.Msg, error) {
	if depth > maxNSDepth {
		return nil, ErrFetchLimit
	}
	out := new(dns.Msg)
	servers, zone, cached := r.closest(name)
	seen := map[string]bool{}
	extra := 1 // labels below zone asked (QNAME minimisation)
	for links := 0; ; {
		ask, atype := name, qtype
		if zl, nl := dns.CountLabel(zone), dns.CountLabel(name); r.qmin && zl+extra < nl && extra <= maxMinimise {
			idx := dns.Split(name)
			ask, atype = name[idx[nl-(zl+extra)]:], dns.TypeA
		}
		resp, err := r.ask(ctx, st, servers, ask, atype)
		if err != nil {
			if cached {
				// The cached delegation failed: forget it, start at the root.
				r.forget(zone)
				servers, zone, cached, extra = r.roots, ".", false, 1
				continue
			}
			return nil, err
		}
		inZone := func(rr dns.RR) bool { return dns.IsSubDomain(zone, strings.ToLower(rr.Header().Name)) }
		resp.Answer = filterRR(resp.Answer, inZone)
		resp.Ns = filterRR(resp.Ns, inZone)
		resp.Extra = filterRR(resp.Extra, inZone)

		if ask != name {
			if resp.Rcode == dns.RcodeNameError {
				// Nothing exists below a name that does not exist (RFC 8020).
				out.Rcode = dns.RcodeNameError
				out.Ns = soaOnly(resp.Ns)
				return out, nil
			}
			child, nss := referral(resp, zone, ask)
			if child == "" || resp.Authoritative {
				extra++ // no zone cut here: one more label, same servers
				continue
			}
			next, err := r.servers(ctx, st, child, nss, resp.Extra, depth)
			if err != nil {
				return nil, err
			}
			servers, zone, cached, extra = next, child, false, 1
			continue
		}

		// Answers: follow the chain inside this response.
		progressed := false
		for {
			var found []dns.RR
			var cname *dns.CNAME
			for _, rr := range resp.Answer {
				h := rr.Header()
				if !strings.EqualFold(h.Name, name) {
					continue
				}
				if h.Rrtype == qtype || qtype == dns.TypeANY {
					found = append(found, rr)
				} else if c, ok := rr.(*dns.CNAME); ok && cname == nil {
					cname = c
				}
			}
			if len(found) > 0 {
				out.Answer = append(out.Answer, found...)
				return out, nil
			}
			if cname == nil {
				break
			}
			progressed = true
			out.Answer = append(out.Answer, cname)
			links++
			name = lowerFQDN(cname.Target)
			if links > maxCNAMEChain || seen[name] {
				out.Rcode = dns.RcodeServerFailure
				return out, nil // CNAME loop or chain too long
			}
			seen[name] = true
		}
		if progressed {
			if !dns.IsSubDomain(zone, name) || zone == "." {
				servers, zone, cached = r.closest(name)
			}
			// Ask the same servers (in bailiwick) or restart from the
			// closest known zone.
			extra = 1
			continue
		}
		if resp.Rcode == dns.RcodeNameError {
			out.Rcode = dns.RcodeNameError
			out.Ns = soaOnly(resp.Ns)
			return out, nil
		}
		// A referral: NS records for a child zone of the current zone
		// that encloses name.
		child, nss := referral(resp, zone, name)
		if child == "" || resp.Authoritative {
			// NODATA (or a final answer without the type).
			out.Rcode = resp.Rcode
			out.Ns = soaOnly(resp.Ns)
			return out, nil
		}
		next, err := r.servers(ctx, st, child, nss, resp.Extra, depth)
		if err != nil {
			return nil, err
		}
		servers, zone, cached, extra = next, child, false, 1
	}
}

// servers returns the addresses of child's name servers from glue, or by
// resolving glueless names, and caches them.
func (r *Recursor) servers(ctx context.Context, st *recState, child string, nss []*dns.NS, extra []dns.RR, depth int) ([]netip.AddrPort, error) {
	next := r.glue(nss, extra, child)
	if len(next) == 0 {
		for _, ns := range nss {
			target := lowerFQDN(ns.Ns)
			if dns.IsSubDomain(child, target) {
				continue // in-bailiwick without glue: unusable
			}
			m, err := r.resolve(ctx, st, target, dns.TypeA, depth+1)
			if err != nil {
				continue
			}
			for _, rr := range m.Answer {
				if a, ok := rr.(*dns.A); ok {
					if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
						next = append(next, netip.AddrPortFrom(ip, r.port))
					}
				}
			}
			if len(next) > 0 {
				break
			}
		}
	}
	if len(next) == 0 {
		return nil, fmt.Errorf("dnsres: no usable name server for %s", child)
	}
	ttl := nss[0].Hdr.Ttl
	for _, ns := range nss {
		ttl = min(ttl, ns.Hdr.Ttl)
	}
	r.remember(child, next, ttl)
	return next, nil
}

// glue returns the addresses of the name servers from in-bailiwick glue.
func (r *Recursor) glue(nss []*dns.NS, extra []dns.RR, child string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, ns := range nss {
		target := strings.ToLower(ns.Ns)
		for _, rr := range extra {
			if !strings.EqualFold(rr.Header().Name, target) {
				continue
			}
			var ip netip.Addr
			switch v := rr.(type) {
			case *dns.A:
				ip, _ = netip.AddrFromSlice(v.A.To4())
			case *dns.AAAA:
				ip, _ = netip.AddrFromSlice(v.AAAA)
			}
			if ip.IsValid() {
				out = append(out, netip.AddrPortFrom(ip, r.port))
			}
		}
	}
	return out
}

// ask queries the servers in random order until one gives a usable
// answer.
func (r *Recursor) ask(ctx context.Context, st *recState, servers []netip.AddrPort, name string, qtype uint16) (*dns.Msg, error) {
	order := rand.Perm(len(servers))
	var errs []error
	for _, i := range order {
		s := servers[i]
		if !r.allowedAddr(s.Addr()) {
			errs = append(errs, fmt.Errorf("%s: not in AllowedNets", s))
			continue
		}
		if st.queries >= r.maxQueries {
			return nil, ErrFetchLimit
		}
		st.queries++
		r.sent.Add(1)
		b, err := poolExchange(ctx, r.pool, s, Question{Name: name, Type: qtype, Class: dns.ClassINET}, r.timeout, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			errs = append(errs, fmt.Errorf("%w from %s: %v", ErrBadReply, s, err))
			continue
		}
		if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
			errs = append(errs, fmt.Errorf("%s: lame (%s)", s, rcodeString(m.Rcode)))
			continue
		}
		return m, nil
	}
	return nil, fmt.Errorf("dnsres: resolve %s %s: %w", name, typeString(qtype), errors.Join(errs...))
}

func (r *Recursor) allowedAddr(a netip.Addr) bool {
	if len(r.allowed) == 0 {
		return true
	}
	a = a.Unmap()
	for _, p := range r.allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func filterRR(rrs []dns.RR, keep func(dns.RR) bool) []dns.RR {
	out := rrs[:0]
	for _, rr := range rrs {
		if keep(rr) && rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}

func soaOnly(rrs []dns.RR) []dns.RR {
	for _, rr := range rrs {
		if _, ok := rr.(*dns.SOA); ok {
			return []dns.RR{rr}
		}
	}
	return nil
}
