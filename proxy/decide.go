package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/proxy/internal/hostport"
	"github.com/jichitai/seccloud/tenant"
)

// Request is what a [Decider] decides on: the arguments of one proxied
// request or tunnel. It is a struct so fields can be added without breaking
// deciders. The Server fills every field it knows; Dest is not resolved yet
// when Decide is called (deciders judge names, the Server judges addresses).
type Request struct {
	// Tenant is the tenant of the client address. Never nil when called by
	// the Server.
	Tenant *tenant.Tenant
	// Client is the address the connection came from.
	Client netip.AddrPort
	// Terminal is the end terminal: the client address, or the address a
	// trusted downstream proxy put in X-Forwarded-For.
	Terminal netip.Addr
	// Method is the HTTP method; "CONNECT" for a tunnel.
	Method string
	// Host is the normalised destination host: a lower-case DNS name
	// without a trailing dot, or an IP address in canonical text form.
	Host string
	// Port is the destination port.
	Port uint16
	// Path is the origin-form path and query ("/a?b"); empty for CONNECT.
	Path string
	// URL is the full URL ("http://host/a?b") or, for CONNECT, "host:port".
	URL string
}

// Decider decides whether a request may pass. Implementations must be safe
// for concurrent use. Decide returns the verdict as a plain value: Action
// ActionBlock refuses the request with the block page, ActionReport lets it
// pass and records what would have been blocked, anything else lets it
// pass. An error fails the request closed (503) and is logged.
type Decider interface {
	Decide(ctx context.Context, r Request) (detect.Verdict, error)
}

// DeciderFunc adapts a function to a Decider.
type DeciderFunc func(ctx context.Context, r Request) (detect.Verdict, error)

// Decide calls f(ctx, r).
func (f DeciderFunc) Decide(ctx context.Context, r Request) (detect.Verdict, error) { return f(ctx, r) }

// Rule ids used in verdicts of the Server and of Lists.
const (
	RuleAllowList   = "proxy-allow-list"
	RuleBlockList   = "proxy-block-list"
	RuleCategory    = "proxy-category"
	RuleNoTenant    = "proxy-no-tenant"
	RuleTenantBan   = "proxy-inter-tenant"
	RuleDestination = "proxy-destination"
	RuleConnectPort = "proxy-connect-port"
	RuleTooMany     = "proxy-tenant-connections"
	RulePolicyError = "proxy-policy-error"
)

// Rules is one set of URL rules. Patterns are:
//
//	example.jp          the host example.jp and every subdomain of it
//	=www.example.jp     exactly this host
//	http://example.jp/a URL prefix: host example.jp, path starting with /a
//
// Host names are compared after normalisation (lower case, no trailing dot,
// A-label form); IP literals in any encoding are normalised too. URL
// prefixes only match plain HTTP requests (the path of a CONNECT tunnel is
// not seen without TLS inspection).
type Rules struct {
	// Block lists patterns to refuse.
	Block []string
	// Allow lists patterns always let through: they win over Block and
	// over categories.
	Allow []string
	// BlockCategories lists categories (see ListConfig.Categories) to
	// refuse.
	BlockCategories []string
	// ReportOnly turns this set's blocks into reports (ActionReport).
	ReportOnly bool
}

// ListConfig configures NewLists.
type ListConfig struct {
	// Global applies to every tenant.
	Global Rules
	// Tenants holds extra rules per tenant id, checked before Global.
	// Each tenant's Policy.BlockCategories are added to its Rules.
	Tenants map[string]Rules
	// Categories maps a domain (and its subdomains) to a category name;
	// see ParseCategories. Nil means no categories.
	Categories map[string]string
}

// Lists is the default Decider: block and allow lists of hosts, domains and
// URL prefixes, and blocked URL categories, cloud-wide and per tenant.
// Allow lists win; then a tenant's blocks, then the global blocks, then
// categories. A tenant with Policy.ReportOnly only gets reports. Lists is
// immutable and safe for concurrent use; it does not allocate on a miss.
type Lists struct {
	global  ruleSet
	tenants map[string]*ruleSet
	cats    map[string]string
}

var _ Decider = (*Lists)(nil)

type ruleSet struct {
	block, allow patterns
	cats         map[string]bool
	reportOnly   bool
}

type patterns struct {
	domains map[string]string   // domain (with subdomains) -> pattern
	exact   map[string]string   // exact host -> pattern
	prefix  map[string][]string // host -> path prefixes (the pattern is "http://host" + prefix)
}

// NewLists validates cfg and builds the lists. Errors name the offending
// pattern and where it was given.
func NewLists(cfg ListConfig) (*Lists, error) {
	l := &Lists{tenants: make(map[string]*ruleSet, len(cfg.Tenants)), cats: make(map[string]string, len(cfg.Categories))}
	if err := l.global.build(cfg.Global, "Global"); err != nil {
		return nil, err
	}
	for id, r := range cfg.Tenants {
		rs := new(ruleSet)
		if err := rs.build(r, fmt.Sprintf("Tenants[%q]", id)); err != nil {
			return nil, err
		}
		l.tenants[id] = rs
	}
	for d, c := range cfg.Categories {
		name, ip, err := hostport.Normalize(d)
		if err != nil || ip.IsValid() {
			return nil, fmt.Errorf("proxy: Categories: invalid domain %q", d)
		}
		if c == "" {
			return nil, fmt.Errorf("proxy: Categories: empty category for %q", d)
		}
		l.cats[name] = c
	}
	return l, nil
}

func (rs *ruleSet) build(r Rules, where string) error {
	rs.reportOnly = r.ReportOnly
	if err := rs.block.add(r.Block, where+".Block"); err != nil {
		return err
	}
	if err := rs.allow.add(r.Allow, where+".Allow"); err != nil {
		return err
	}
	for _, c := range r.BlockCategories {
		if rs.cats == nil {
			rs.cats = make(map[string]bool)
		}
		rs.cats[c] = true
	}
	return nil
}

func (p *patterns) add(pats []string, where string) error {
	for i, pat := range pats {
		if err := p.add1(pat); err != nil {
			return fmt.Errorf("proxy: %s[%d] %q: %w", where, i, pat, err)
		}
	}
	return nil
}

func (p *patterns) add1(pat string) error {
	switch {
	case strings.HasPrefix(pat, "http://"):
		rest := pat[len("http://"):]
		path := "/"
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest, path = rest[:i], rest[i:]
		}
		h, _, err := hostport.Split(rest, 80)
		if err != nil {
			return err
		}
		name, _, err := hostport.Normalize(h)
		if err != nil {
			return err
		}
		if p.prefix == nil {
			p.prefix = make(map[string][]string)
		}
		p.prefix[name] = append(p.prefix[name], path)
	case strings.HasPrefix(pat, "="):
		name, _, err := hostport.Normalize(pat[1:])
		if err != nil {
			return err
		}
		if p.exact == nil {
			p.exact = make(map[string]string)
		}
		p.exact[name] = pat
	case strings.Contains(pat, "://"):
		return fmt.Errorf("only http:// URL prefixes are supported")
	default:
		name, _, err := hostport.Normalize(strings.TrimPrefix(pat, "*."))
		if err != nil {
			return err
		}
		if p.domains == nil {
			p.domains = make(map[string]string)
		}
		p.domains[name] = pat
	}
	return nil
}

// match returns the matching pattern, if any.
func (p *patterns) match(r *Request) (string, bool) {
	if pat, ok := p.exact[r.Host]; ok {
		return pat, true
	}
	if p.domains != nil {
		if pat, ok := lookupSuffix(p.domains, r.Host); ok {
			return pat, true
		}
	}
	if r.Path != "" {
		for _, pre := range p.prefix[r.Host] {
			if strings.HasPrefix(r.Path, pre) {
				return "http://" + r.Host + pre, true
			}
		}
	}
	return "", false
}

// lookupSuffix looks host and each parent domain up in m.
func lookupSuffix(m map[string]string, host string) (string, bool) {
	for h := host; h != ""; {
		if v, ok := m[h]; ok {
			return v, true
		}
		i := strings.IndexByte(h, '.')
		if i < 0 {
			break
		}
		h = h[i+1:]
	}
	return "", false
}

// Decide implements Decider.
func (l *Lists) Decide(_ context.Context, r Request) (detect.Verdict, error) {
	var ts *ruleSet
	var pol tenant.Policy
	if r.Tenant != nil {
		ts = l.tenants[r.Tenant.ID]
		pol = r.Tenant.Policy
	}
	if ts != nil {
		if pat, ok := ts.allow.match(&r); ok {
			return allowVerdict(pat), nil
		}
	}
	if pat, ok := l.global.allow.match(&r); ok {
		return allowVerdict(pat), nil
	}
	if ts != nil {
		if pat, ok := ts.block.match(&r); ok {
			return blockVerdict(RuleBlockList, pat, "on the tenant's block list", ts.reportOnly || pol.ReportOnly), nil
		}
	}
	if pat, ok := l.global.block.match(&r); ok {
		return blockVerdict(RuleBlockList, pat, "on the block list", l.global.reportOnly || pol.ReportOnly), nil
	}
	if len(l.cats) > 0 && !isIPHost(r.Host) {
		if cat, ok := lookupSuffix(l.cats, r.Host); ok {
			switch {
			case ts != nil && ts.cats[cat]:
				return blockVerdict(RuleCategory, cat, "in a category blocked for the tenant", ts.reportOnly || pol.ReportOnly), nil
			case slices.Contains(pol.BlockCategories, cat):
				return blockVerdict(RuleCategory, cat, "in a category blocked for the tenant", pol.ReportOnly), nil
			case l.global.cats[cat]:
				return blockVerdict(RuleCategory, cat, "in a blocked category", l.global.reportOnly || pol.ReportOnly), nil
			}
		}
	}
	return detect.Verdict{}, nil
}

func isIPHost(h string) bool {
	_, err := netip.ParseAddr(h)
	return err == nil
}

func allowVerdict(pat string) detect.Verdict {
	return detect.Verdict{Action: detect.ActionAllow, Rule: RuleAllowList, RuleName: pat, Reason: pat + " is on the allow list"}
}

func blockVerdict(rule, name, why string, report bool) detect.Verdict {
	v := detect.Verdict{Action: detect.ActionBlock, Rule: rule, RuleName: name, Reason: name + " is " + why}
	if report {
		v.Action = detect.ActionReport
	}
	return v
}

// ParseCategories reads a category list: one "domain category" pair a line,
// separated by white space; '#' starts a comment; empty lines are skipped.
// A domain covers its subdomains; a later line for the same domain wins.
// Errors name the line.
func ParseCategories(r io.Reader) (map[string]string, error) {
	m := make(map[string]string)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		switch len(f) {
		case 0:
			continue
		case 2:
		default:
			return nil, fmt.Errorf("proxy: categories line %d: want \"domain category\", got %d fields", n, len(f))
		}
		name, ip, err := hostport.Normalize(f[0])
		if err != nil || ip.IsValid() {
			return nil, fmt.Errorf("proxy: categories line %d: invalid domain %q", n, f[0])
		}
		m[name] = f[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("proxy: categories: %w", err)
	}
	return m, nil
}
