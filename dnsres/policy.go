package dnsres

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
)

// dottedName writes the wire-format name w as a dot-separated name without
// the root dot into buf, for intel lookups. ok is false for the root and
// for labels holding a '.', which no indicator can match.
func dottedName(buf *[256]byte, w []byte) (n int, ok bool) {
	for i := 0; i < len(w); {
		l := int(w[i])
		i++
		if l == 0 {
			break
		}
		if i+l > len(w) || n+l+1 > len(buf) {
			return 0, false
		}
		if n > 0 {
			buf[n] = '.'
			n++
		}
		for _, c := range w[i : i+l] {
			if c == '.' {
				return 0, false
			}
			buf[n] = c
			n++
		}
		i += l
	}
	return n, n > 0
}

// Default of PolicyConfig.
const DefaultSinkholeTTL = 60 * time.Second

// PolicyConfig configures a Policy.
type PolicyConfig struct {
	// Intel holds the threat-intelligence indicators; its domain
	// indicators (each covering its subdomains) are sinkholed. It is
	// shared with the other functions and swapped on reload by whoever
	// owns it. Nil means no list.
	Intel *intel.Live
	// SinkholeA and SinkholeAAAA are the addresses answered for listed
	// names (a warning page). When the one for the question's type is not
	// set, listed names get NXDOMAIN; other question types get NODATA
	// when a sinkhole address is set.
	SinkholeA, SinkholeAAAA netip.Addr
	// TTL of the sinkhole answers; zero means DefaultSinkholeTTL.
	TTL time.Duration
	// RPZ are response-policy zones, consulted before the intel list (so
	// a passthru rule exempts a name from it); reloaded by whoever owns
	// it (RPZ.Load). Nil means none.
	RPZ *RPZ
	// Tenants are per-tenant lists by tenant id, consulted first: Allow
	// names (and names below) skip every other policy; Deny names get the
	// sinkhole answer (or NXDOMAIN), rule "dns-tenant-deny".
	Tenants map[string]TenantLists
}

// TenantLists are one tenant's own allow and deny lists of domains
// (each covering its subdomains).
type TenantLists struct {
	Allow, Deny []string
}

type tenantSets struct {
	allow, deny map[string]struct{}
}

// Policy is the DNS firewall step of the chain: a question for a domain
// on the threat-intelligence list (or below one) is answered with the
// sinkhole address, or NXDOMAIN, and logged as an alert with a verdict
// and a severity. For a tenant in report-only mode the question is
// resolved normally and the alert says what would have been done.
//
// Severity: a terminal looking up a C&C domain shows that malware has
// very likely reached it. When the lookup is sinkholed the connection is
// stopped but the infection is unconfirmed: SeverityReached (2), the SOC
// must check the terminal. In report-only mode the terminal got the real
// address and very likely talked to the C&C server: SeveritySucceeded (3).
//
// Safe for concurrent use; the intel set is swapped by its owner (intel.Live.Store).
type Policy struct {
	cfg     PolicyConfig
	tenants map[string]tenantSets
}

// under reports whether the dotted name or one of its parents is in set.
func under(set map[string]struct{}, name []byte) bool {
	if len(set) == 0 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if i == 0 || name[i-1] == '.' {
			if _, ok := set[string(name[i:])]; ok {
				return true
			}
		}
	}
	return false
}

// NewPolicy validates cfg and returns a Policy.
func NewPolicy(cfg PolicyConfig) (*Policy, error) {
	if cfg.SinkholeA.IsValid() && !cfg.SinkholeA.Unmap().Is4() {
		return nil, fmt.Errorf("dnsres: PolicyConfig.SinkholeA %s is not an IPv4 address", cfg.SinkholeA)
	}
	if cfg.SinkholeAAAA.IsValid() && !cfg.SinkholeAAAA.Is6() {
		return nil, fmt.Errorf("dnsres: PolicyConfig.SinkholeAAAA %s is not an IPv6 address", cfg.SinkholeAAAA)
	}
	if cfg.TTL < 0 {
		return nil, errors.New("dnsres: PolicyConfig.TTL is negative")
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultSinkholeTTL
	}
	if cfg.Intel == nil {
		cfg.Intel = &intel.Live{}
	}
	if cfg.RPZ == nil {
		cfg.RPZ = new(RPZ)
	}
	p := &Policy{cfg: cfg, tenants: map[string]tenantSets{}}
	for id, l := range cfg.Tenants {
		ts := tenantSets{allow: map[string]struct{}{}, deny: map[string]struct{}{}}
		for _, n := range l.Allow {
			ts.allow[normName(n)] = struct{}{}
		}
		for _, n := range l.Deny {
			ts.deny[normName(n)] = struct{}{}
		}
		p.tenants[id] = ts
	}
	return p, nil
}

// Middleware returns the policy step in front of next.
func (p *Policy) Middleware(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) (int, error) {
		var buf [256]byte
		n, ok := dottedName(&buf, r.wireName())
		if !ok {
			return next.ServeDNS(ctx, w, r)
		}
		name := buf[:n]
		var v detect.Verdict
		var listed string
		if r.Tenant != nil && len(p.tenants) > 0 {
			if ts, ok := p.tenants[r.Tenant.ID]; ok {
				if under(ts.allow, name) {
					return next.ServeDNS(ctx, w, r)
				}
				if under(ts.deny, name) {
					listed = string(name)
					v = detect.Verdict{Action: detect.ActionSinkhole, Rule: "dns-tenant-deny", RuleName: "tenant deny list",
						Reason: "query for " + r.Name() + ", on tenant " + r.Tenant.ID + "'s deny list"}
				}
			}
		}
		if v.Rule == "" {
			if rule := p.cfg.RPZ.match(name); rule != nil {
				if rule.Action == RPZPassthru {
					return next.ServeDNS(ctx, w, r)
				}
				return p.serveRPZ(ctx, w, r, rule, next)
			}
		}
		if v.Rule == "" {
			ind, ok := p.cfg.Intel.Load().DomainBytes(name)
			if !ok {
				return next.ServeDNS(ctx, w, r)
			}
			listed = ind.Value
			v = detect.Verdict{Action: detect.ActionSinkhole, Rule: "dns-intel-domain", RuleName: "threat-intelligence domain",
				Reason: "query for " + r.Name() + ", listed as " + listed + " (" + ind.Source + ")"}
		}
		sinkhole := p.sinkholeAddr(r.Type)
		if !sinkhole.IsValid() && !p.cfg.SinkholeA.IsValid() && !p.cfg.SinkholeAAAA.IsValid() {
			v.Action = detect.ActionBlock // NXDOMAIN
		}
		if r.Tenant != nil && r.Tenant.Policy.ReportOnly {
			v.Reason += " (report-only: would " + v.Action.String() + ")"
			v.Action = detect.ActionReport
			r.Verdict, r.Severity = v, detect.SeveritySucceeded
			return next.ServeDNS(ctx, w, r)
		}
		r.Verdict, r.Severity, r.Source = v, detect.SeverityReached, "policy"
		m := new(dns.Msg)
		ttl := uint32(p.cfg.TTL / time.Second)
		hdr := dns.RR_Header{Name: r.Name(), Rrtype: r.Type, Class: dns.ClassINET, Ttl: ttl}
		switch {
		case v.Action == detect.ActionBlock:
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{p.negSOA(listed, ttl)}
		case sinkhole.Is4():
			m.Answer = []dns.RR{&dns.A{Hdr: hdr, A: sinkhole.AsSlice()}}
		case sinkhole.IsValid():
			m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: sinkhole.AsSlice()}}
		default: // NODATA
			m.Ns = []dns.RR{p.negSOA(listed, ttl)}
		}
		return m.Rcode, w.WriteMsg(m)
	})
}

func (p *Policy) sinkholeAddr(qtype uint16) netip.Addr {
	switch qtype {
	case dns.TypeA:
		return p.cfg.SinkholeA.Unmap()
	case dns.TypeAAAA:
		return p.cfg.SinkholeAAAA
	}
	return netip.Addr{}
}

// negSOA is the SOA of a sinkholed domain's negative answers.
func (p *Policy) negSOA(listed string, ttl uint32) dns.RR {
	zone := dns.Fqdn(listed)
	return &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns: "sinkhole.invalid.", Mbox: "hostmaster.sinkhole.invalid.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: ttl}
}

// serveRPZ applies a matched RPZ rule (other than passthru).
func (p *Policy) serveRPZ(ctx context.Context, w ResponseWriter, r *Request, rule *RPZRule, next Handler) (int, error) {
	v := detect.Verdict{Rule: "dns-rpz", RuleName: "RPZ " + rule.Zone,
		Reason: "query for " + r.Name() + " matched " + rule.Trigger + " in RPZ " + rule.Zone + " (" + rule.File + ", record " +
			strconv.Itoa(rule.Record) + "): " + rule.Action.String()}
	switch rule.Action {
	case RPZLocalData:
		v.Action = detect.ActionSinkhole
	case RPZDrop:
		v.Action = detect.ActionDrop
	case RPZTCPOnly:
		if r.TCP {
			return next.ServeDNS(ctx, w, r)
		}
		v.Action = detect.ActionRedirect
	default:
		v.Action = detect.ActionBlock
	}
	if r.Tenant != nil && r.Tenant.Policy.ReportOnly {
		v.Reason += " (report-only: would " + v.Action.String() + ")"
		v.Action = detect.ActionReport
		r.Verdict, r.Severity = v, detect.SeveritySucceeded
		return next.ServeDNS(ctx, w, r)
	}
	r.Verdict, r.Severity, r.Source = v, detect.SeverityReached, "policy"
	if rule.Action == RPZTCPOnly {
		r.Severity = detect.SeverityNone
		r.Verdict = detect.Verdict{}
	}
	m := new(dns.Msg)
	ttl := uint32(p.cfg.TTL / time.Second)
	switch rule.Action {
	case RPZNXDomain:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{p.negSOA(rule.Zone, ttl)}
	case RPZNoData:
		m.Ns = []dns.RR{p.negSOA(rule.Zone, ttl)}
	case RPZDrop:
		return dns.RcodeSuccess, nil // no answer
	case RPZTCPOnly:
		m.Truncated = true
	case RPZLocalData:
		qname := r.Name()
		var cname dns.RR
		for _, d := range rule.Data {
			h := d.Header()
			if h.Rrtype == dns.TypeCNAME {
				cname = d
			}
			if h.Rrtype == r.Type || r.Type == dns.TypeANY {
				rr := dns.Copy(d)
				rr.Header().Name = qname
				m.Answer = append(m.Answer, rr)
			}
		}
		if len(m.Answer) == 0 && cname != nil {
			rr := dns.Copy(cname)
			rr.Header().Name = qname
			m.Answer = append(m.Answer, rr)
		}
		if len(m.Answer) == 0 {
			m.Ns = []dns.RR{p.negSOA(rule.Zone, ttl)}
		}
	}
	return m.Rcode, w.WriteMsg(m)
}
