package dnsres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
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
}

// Recursor is a Resolver that iterates from the root hints: it follows
// referrals (using in-bailiwick glue, resolving glueless name servers),
// CNAME chains up to 8 links, and accepts only records within the
// bailiwick of the server that sent them. A server that times out or
// answers SERVFAIL/REFUSED (lame) is skipped for the next one. It does
// not validate DNSSEC and does not minimise QNAMEs yet. Safe for
// concurrent use.
type Recursor struct {
	roots      []netip.AddrPort
	port       uint16
	allowed    []netip.Prefix
	timeout    time.Duration
	maxQueries int
}

var _ Resolver = (*Recursor)(nil)

// NewRecursor validates cfg and returns a Recursor.
func NewRecursor(cfg RecursorConfig) (*Recursor, error) {
	if len(cfg.RootHints) == 0 {
		return nil, errors.New("dnsres: RecursorConfig.RootHints is empty")
	}
	if cfg.Port < 0 || cfg.Port > 65535 || cfg.Timeout < 0 || cfg.MaxQueries < 0 {
		return nil, errors.New("dnsres: RecursorConfig: Port, Timeout or MaxQueries out of range")
	}
	r := &Recursor{port: 53, allowed: cfg.AllowedNets, timeout: cfg.Timeout, maxQueries: cfg.MaxQueries}
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
	servers, zone := r.roots, "."
	seen := map[string]bool{}
	for links := 0; ; {
		resp, err := r.ask(ctx, st, servers, name, qtype)
		if err != nil {
			return nil, err
		}
		inZone := func(rr dns.RR) bool { return dns.IsSubDomain(zone, strings.ToLower(rr.Header().Name)) }
		resp.Answer = filterRR(resp.Answer, inZone)
		resp.Ns = filterRR(resp.Ns, inZone)
		resp.Extra = filterRR(resp.Extra, inZone)

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
				servers, zone = r.roots, "."
			}
			// Ask the same servers (in bailiwick) or restart from the root.
			continue
		}
		if resp.Rcode == dns.RcodeNameError {
			out.Rcode = dns.RcodeNameError
			out.Ns = soaOnly(resp.Ns)
			return out, nil
		}
		// A referral: NS records for a child zone of the current zone
		// that encloses name.
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
		if child == "" || resp.Authoritative {
			// NODATA (or a final answer without the type).
			out.Rcode = resp.Rcode
			out.Ns = soaOnly(resp.Ns)
			return out, nil
		}
		next := r.glue(nss, resp.Extra, child)
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
		servers, zone = next, child
	}
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
		m, err := exchange(ctx, s, Question{Name: name, Type: qtype, Class: dns.ClassINET}, r.timeout, false)
		if err != nil {
			errs = append(errs, err)
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
