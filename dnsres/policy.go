package dnsres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
)

// DomainList is a set of domains, each covering its subdomains: the
// threat-intelligence list of C&C and malware domains. The zero value is
// an empty list. A DomainList is immutable once built and safe for
// concurrent use.
type DomainList struct {
	m map[string]string // wire name → presentation name
}

// ListError is a bad line of a domain list.
type ListError struct {
	File string
	Line int
	Err  error
}

func (e *ListError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *ListError) Unwrap() error { return e.Err }

// ParseDomainList reads a domain list: one domain a line, '#' starts a
// comment, blank lines ignored, IDNs accepted; a leading "*." or "." is
// allowed and means the same (subdomains are always covered). Every bad
// line is reported (as *ListError, joined) and skipped; the good lines
// make the list. file names the input in errors.
func ParseDomainList(rd io.Reader, file string) (*DomainList, error) {
	l := &DomainList{m: make(map[string]string)}
	var errs []error
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		line = strings.TrimPrefix(strings.TrimPrefix(line, "*"), ".")
		if err := l.add(line); err != nil {
			errs = append(errs, &ListError{File: file, Line: n, Err: err})
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("dnsres: read %s: %w", file, err))
	}
	return l, errors.Join(errs...)
}

// LoadDomainList reads the domain list files; see ParseDomainList.
func LoadDomainList(files ...string) (*DomainList, error) {
	all := &DomainList{m: make(map[string]string)}
	var errs []error
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("dnsres: %w", err))
			continue
		}
		l, err := ParseDomainList(fh, f)
		fh.Close()
		errs = append(errs, err)
		for k, v := range l.m {
			all.m[k] = v
		}
	}
	return all, errors.Join(errs...)
}

// NewDomainList returns a list of the given domains.
func NewDomainList(domains ...string) (*DomainList, error) {
	l := &DomainList{m: make(map[string]string)}
	var errs []error
	for _, d := range domains {
		if err := l.add(d); err != nil {
			errs = append(errs, fmt.Errorf("dnsres: domain %q: %w", d, err))
		}
	}
	return l, errors.Join(errs...)
}

func (l *DomainList) add(d string) error {
	n, err := tenant.NormalizeDomain(d)
	if err != nil {
		return err
	}
	w, ok := toWire(n)
	if !ok {
		return errors.New("not a domain name")
	}
	l.m[w] = n
	return nil
}

// Len returns the number of domains.
func (l *DomainList) Len() int {
	if l == nil {
		return 0
	}
	return len(l.m)
}

// Match reports whether name (presentation form, any case) is on the list
// or below a listed domain, and returns the listed domain.
func (l *DomainList) Match(name string) (string, bool) {
	w, ok := toWire(strings.ToLower(name))
	if !ok {
		return "", false
	}
	return l.matchWire([]byte(w))
}

func (l *DomainList) matchWire(name []byte) (found string, ok bool) {
	if l == nil || len(l.m) == 0 {
		return "", false
	}
	eachSuffix(name, false, func(s []byte) bool {
		found, ok = l.m[string(s)]
		return ok
	})
	return found, ok
}

// Default of PolicyConfig.
const DefaultSinkholeTTL = 60 * time.Second

// PolicyConfig configures a Policy.
type PolicyConfig struct {
	// Domains is the threat-intelligence list; nil means empty (it can be
	// replaced later with SetDomains).
	Domains *DomainList
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
// Safe for concurrent use; SetDomains replaces the list atomically.
type Policy struct {
	cfg     PolicyConfig
	domains atomic.Pointer[DomainList]
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
	p := &Policy{cfg: cfg}
	p.SetDomains(cfg.Domains)
	return p, nil
}

// SetDomains replaces the threat-intelligence list (nil empties it).
func (p *Policy) SetDomains(l *DomainList) {
	if l == nil {
		l = &DomainList{}
	}
	p.domains.Store(l)
}

// Middleware returns the policy step in front of next.
func (p *Policy) Middleware(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) (int, error) {
		listed, ok := p.domains.Load().matchWire(r.wireName())
		if !ok {
			return next.ServeDNS(ctx, w, r)
		}
		v := detect.Verdict{Action: detect.ActionSinkhole, Rule: "dns-intel-domain", RuleName: "threat-intelligence domain",
			Reason: "query for " + r.Name() + ", listed as " + listed}
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
