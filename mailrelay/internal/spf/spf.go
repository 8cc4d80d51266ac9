// Package spf implements the Sender Policy Framework check_host()
// function of RFC 7208 over an injected DNS resolver.
package spf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Result is an SPF result (RFC 7208 2.6).
type Result string

// The results.
const (
	None      Result = "none"
	Neutral   Result = "neutral"
	Pass      Result = "pass"
	Fail      Result = "fail"
	SoftFail  Result = "softfail"
	TempError Result = "temperror"
	PermError Result = "permerror"
)

// Resolver is the DNS access check_host needs; *net.Resolver implements
// it. A *net.DNSError with IsNotFound means "no such name / no records";
// any other error is a temporary DNS failure.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupIP(ctx context.Context, network, host string) ([]net.IP, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Checker runs check_host. The zero value is not usable: set Resolver.
type Checker struct {
	Resolver Resolver
	// Hostname is the receiving host, for the %{r} macro; "" means
	// "unknown".
	Hostname string
	// DefaultExplanation is returned for a fail without exp=; "" means
	// a sentence pointing at the sender's domain.
	DefaultExplanation string
	// Now is the clock for %{t}; nil means time.Now.
	Now func() time.Time
}

type state struct {
	c       *Checker
	ctx     context.Context
	ip      netip.Addr
	sender  string
	helo    string
	lookups int
	voids   int
}

var errPerm = errors.New("permerror")
var errTemp = errors.New("temperror")

// Check runs check_host(ip, domain, sender) and returns the result and, for
// a fail, the explanation. sender is the MAIL FROM address; when empty the
// HELO identity postmaster@helo is checked (RFC 7208 2.4).
func (c *Checker) Check(ctx context.Context, ip netip.Addr, helo, sender string) (Result, string) {
	ip = ip.Unmap()
	if sender == "" {
		sender = "postmaster@" + helo
	}
	at := strings.LastIndexByte(sender, '@')
	if at < 0 {
		sender = "postmaster@" + sender
		at = len("postmaster")
	} else if at == 0 {
		sender = "postmaster" + sender
		at = len("postmaster")
	}
	domain := sender[at+1:]
	st := &state{c: c, ctx: ctx, ip: ip, sender: sender, helo: helo}
	return st.checkHost(domain, 0)
}

func validDomain(d string) bool {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 {
		return false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return false
		}
	}
	return true
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// term is one parsed directive or modifier.
type term struct {
	qual   byte // '+', '-', '~', '?'
	mech   string
	arg    string // domain-spec or ip
	hasArg bool
	cidr4  int
	cidr6  int
	prefix netip.Prefix
}

func (st *state) checkHost(domain string, depth int) (Result, string) {
	if depth > 10 {
		return PermError, ""
	}
	if !validDomain(domain) {
		return None, ""
	}
	txts, err := st.c.Resolver.LookupTXT(st.ctx, domain)
	if err != nil {
		if isNotFound(err) {
			return None, ""
		}
		return TempError, ""
	}
	var rec string
	n := 0
	for _, t := range txts {
		lt := strings.ToLower(t)
		if lt == "v=spf1" || strings.HasPrefix(lt, "v=spf1 ") {
			rec = t
			n++
		}
	}
	if n == 0 {
		return None, ""
	}
	if n > 1 {
		return PermError, ""
	}
	terms, redirect, exp, err := parseRecord(rec[len("v=spf1"):])
	if err != nil {
		return PermError, ""
	}
	for _, t := range terms {
		ok, err := st.match(t, domain, depth)
		if err == errTemp {
			return TempError, ""
		}
		if err != nil {
			return PermError, ""
		}
		if ok {
			r := qualResult(t.qual)
			if r == Fail {
				return r, st.explain(exp, domain)
			}
			return r, ""
		}
	}
	if redirect != "" {
		st.lookups++
		if st.lookups > 10 {
			return PermError, ""
		}
		target, err := st.expand(redirect, domain, false)
		if err != nil {
			return PermError, ""
		}
		r, e := st.checkHost(target, depth+1)
		if r == None {
			return PermError, ""
		}
		return r, e
	}
	return Neutral, ""
}

func qualResult(q byte) Result {
	switch q {
	case '-':
		return Fail
	case '~':
		return SoftFail
	case '?':
		return Neutral
	}
	return Pass
}

func (st *state) explain(exp, domain string) string {
	def := st.c.DefaultExplanation
	if def == "" {
		def = "SPF fail for " + domain
	}
	if exp == "" {
		return def
	}
	target, err := st.expand(exp, domain, false)
	if err != nil || !validDomain(target) {
		return def
	}
	txts, err := st.c.Resolver.LookupTXT(st.ctx, target)
	if err != nil || len(txts) != 1 {
		return def
	}
	s, err := st.expand(txts[0], domain, true)
	if err != nil {
		return def
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return def
		}
	}
	return s
}

// parseRecord parses the terms after "v=spf1".
func parseRecord(s string) (terms []term, redirect, exp string, err error) {
	seenRedirect, seenExp := false, false
	for _, f := range strings.Split(s, " ") {
		if f == "" {
			continue
		}
		// modifier: name=value, name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
		if i := strings.IndexByte(f, '='); i > 0 && isModName(f[:i]) {
			name, val := strings.ToLower(f[:i]), f[i+1:]
			if err := checkMacroString(val); err != nil {
				return nil, "", "", err
			}
			switch name {
			case "redirect":
				if seenRedirect || !domainSpecOK(val) || hasExpOnlyMacro(val) {
					return nil, "", "", errPerm
				}
				seenRedirect, redirect = true, val
			case "exp":
				if seenExp || !domainSpecOK(val) || hasExpOnlyMacro(val) {
					return nil, "", "", errPerm
				}
				seenExp, exp = true, val
			}
			continue
		}
		t := term{qual: '+', cidr4: 32, cidr6: 128}
		switch f[0] {
		case '+', '-', '~', '?':
			t.qual = f[0]
			f = f[1:]
		}
		name := f
		rest := ""
		if i := strings.IndexAny(f, ":/"); i >= 0 {
			name, rest = f[:i], f[i:]
		}
		t.mech = strings.ToLower(name)
		if hasExpOnlyMacro(rest) {
			return nil, "", "", errPerm
		}
		switch t.mech {
		case "all":
			if rest != "" {
				return nil, "", "", errPerm
			}
		case "include", "exists":
			if !strings.HasPrefix(rest, ":") || !domainSpecOK(rest[1:]) {
				return nil, "", "", errPerm
			}
			t.arg, t.hasArg = rest[1:], true
		case "a", "mx":
			spec, c4, c6, err := splitDualCIDR(rest)
			if err != nil {
				return nil, "", "", err
			}
			t.cidr4, t.cidr6 = c4, c6
			if spec != "" {
				if !strings.HasPrefix(spec, ":") || !domainSpecOK(spec[1:]) {
					return nil, "", "", errPerm
				}
				t.arg, t.hasArg = spec[1:], true
			}
		case "ptr":
			if rest != "" {
				if !strings.HasPrefix(rest, ":") || !domainSpecOK(rest[1:]) {
					return nil, "", "", errPerm
				}
				t.arg, t.hasArg = rest[1:], true
			}
		case "ip4", "ip6":
			if !strings.HasPrefix(rest, ":") {
				return nil, "", "", errPerm
			}
			p, err := parseIPNet(rest[1:], t.mech == "ip6")
			if err != nil {
				return nil, "", "", err
			}
			t.prefix = p
		default:
			return nil, "", "", errPerm
		}
		terms = append(terms, t)
	}
	return terms, redirect, exp, nil
}

func isModName(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !(c >= '0' && c <= '9') && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func parseIPNet(s string, v6 bool) (netip.Prefix, error) {
	addr, bits := s, -1
	if i := strings.IndexByte(s, '/'); i >= 0 {
		addr = s[:i]
		n, err := strconv.Atoi(s[i+1:])
		if err != nil || s[i+1:] == "" || (len(s[i+1:]) > 1 && s[i+1] == '0') {
			return netip.Prefix{}, errPerm
		}
		bits = n
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, errPerm
	}
	if v6 != a.Is6() || (!v6 && a.Is4In6()) {
		return netip.Prefix{}, errPerm
	}
	if bits < 0 {
		bits = a.BitLen()
	}
	if bits > a.BitLen() {
		return netip.Prefix{}, errPerm
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// splitDualCIDR splits "[:domain-spec][/n][//m]"; the CIDR part is only
// recognised at the end, since a domain-spec may hold '/'.
func splitDualCIDR(s string) (spec string, c4, c6 int, err error) {
	c4, c6 = 32, 128
	m := dualCIDR.FindStringSubmatchIndex(s)
	if m == nil || m[0] == m[1] {
		return s, c4, c6, nil
	}
	spec = s[:m[0]]
	parseN := func(v string, max int) (int, error) {
		if len(v) > 1 && v[0] == '0' {
			return 0, errPerm
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > max {
			return 0, errPerm
		}
		return n, nil
	}
	if m[2] >= 0 {
		if c4, err = parseN(s[m[2]:m[3]], 32); err != nil {
			return "", 0, 0, err
		}
	}
	if m[4] >= 0 {
		if c6, err = parseN(s[m[4]:m[5]], 128); err != nil {
			return "", 0, 0, err
		}
	}
	return spec, c4, c6, nil
}

var dualCIDR = regexp.MustCompile(`(?:/([0-9]+))?(?://([0-9]+))?$`)

// hasExpOnlyMacro reports a c, r or t macro, allowed only in exp text.
func hasExpOnlyMacro(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && s[i+1] == '{' {
			switch s[i+2] | 0x20 {
			case 'c', 'r', 't':
				return true
			}
		} else if s[i] == '%' {
			i++
		}
	}
	return false
}

// domainSpecOK checks a domain-spec syntactically: macros well formed and,
// unless it ends in a macro, a valid top label.
func domainSpecOK(s string) bool {
	if s == "" || checkMacroString(s) != nil {
		return false
	}
	if strings.HasSuffix(s, "}") {
		return true
	}
	s = strings.TrimSuffix(s, ".")
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return false
	}
	top := s[i+1:]
	if top == "" || top[0] == '-' || top[len(top)-1] == '-' {
		return false
	}
	alpha := false
	for j := 0; j < len(top); j++ {
		c := top[j]
		switch {
		case isAlpha(c):
			alpha = true
		case c >= '0' && c <= '9', c == '-':
		default:
			return false
		}
	}
	return alpha || strings.Contains(top, "-")
}

func checkMacroString(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e {
			return errPerm
		}
		if c != '%' {
			continue
		}
		if i+1 >= len(s) {
			return errPerm
		}
		switch s[i+1] {
		case '%', '_', '-':
			i++
			continue
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return errPerm
			}
			if _, _, _, _, err := parseMacro(s[i+2 : i+end]); err != nil {
				return err
			}
			i += end
		default:
			return errPerm
		}
	}
	return nil
}

func parseMacro(m string) (letter byte, digits int, reverse bool, delims string, err error) {
	if m == "" {
		return 0, 0, false, "", errPerm
	}
	letter = m[0]
	switch letter | 0x20 {
	case 's', 'l', 'o', 'd', 'i', 'p', 'h', 'v', 'c', 'r', 't':
	default:
		return 0, 0, false, "", errPerm
	}
	rest := m[1:]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	if j > 0 {
		digits, err = strconv.Atoi(rest[:j])
		if err != nil || digits == 0 {
			return 0, 0, false, "", errPerm
		}
	}
	rest = rest[j:]
	if strings.HasPrefix(rest, "r") || strings.HasPrefix(rest, "R") {
		reverse = true
		rest = rest[1:]
	}
	for k := 0; k < len(rest); k++ {
		if !strings.ContainsRune(".-+,/_=", rune(rest[k])) {
			return 0, 0, false, "", errPerm
		}
	}
	return letter, digits, reverse, rest, nil
}

// expand expands the macros of s (RFC 7208 7).
func (st *state) expand(s, domain string, exp bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", errPerm
		}
		i++
		switch s[i] {
		case '%':
			b.WriteByte('%')
			continue
		case '_':
			b.WriteByte(' ')
			continue
		case '-':
			b.WriteString("%20")
			continue
		case '{':
		default:
			return "", errPerm
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", errPerm
		}
		letter, digits, reverse, delims, err := parseMacro(s[i+1 : i+end])
		if err != nil {
			return "", err
		}
		i += end
		lower := letter | 0x20
		if !exp && (lower == 'c' || lower == 'r' || lower == 't') {
			return "", errPerm
		}
		v := st.macroValue(lower, domain)
		if delims == "" {
			delims = "."
		}
		parts := strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(delims, r) })
		if len(parts) == 0 {
			parts = []string{v}
		}
		if reverse {
			for l, r := 0, len(parts)-1; l < r; l, r = l+1, r-1 {
				parts[l], parts[r] = parts[r], parts[l]
			}
		}
		if digits > 0 && digits < len(parts) {
			parts = parts[len(parts)-digits:]
		}
		v = strings.Join(parts, ".")
		if letter >= 'A' && letter <= 'Z' {
			v = escapeURL(v)
		}
		b.WriteString(v)
	}
	out := b.String()
	if !exp {
		// Truncate to 253 octets by dropping labels on the left.
		for len(out) > 253 {
			i := strings.IndexByte(out, '.')
			if i < 0 {
				break
			}
			out = out[i+1:]
		}
	}
	return out, nil
}

func (st *state) macroValue(l byte, domain string) string {
	at := strings.LastIndexByte(st.sender, '@')
	switch l {
	case 's':
		return st.sender
	case 'l':
		return st.sender[:at]
	case 'o':
		return st.sender[at+1:]
	case 'd':
		return domain
	case 'i':
		if st.ip.Is4() {
			return st.ip.String()
		}
		b := st.ip.As16()
		var sb strings.Builder
		for i, x := range b {
			if i > 0 {
				sb.WriteByte('.')
			}
			fmt.Fprintf(&sb, "%X.%X", x>>4, x&15)
		}
		return sb.String()
	case 'c':
		return st.ip.String()
	case 'p':
		names, err := st.c.Resolver.LookupAddr(st.ctx, st.ip.String())
		if err != nil {
			return "unknown"
		}
		for i, n := range names {
			if i >= 10 {
				break
			}
			n = strings.TrimSuffix(n, ".")
			if st.forwardConfirms(n) && (strings.EqualFold(n, domain) || strings.HasSuffix(strings.ToLower(n), "."+strings.ToLower(domain))) {
				return n
			}
		}
		for i, n := range names {
			if i >= 10 {
				break
			}
			n = strings.TrimSuffix(n, ".")
			if st.forwardConfirms(n) {
				return n
			}
		}
		return "unknown"
	case 'v':
		if st.ip.Is4() {
			return "in-addr"
		}
		return "ip6"
	case 'h':
		return st.helo
	case 'r':
		if st.c.Hostname != "" {
			return st.c.Hostname
		}
		return "unknown"
	case 't':
		now := time.Now
		if st.c.Now != nil {
			now = st.c.Now
		}
		return strconv.FormatInt(now().Unix(), 10)
	}
	return ""
}

func (st *state) network() string {
	if st.ip.Is4() {
		return "ip4"
	}
	return "ip6"
}

// lookupIPs resolves host for the client's address family.
func (st *state) lookupIPs(host, network string) ([]netip.Addr, error) {
	ips, err := st.c.Resolver.LookupIP(st.ctx, network, host)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, errTemp
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok {
			a = a.Unmap()
			if (network == "ip4") == a.Is4() {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

func (st *state) forwardConfirms(name string) bool {
	ips, err := st.lookupIPs(name, st.network())
	if err != nil {
		return false
	}
	for _, a := range ips {
		if a == st.ip {
			return true
		}
	}
	return false
}

func (st *state) countLookup() error {
	st.lookups++
	if st.lookups > 10 {
		return errPerm
	}
	return nil
}

func (st *state) void() error {
	st.voids++
	if st.voids > 2 {
		return errPerm
	}
	return nil
}

func (st *state) inCIDR(a netip.Addr, t term) bool {
	bits := t.cidr4
	if a.Is6() {
		bits = t.cidr6
	}
	p, err := a.Prefix(bits)
	return err == nil && p.Contains(st.ip)
}

func (st *state) match(t term, domain string, depth int) (bool, error) {
	target := domain
	if t.hasArg {
		var err error
		if target, err = st.expand(t.arg, domain, false); err != nil {
			return false, err
		}
	}
	switch t.mech {
	case "all":
		return true, nil
	case "ip4", "ip6":
		return t.prefix.Contains(st.ip), nil
	case "include":
		if err := st.countLookup(); err != nil {
			return false, err
		}
		r, _ := st.checkHost(target, depth+1)
		switch r {
		case Pass:
			return true, nil
		case Fail, SoftFail, Neutral:
			return false, nil
		case TempError:
			return false, errTemp
		}
		return false, errPerm
	case "a":
		if err := st.countLookup(); err != nil {
			return false, err
		}
		if !validDomain(target) {
			return false, nil
		}
		ips, err := st.lookupIPs(target, st.network())
		if err != nil {
			return false, err
		}
		if len(ips) == 0 {
			return false, st.void()
		}
		for _, a := range ips {
			if st.inCIDR(a, t) {
				return true, nil
			}
		}
		return false, nil
	case "mx":
		if err := st.countLookup(); err != nil {
			return false, err
		}
		if !validDomain(target) {
			return false, nil
		}
		mxs, err := st.c.Resolver.LookupMX(st.ctx, target)
		if err != nil && !isNotFound(err) {
			return false, errTemp
		}
		if len(mxs) == 0 {
			return false, st.void()
		}
		if len(mxs) > 10 {
			return false, errPerm
		}
		for _, mx := range mxs {
			ips, err := st.lookupIPs(strings.TrimSuffix(mx.Host, "."), st.network())
			if err != nil {
				return false, err
			}
			for _, a := range ips {
				if st.inCIDR(a, t) {
					return true, nil
				}
			}
		}
		return false, nil
	case "ptr":
		if err := st.countLookup(); err != nil {
			return false, err
		}
		names, err := st.c.Resolver.LookupAddr(st.ctx, st.ip.String())
		if err != nil {
			if isNotFound(err) {
				return false, st.void()
			}
			return false, nil // ptr errors are no match (RFC 7208 5.5)
		}
		lt := strings.ToLower(strings.TrimSuffix(target, "."))
		for i, n := range names {
			if i >= 10 {
				break
			}
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			if (n == lt || strings.HasSuffix(n, "."+lt)) && st.forwardConfirms(n) {
				return true, nil
			}
		}
		return false, nil
	case "exists":
		if err := st.countLookup(); err != nil {
			return false, err
		}
		if !validDomain(target) {
			return false, nil
		}
		ips, err := st.lookupIPs(target, "ip4")
		if err != nil {
			return false, err
		}
		if len(ips) == 0 {
			return false, st.void()
		}
		return true, nil
	}
	return false, errPerm
}

// escapeURL escapes every byte outside RFC 3986's unreserved set.
func escapeURL(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlpha(c) || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
