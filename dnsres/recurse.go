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

	"github.com/jichitai/seccloud/detect"
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
	// instead of the root, and likewise the cache of names known not to
	// be zone cuts (kept for the answer's TTL or the negative TTL, 5 s to
	// 1 hour), which lets QNAME minimisation skip a question it has had
	// answered; zero means DefaultMaxDelegations; negative turns both
	// off.
	MaxDelegations int
	// Now is the clock of the delegation cache; nil means time.Now.
	Now func() time.Time
	// Sockets is the number of pre-opened UDP sockets queries are spread
	// over (as ForwarderConfig.Sockets); zero means DefaultForwardSockets;
	// negative opens a fresh socket per query.
	Sockets int
	// FetchesPerZone caps the queries outstanding at once to the servers
	// of one zone (the root and TLDs included), like BIND's
	// fetches-per-zone: a resolution that would exceed it fails at once
	// with ErrZoneFetchLimit, so one zone whose servers stop answering (a
	// random-subdomain "water torture" flood against one domain) holds at
	// most this many queries and cannot tie up the resolver. Zero means
	// DefaultFetchesPerZone (200); negative means no limit.
	FetchesPerZone int
	// FetchesPerServer caps the queries outstanding at once to one
	// name-server address, whatever the zones (a flood spread over many
	// zones hosted on one server, like BIND's fetches-per-server): a
	// server at the cap is skipped for the zone's next server; when all
	// are, the resolution fails at once with ErrServerFetchLimit. Zero
	// means DefaultFetchesPerServer (1,000); negative means no limit.
	FetchesPerServer int
	// Sink, when not nil, receives an alert (rule "dns-fetch-limit"; the
	// zone in destination.domain and label dns_domain, or the server in
	// destination.ip) when a zone or a server first reaches its limit, at
	// most once per zone or server and minute. Emit must not block.
	Sink detect.Sink
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
// referrals (using in-bailiwick glue, A or AAAA; resolving glueless name
// servers' A, then AAAA, records, with loop protection), CNAME and DNAME
// chains (RFC 6672: the CNAME is synthesised from the DNAME, and answers
// carry the DNAME, the CNAME and the final records) up to 8 links in all,
// and accepts only records within the bailiwick of the server that sent
// them. At most FetchesPerZone queries are outstanding per zone and
// FetchesPerServer per server address; beyond, resolutions fail at once
// (ErrZoneFetchLimit, ErrServerFetchLimit). A server that times out or
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
	nocut      map[string]time.Time // names known not to be zone cuts → until
	sent       atomic.Uint64
	pool       *upool
	limit      *fetchLimiter[string]     // per zone; nil: no limit
	slimit     *fetchLimiter[netip.Addr] // per server address; nil: no limit
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

// noCut reports whether name is known (from an earlier minimised
// question answered authoritatively, without a referral) not to be a
// zone cut: QNAME minimisation can skip asking for it, as Unbound does
// from its cache. Skipping is always safe: a cut added since is found
// by the referral for a longer name.
func (r *Recursor) noCut(name string) bool {
	if r.maxDeleg <= 0 {
		return false
	}
	r.dmu.Lock()
	defer r.dmu.Unlock()
	until, ok := r.nocut[name]
	if ok && !r.now().Before(until) {
		delete(r.nocut, name)
		return false
	}
	return ok
}

// rememberNoCut records that name is no zone cut for ttl seconds (at
// least 5, at most one hour), bounded by MaxDelegations like the
// delegation cache.
func (r *Recursor) rememberNoCut(name string, ttl uint32) {
	if r.maxDeleg <= 0 {
		return
	}
	d := time.Duration(min(max(ttl, 5), 3600)) * time.Second
	now := r.now()
	r.dmu.Lock()
	if len(r.nocut) >= r.maxDeleg {
		for k, v := range r.nocut {
			if !now.Before(v) {
				delete(r.nocut, k)
			}
		}
		if len(r.nocut) >= r.maxDeleg {
			clear(r.nocut)
		}
	}
	r.nocut[name] = now.Add(d)
	r.dmu.Unlock()
}

// negativeTTL is how long resp's answer for a name may be relied on: the
// lowest TTL of its answer records, else min(SOA TTL, SOA MINIMUM)
// (RFC 2308), else 0.
func negativeTTL(resp *dns.Msg) uint32 {
	ttl, found := uint32(0), false
	for _, rr := range resp.Answer {
		if t := rr.Header().Ttl; !found || t < ttl {
			ttl, found = t, true
		}
	}
	if found {
		return ttl
	}
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(soa.Hdr.Ttl, soa.Minttl)
		}
	}
	return 0
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
		qmin: !cfg.NoQNAMEMinimisation, maxDeleg: cfg.MaxDelegations, now: cfg.Now, deleg: map[string]delegation{},
		nocut: map[string]time.Time{}}
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
	if cfg.FetchesPerZone >= 0 {
		n := cfg.FetchesPerZone
		if n == 0 {
			n = DefaultFetchesPerZone
		}
		r.limit = newFetchLimiter[string](n, cfg.Sink, r.now)
	}
	if cfg.FetchesPerServer >= 0 {
		n := cfg.FetchesPerServer
		if n == 0 {
			n = DefaultFetchesPerServer
		}
		r.slimit = newFetchLimiter[netip.Addr](n, cfg.Sink, r.now)
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
	// nsBusy are the name-server names being resolved for a glueless
	// delegation on the way: asking for one of them again is a loop.
	nsBusy map[string]bool
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
	seen := map[string]bool{name: true}
	extra := 1 // labels below zone asked (QNAME minimisation)
	for links := 0; ; {
		ask, atype := name, qtype
		if zl, nl := dns.CountLabel(zone), dns.CountLabel(name); r.qmin && zl+extra < nl && extra <= maxMinimise {
			idx := dns.Split(name)
			ask, atype = name[idx[nl-(zl+extra)]:], dns.TypeA
			if r.noCut(ask) {
				extra++ // known: no zone cut here
				continue
			}
		}
		resp, err := r.ask(ctx, st, zone, servers, ask, atype)
		if err != nil {
			if cached && !fetchLimited(err) && ctx.Err() == nil {
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

		// A minimised question answered with a DNAME above it: the DNAME
		// redirects the full name too; follow it below.
		if ask != name && dnameOver(resp.Answer, ask) == nil {
			if resp.Rcode == dns.RcodeNameError {
				// Nothing exists below a name that does not exist (RFC 8020).
				out.Rcode = dns.RcodeNameError
				out.Ns = soaOnly(resp.Ns)
				return out, nil
			}
			child, nss := referral(resp, zone, ask)
			if child == "" || resp.Authoritative {
				if resp.Authoritative && resp.Rcode == dns.RcodeSuccess {
					r.rememberNoCut(ask, negativeTTL(resp))
				}
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

		// Answers: follow the CNAME and DNAME links inside this response.
		progressed := false
		for {
			if d := dnameOver(resp.Answer, name); d != nil {
				// RFC 6672: replace the DNAME's owner at the end of name by
				// its target, synthesising the CNAME ourselves (a CNAME the
				// server sent for name is not trusted).
				progressed = true
				if !containsRR(out.Answer, d) {
					out.Answer = append(out.Answer, d)
				}
				target, ok := substituteDNAME(name, d)
				if !ok {
					out.Rcode = dns.RcodeYXDomain // the new name would be too long
					return out, nil
				}
				out.Answer = append(out.Answer, &dns.CNAME{
					Hdr:    dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: d.Hdr.Ttl},
					Target: target,
				})
				links++
				name = target
				if links > maxCNAMEChain || seen[name] {
					out.Rcode = dns.RcodeServerFailure
					return out, nil // DNAME/CNAME loop or chain too long
				}
				seen[name] = true
				continue
			}
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

// dnameOver returns the DNAME in rrs whose owner is a proper ancestor of
// name (the closest one), or nil.
func dnameOver(rrs []dns.RR, name string) *dns.DNAME {
	var best *dns.DNAME
	for _, rr := range rrs {
		d, ok := rr.(*dns.DNAME)
		if !ok {
			continue
		}
		owner := strings.ToLower(d.Hdr.Name)
		if owner == name || !dns.IsSubDomain(owner, name) {
			continue
		}
		if best == nil || dns.CountLabel(owner) > dns.CountLabel(best.Hdr.Name) {
			best = d
		}
	}
	return best
}

// substituteDNAME replaces d's owner at the end of name by d's target
// (RFC 6672 §2.2); false when the result is not a valid name (longer
// than 255 octets: YXDOMAIN).
func substituteDNAME(name string, d *dns.DNAME) (string, bool) {
	owner, target := lowerFQDN(d.Hdr.Name), lowerFQDN(d.Target)
	prefix := name[:len(name)-len(owner)] // "www." for www.old.example. below old.example.
	if owner == "." {
		prefix = name
	}
	out := prefix + target
	if target == "." {
		out = prefix
	}
	if len(out) > 254 {
		return "", false
	}
	if _, ok := dns.IsDomainName(out); !ok {
		return "", false
	}
	return out, true
}

func containsRR(rrs []dns.RR, rr dns.RR) bool {
	for _, x := range rrs {
		if dns.IsDuplicate(x, rr) {
			return true
		}
	}
	return false
}

// servers returns the addresses of child's name servers from glue, or by
// resolving glueless names (A, then AAAA when A gives no usable address),
// and caches them. A name server whose resolution is already under way
// in this resolution (a glueless loop: a.test served by ns.b.test, b.test
// by ns.a.test) is skipped.
func (r *Recursor) servers(ctx context.Context, st *recState, child string, nss []*dns.NS, extra []dns.RR, depth int) ([]netip.AddrPort, error) {
	next := r.glue(nss, extra)
	var errs []error
	if len(next) == 0 {
		for _, ns := range nss {
			target := lowerFQDN(ns.Ns)
			if dns.IsSubDomain(child, target) {
				continue // in-bailiwick without glue: unusable
			}
			if st.nsBusy[target] {
				errs = append(errs, fmt.Errorf("name server %s: glueless loop", target))
				continue
			}
			if st.nsBusy == nil {
				st.nsBusy = map[string]bool{}
			}
			st.nsBusy[target] = true
			addrs, err := r.nsAddrs(ctx, st, target, depth)
			delete(st.nsBusy, target)
			if err != nil {
				errs = append(errs, err)
			}
			next = append(next, addrs...)
			if len(next) > 0 || ctx.Err() != nil {
				break
			}
		}
	}
	if len(next) == 0 {
		if len(errs) > 0 {
			return nil, fmt.Errorf("dnsres: no usable name server for %s: %w", child, errors.Join(errs...))
		}
		return nil, fmt.Errorf("dnsres: no usable name server for %s", child)
	}
	ttl := nss[0].Hdr.Ttl
	for _, ns := range nss {
		ttl = min(ttl, ns.Hdr.Ttl)
	}
	r.remember(child, next, ttl)
	return next, nil
}

// nsAddrs resolves a name server's addresses: A records, or AAAA records
// when the A records give no usable (allowed) address.
func (r *Recursor) nsAddrs(ctx context.Context, st *recState, target string, depth int) ([]netip.AddrPort, error) {
	var errs []error
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		m, err := r.resolve(ctx, st, target, t, depth+1)
		if err != nil {
			errs = append(errs, err)
			if errors.Is(err, ErrFetchLimit) || fetchLimited(err) || ctx.Err() != nil {
				break
			}
			continue
		}
		var out []netip.AddrPort
		for _, rr := range m.Answer {
			var ip netip.Addr
			switch v := rr.(type) {
			case *dns.A:
				ip, _ = netip.AddrFromSlice(v.A.To4())
			case *dns.AAAA:
				ip, _ = netip.AddrFromSlice(v.AAAA.To16())
			}
			if ip.IsValid() && r.allowedAddr(ip) {
				out = append(out, netip.AddrPortFrom(ip, r.port))
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	return nil, errors.Join(errs...)
}

// glue returns the usable addresses of the name servers from glue (the
// caller has dropped records outside the referring server's bailiwick).
func (r *Recursor) glue(nss []*dns.NS, extra []dns.RR) []netip.AddrPort {
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
				ip, _ = netip.AddrFromSlice(v.AAAA.To16())
			}
			if ip.IsValid() && r.allowedAddr(ip) {
				out = append(out, netip.AddrPortFrom(ip, r.port))
			}
		}
	}
	return out
}

// ask queries the servers of zone in random order until one gives a
// usable answer. It holds one of the zone's fetch slots meanwhile (the
// servers are tried one after the other); none free: ErrZoneFetchLimit.
func (r *Recursor) ask(ctx context.Context, st *recState, zone string, servers []netip.AddrPort, name string, qtype uint16) (*dns.Msg, error) {
	if !r.limit.acquire(zone) {
		return nil, fmt.Errorf("%w: %s", ErrZoneFetchLimit, zone)
	}
	defer r.limit.release(zone)
	order := rand.Perm(len(servers))
	var errs []error
	busy, tried := 0, 0
	for _, i := range order {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		s := servers[i]
		if !r.allowedAddr(s.Addr()) {
			errs = append(errs, fmt.Errorf("%s: not in AllowedNets", s))
			continue
		}
		if st.queries >= r.maxQueries {
			return nil, ErrFetchLimit
		}
		if !r.slimit.acquire(s.Addr()) {
			busy++
			errs = append(errs, fmt.Errorf("%s: at the per-server fetch limit", s.Addr()))
			continue
		}
		tried++
		st.queries++
		r.sent.Add(1)
		b, err := poolExchange(ctx, r.pool, s, Question{Name: name, Type: qtype, Class: dns.ClassINET}, r.timeout, false)
		r.slimit.release(s.Addr())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			errs = append(errs, fmt.Errorf("%w from %s: %v", ErrBadReply, s, err))
			continue
		}
		if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError && m.Rcode != dns.RcodeYXDomain {
			errs = append(errs, fmt.Errorf("%s: lame (%s)", s, rcodeString(m.Rcode)))
			continue
		}
		return m, nil
	}
	if busy > 0 && tried == 0 && ctx.Err() == nil {
		return nil, fmt.Errorf("%w: %s (zone %s)", ErrServerFetchLimit, name, zone)
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
