package tenant

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/jichitai/seccloud/internal/lpm"
)

// Directory answers "which tenant is this?" for the security functions.
// Implementations must be safe for concurrent use and should not allocate.
type Directory interface {
	// ByAddr returns the tenant whose network holds a (longest-prefix
	// match). IPv4-mapped IPv6 addresses match IPv4 networks.
	ByAddr(a netip.Addr) (*Tenant, bool)
	// ByDomain returns the tenant owning name as a mail domain or DNS zone,
	// by longest suffix: "mail.city.example.jp" matches a tenant owning
	// "city.example.jp". Case and a trailing dot are ignored.
	ByDomain(name string) (*Tenant, bool)
	// BySite returns the site serving host (exact match first, then a
	// one-label "*." wildcard) and its tenant. A ":port" suffix is ignored.
	BySite(host string) (*Site, *Tenant, bool)
}

// Options tune validation in NewSnapshot. The zero value is the default.
type Options struct {
	// MaxAccounts caps accounts per tenant; 0 means MaxAccounts (5).
	MaxAccounts int
}

// Snapshot is an immutable, validated set of tenants with lookup tables. It
// implements Directory; all methods are safe for concurrent use and do not
// allocate. Build one with NewSnapshot; swap snapshots atomically with Live.
type Snapshot struct {
	tenants []*Tenant
	byID    map[string]*Tenant
	nets    *lpm.Table
	domains map[string]*Tenant
	sites   map[string]siteRef
}

type siteRef struct {
	site   *Site
	tenant *Tenant
}

var _ Directory = (*Snapshot)(nil)

// NewSnapshot validates tenants and builds a Snapshot from a deep copy of
// them, so later changes to the argument do not affect it. Domain names and
// site hosts are normalised to lower-case A-labels (Japanese IDNs such as
// "三重.jp" are accepted). It returns every problem found as Errors:
// duplicate or malformed ids, bad or overlapping networks between two
// tenants, a mail domain, zone or site claimed twice, missing egress
// address, malformed contacts, too many accounts.
func NewSnapshot(tenants []Tenant, opt Options) (*Snapshot, error) {
	maxAcc := opt.MaxAccounts
	if maxAcc <= 0 {
		maxAcc = MaxAccounts
	}
	s := &Snapshot{
		byID:    make(map[string]*Tenant, len(tenants)),
		domains: make(map[string]*Tenant),
		sites:   make(map[string]siteRef),
	}
	var errs Errors
	bad := func(i int, t *Tenant, field, value, msg string) {
		errs = append(errs, &FieldError{Index: i, Tenant: t.ID, Field: field, Value: value, Msg: msg})
	}
	type claim struct {
		idx   int
		field string
	}
	domainOwner := map[string]claim{}
	siteOwner := map[string]claim{}
	accountOwner := map[string]claim{}
	var entries []lpm.Entry

	for i := range tenants {
		t := cloneTenant(&tenants[i])
		s.tenants = append(s.tenants, t)
		if !validID(t.ID) {
			bad(i, t, "id", t.ID, "must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit")
		} else if _, dup := s.byID[t.ID]; dup {
			bad(i, t, "id", t.ID, "used by another tenant")
		} else {
			s.byID[t.ID] = t
		}
		if strings.TrimSpace(t.Name) == "" || !utf8.ValidString(t.Name) {
			bad(i, t, "name", t.Name, "must be non-empty valid UTF-8")
		}
		for j, p := range t.Networks {
			f := fmt.Sprintf("networks[%d]", j)
			if !p.IsValid() {
				bad(i, t, f, p.String(), "invalid prefix")
				continue
			}
			if p.Masked() != p {
				bad(i, t, f, p.String(), fmt.Sprintf("host bits set; did you mean %s?", p.Masked()))
				continue
			}
			if p.Addr().Zone() != "" {
				bad(i, t, f, p.String(), "zoned address")
				continue
			}
			entries = append(entries, lpm.Entry{Prefix: p, Owner: int32(i), Tag: int32(j)})
		}
		if len(t.EgressAddr) == 0 && !t.Policy.EgressOptional {
			bad(i, t, "egress_addr", "", "missing: every tenant needs a fixed egress address (or policy.egress_optional)")
		}
		for j, a := range t.EgressAddr {
			if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
				bad(i, t, fmt.Sprintf("egress_addr[%d]", j), a.String(), "not a unicast address")
			}
		}
		if t.Bandwidth.UpMbps < 0 || t.Bandwidth.DownMbps < 0 || t.Bandwidth.Weight < 0 {
			bad(i, t, "bandwidth", fmt.Sprintf("%+v", t.Bandwidth), "negative value")
		}
		claimDomain := func(field, name string) (string, bool) {
			n, err := NormalizeDomain(name)
			if err != nil {
				bad(i, t, field, name, err.Error())
				return "", false
			}
			if c, ok := domainOwner[n]; ok && c.idx != i {
				errs = append(errs, &FieldError{Index: i, Tenant: t.ID, Field: field, Value: name,
					Msg: "already claimed by another tenant", OtherTenant: tenants[c.idx].ID, OtherIndex: c.idx, OtherField: c.field})
				return n, false
			}
			if _, ok := domainOwner[n]; !ok {
				domainOwner[n] = claim{i, field}
				s.domains[n] = t
			}
			return n, true
		}
		for j, d := range t.MailDomains {
			f := fmt.Sprintf("mail_domains[%d]", j)
			if n, ok := claimDomain(f, d); n != "" && ok {
				t.MailDomains[j] = n
			}
		}
		for j, d := range t.Zones {
			f := fmt.Sprintf("zones[%d]", j)
			if n, ok := claimDomain(f, d); n != "" && ok {
				t.Zones[j] = n
			}
		}
		for j, m := range t.MailServers {
			if _, _, err := net.SplitHostPort(m); err != nil {
				bad(i, t, fmt.Sprintf("mail_servers[%d]", j), m, "want host:port")
			}
		}
		for j := range t.Sites {
			site := &t.Sites[j]
			f := fmt.Sprintf("sites[%d].host", j)
			host, err := normalizeSiteHost(site.Host)
			if err != nil {
				bad(i, t, f, site.Host, err.Error())
			} else if c, ok := siteOwner[host]; ok {
				errs = append(errs, &FieldError{Index: i, Tenant: t.ID, Field: f, Value: site.Host,
					Msg: "already claimed", OtherTenant: tenants[c.idx].ID, OtherIndex: c.idx, OtherField: c.field})
			} else {
				site.Host = host
				siteOwner[host] = claim{i, f}
				s.sites[host] = siteRef{site: site, tenant: t}
			}
			if len(site.Origins) == 0 {
				bad(i, t, fmt.Sprintf("sites[%d].origins", j), "", "at least one origin is required")
			}
			for k, o := range site.Origins {
				if !validOrigin(o) {
					bad(i, t, fmt.Sprintf("sites[%d].origins[%d]", j, k), o, "want host:port or http(s)://host[:port]")
				}
			}
			if (site.TLSCert == "") != (site.TLSKey == "") {
				bad(i, t, fmt.Sprintf("sites[%d].tls_cert", j), site.TLSCert, "tls_cert and tls_key go together")
			}
		}
		for j, c := range t.Contacts {
			f := fmt.Sprintf("contacts[%d]", j)
			if strings.TrimSpace(c.Name) == "" {
				bad(i, t, f+".name", c.Name, "missing")
			}
			if c.Email == "" && c.Phone == "" && c.Webhook == "" {
				bad(i, t, f, c.Name, "needs at least one of email, phone, webhook")
			}
			if c.Email != "" {
				if a, err := mail.ParseAddress(c.Email); err != nil || a.Name != "" {
					bad(i, t, f+".email", c.Email, "not a plain mail address")
				}
			}
			if c.Webhook != "" {
				if u, err := url.Parse(c.Webhook); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					bad(i, t, f+".webhook", c.Webhook, "want an http(s) URL")
				}
			}
		}
		if len(t.Accounts) > maxAcc {
			bad(i, t, "accounts", fmt.Sprint(len(t.Accounts)), fmt.Sprintf("at most %d accounts per tenant", maxAcc))
		}
		for j, a := range t.Accounts {
			f := fmt.Sprintf("accounts[%d]", j)
			if a.Name == "" {
				bad(i, t, f+".name", "", "missing")
			} else if c, ok := accountOwner[a.Name]; ok {
				errs = append(errs, &FieldError{Index: i, Tenant: t.ID, Field: f + ".name", Value: a.Name,
					Msg: "account name already used", OtherTenant: tenants[c.idx].ID, OtherIndex: c.idx, OtherField: c.field})
			} else {
				accountOwner[a.Name] = claim{i, f + ".name"}
			}
			switch a.Role {
			case "", RoleAdmin, RoleViewer:
			default:
				bad(i, t, f+".role", string(a.Role), "want admin or viewer")
			}
		}
	}
	var conflicts []lpm.Conflict
	s.nets, conflicts = lpm.Build(entries)
	for _, c := range conflicts {
		in, out := tenants[c.Inner.Owner], tenants[c.Outer.Owner]
		errs = append(errs, &FieldError{
			Index: int(c.Inner.Owner), Tenant: in.ID,
			Field: fmt.Sprintf("networks[%d]", c.Inner.Tag), Value: in.Networks[c.Inner.Tag].String(),
			Msg:         fmt.Sprintf("overlaps %s", out.Networks[c.Outer.Tag]),
			OtherTenant: out.ID, OtherIndex: int(c.Outer.Owner), OtherField: fmt.Sprintf("networks[%d]", c.Outer.Tag),
		})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// Tenants returns the tenants in configuration order. The slice and the
// tenants must not be modified.
func (s *Snapshot) Tenants() []*Tenant { return s.tenants }

// ByID returns the tenant with the given id.
func (s *Snapshot) ByID(id string) (*Tenant, bool) {
	t, ok := s.byID[id]
	return t, ok
}

// ByAddr implements Directory.
func (s *Snapshot) ByAddr(a netip.Addr) (*Tenant, bool) {
	if i := s.nets.Lookup(a); i >= 0 {
		return s.tenants[i], true
	}
	return nil, false
}

// ByDomain implements Directory.
func (s *Snapshot) ByDomain(name string) (*Tenant, bool) {
	var buf [256]byte
	n, ok := lowerInto(&buf, name)
	if !ok {
		return nil, false
	}
	b := buf[:n]
	for {
		if t, ok := s.domains[string(b)]; ok {
			return t, true
		}
		dot := indexByte(b, '.')
		if dot < 0 {
			return nil, false
		}
		b = b[dot+1:]
	}
}

// BySite implements Directory.
func (s *Snapshot) BySite(host string) (*Site, *Tenant, bool) {
	host = stripPort(host)
	var buf [256]byte
	n, ok := lowerInto(&buf, host)
	if !ok {
		return nil, nil, false
	}
	if r, ok := s.sites[string(buf[:n])]; ok {
		return r.site, r.tenant, true
	}
	dot := indexByte(buf[:n], '.')
	if dot <= 0 {
		return nil, nil, false
	}
	// "*.rest": overwrite the first label's last byte with '*'.
	buf[dot-1] = '*'
	if r, ok := s.sites[string(buf[dot-1:n])]; ok {
		return r.site, r.tenant, true
	}
	return nil, nil, false
}

// Live holds the current Snapshot and swaps it atomically on reload. It
// implements Directory by delegating to the current snapshot; a request that
// must see one consistent snapshot throughout calls Load once and keeps the
// result. The zero value holds no snapshot and finds nothing. Safe for
// concurrent use.
type Live struct {
	p atomic.Pointer[Snapshot]
}

var _ Directory = (*Live)(nil)

// NewLive returns a Live holding s.
func NewLive(s *Snapshot) *Live {
	l := &Live{}
	l.p.Store(s)
	return l
}

// Load returns the current snapshot (nil if none was stored).
func (l *Live) Load() *Snapshot { return l.p.Load() }

// Store makes s the current snapshot and returns the previous one. Requests
// already holding the previous snapshot keep it.
func (l *Live) Store(s *Snapshot) *Snapshot { return l.p.Swap(s) }

// ByAddr implements Directory.
func (l *Live) ByAddr(a netip.Addr) (*Tenant, bool) {
	if s := l.p.Load(); s != nil {
		return s.ByAddr(a)
	}
	return nil, false
}

// ByDomain implements Directory.
func (l *Live) ByDomain(name string) (*Tenant, bool) {
	if s := l.p.Load(); s != nil {
		return s.ByDomain(name)
	}
	return nil, false
}

// BySite implements Directory.
func (l *Live) BySite(host string) (*Site, *Tenant, bool) {
	if s := l.p.Load(); s != nil {
		return s.BySite(host)
	}
	return nil, nil, false
}

// NormalizeDomain returns name as lower-case A-labels without a trailing
// dot, converting Unicode (e.g. Japanese) labels with IDNA lookup rules. It
// refuses empty names, labels longer than 63 bytes, names longer than 253
// bytes and characters outside letters, digits, '-' and '_'.
func NormalizeDomain(name string) (string, error) {
	n := strings.TrimSuffix(strings.TrimSpace(name), ".")
	if n == "" {
		return "", fmt.Errorf("empty domain name")
	}
	if !isASCII(n) {
		a, err := idna.Lookup.ToASCII(n)
		if err != nil {
			return "", fmt.Errorf("not a valid internationalised domain name: %w", err)
		}
		n = a
	}
	n = strings.ToLower(n)
	if len(n) > 253 {
		return "", fmt.Errorf("longer than 253 bytes")
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("label %q must be 1-63 bytes", label)
		}
		for k := 0; k < len(label); k++ {
			c := label[k]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("character %q not allowed in a domain name", c)
			}
		}
	}
	return n, nil
}

func normalizeSiteHost(h string) (string, error) {
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		n, err := NormalizeDomain(rest)
		if err != nil {
			return "", err
		}
		return "*." + n, nil
	}
	if strings.Contains(h, "*") {
		return "", fmt.Errorf("a wildcard may only be a whole first label (\"*.example.jp\")")
	}
	return NormalizeDomain(h)
}

func validOrigin(o string) bool {
	if strings.Contains(o, "://") {
		u, err := url.Parse(o)
		return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
	}
	h, p, err := net.SplitHostPort(o)
	return err == nil && h != "" && p != ""
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// lowerInto copies name lower-cased, without a trailing dot, into buf.
func lowerInto(buf *[256]byte, name string) (int, bool) {
	if n := len(name); n > 0 && name[n-1] == '.' {
		name = name[:n-1]
	}
	if len(name) == 0 || len(name) > len(buf) {
		return 0, false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return len(name), true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// stripPort removes a ":port" suffix and IPv6 brackets from a Host header.
func stripPort(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		return h[:i]
	}
	return h
}

func cloneTenant(t *Tenant) *Tenant {
	c := *t
	c.Networks = slicesClone(t.Networks)
	c.MailDomains = slicesClone(t.MailDomains)
	c.MailServers = slicesClone(t.MailServers)
	c.Zones = slicesClone(t.Zones)
	c.EgressAddr = slicesClone(t.EgressAddr)
	c.Contacts = slicesClone(t.Contacts)
	c.Accounts = slicesClone(t.Accounts)
	c.Policy.AllowTenants = slicesClone(t.Policy.AllowTenants)
	c.Policy.Breakout = slicesClone(t.Policy.Breakout)
	c.Policy.BlockCategories = slicesClone(t.Policy.BlockCategories)
	c.Sites = make([]Site, len(t.Sites))
	for i, s := range t.Sites {
		s.Origins = slicesClone(s.Origins)
		c.Sites[i] = s
	}
	return &c
}

func slicesClone[S ~[]E, E any](s S) S {
	if s == nil {
		return nil
	}
	return append(S(nil), s...)
}
