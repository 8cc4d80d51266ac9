package dnsres

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
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
	cfg PolicyConfig
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
	return &Policy{cfg: cfg}, nil
}

// Middleware returns the policy step in front of next.
func (p *Policy) Middleware(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) (int, error) {
		var buf [256]byte
		n, ok := dottedName(&buf, r.wireName())
		if !ok {
			return next.ServeDNS(ctx, w, r)
		}
		ind, ok := p.cfg.Intel.Load().DomainBytes(buf[:n])
		if !ok {
			return next.ServeDNS(ctx, w, r)
		}
		listed := ind.Value
		v := detect.Verdict{Action: detect.ActionSinkhole, Rule: "dns-intel-domain", RuleName: "threat-intelligence domain",
			Reason: "query for " + r.Name() + ", listed as " + listed + " (" + ind.Source + ")"}
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
