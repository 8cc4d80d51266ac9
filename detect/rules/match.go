package rules

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
)

// op is what a pattern tests.
type op uint8

const (
	opEq op = iota
	opContains
	opPrefix
	opSuffix
	opGlob
	opRe
	opCIDR
	opGT
	opGTE
	opLT
	opLTE
	opIntel
	opAny  // "*": the field is present (non-empty)
	opNull // null: the field is absent or empty
)

// pattern is one compiled value of a field test.
type pattern struct {
	op    op
	s     string // lower-cased unless cased; the glob for opGlob
	cased bool
	re    *regexp.Regexp
	pfx   netip.Prefix
	n     int64
	// addr is set when op is opEq and s is an address: fast compare on
	// address fields.
	addr netip.Addr
	// num is set (isNum) when op is opEq and s is an integer.
	num   int64
	isNum bool
}

// fieldTest is one "field|modifiers: values" entry of a selection.
type fieldTest struct {
	f    *field
	all  bool // every pattern must match (|all)
	pats []pattern
	// exists: 0 not tested, 1 must exist, 2 must be absent (|exists).
	exists uint8
}

// selection is a map of field tests (AND) or a list of such maps (OR).
type selection struct {
	name string
	alts [][]fieldTest // OR over alternatives; each is AND of tests
}

// evalCtx holds per-event caches. It is owned by one goroutine for the
// evaluation of one event.
type evalCtx struct {
	e      *detect.Event
	intel  *intel.Set
	gen    uint32
	stamp  []uint32
	lower  []string
	orig   []string
	numBuf [64]byte
	// intel lookups by field id, per event.
	istamp []uint32
	iind   []*intel.Indicator
}

func newEvalCtx() *evalCtx {
	return &evalCtx{stamp: make([]uint32, numStrFields), lower: make([]string, numStrFields), orig: make([]string, numStrFields),
		istamp: make([]uint32, numFields), iind: make([]*intel.Indicator, numFields)}
}

func (c *evalCtx) reset(e *detect.Event, s *intel.Set) {
	c.e = e
	c.intel = s
	c.gen++
	if c.gen == 0 { // wrapped: clear stamps
		clear(c.stamp)
		clear(c.istamp)
		c.gen = 1
	}
}

// str returns the original and lower-cased value of a string field, cached
// for the event.
func (c *evalCtx) str(f *field) (orig, lower string) {
	if f.idx < 0 {
		v := f.str(c.e)
		return v, strings.ToLower(v)
	}
	if c.stamp[f.idx] == c.gen {
		return c.orig[f.idx], c.lower[f.idx]
	}
	v := f.str(c.e)
	l := strings.ToLower(v) // returns v itself when already lower-case
	c.stamp[f.idx], c.orig[f.idx], c.lower[f.idx] = c.gen, v, l
	return v, l
}

// tmp returns a transient string view of b, valid until numBuf is reused.
func tmp(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func (s *selection) match(c *evalCtx) bool {
	for _, alt := range s.alts {
		ok := true
		for i := range alt {
			if !alt[i].match(c) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (t *fieldTest) match(c *evalCtx) bool {
	f := t.f
	switch f.kind {
	case kindStr:
		o, l := c.str(f)
		return t.matchStr(c, o, l)
	case kindInt:
		v, ok := f.num(c.e)
		if t.exists != 0 {
			return ok == (t.exists == 1)
		}
		return t.combine(func(p *pattern) bool { return p.matchInt(c, v, ok) })
	case kindAddr:
		a := f.addr(c.e)
		if t.exists != 0 {
			return a.IsValid() == (t.exists == 1)
		}
		return t.combine(func(p *pattern) bool { return p.matchAddr(c, a, f) })
	case kindStrList:
		vs := f.list(c.e)
		if t.exists != 0 {
			return (len(vs) > 0) == (t.exists == 1)
		}
		if len(vs) == 0 {
			return t.matchStr(c, "", "")
		}
		for _, v := range vs {
			if t.matchStr(c, v, strings.ToLower(v)) {
				return true
			}
		}
		return false
	case kindAddrList:
		as := f.addrs(c.e)
		if t.exists != 0 {
			return (len(as) > 0) == (t.exists == 1)
		}
		if len(as) == 0 {
			return t.combine(func(p *pattern) bool { return p.matchAddr(c, netip.Addr{}, f) })
		}
		for _, a := range as {
			if t.combine(func(p *pattern) bool { return p.matchAddr(c, a, f) }) {
				return true
			}
		}
		return false
	}
	return false
}

// combine applies OR (or AND with |all) over the patterns.
func (t *fieldTest) combine(m func(*pattern) bool) bool {
	if t.all {
		for i := range t.pats {
			if !m(&t.pats[i]) {
				return false
			}
		}
		return true
	}
	for i := range t.pats {
		if m(&t.pats[i]) {
			return true
		}
	}
	return false
}

func (t *fieldTest) matchStr(c *evalCtx, o, l string) bool {
	if t.exists != 0 {
		return (o != "") == (t.exists == 1)
	}
	if t.all {
		for i := range t.pats {
			if !t.pats[i].matchStr(c, o, l, t.f) {
				return false
			}
		}
		return true
	}
	for i := range t.pats {
		if t.pats[i].matchStr(c, o, l, t.f) {
			return true
		}
	}
	return false
}

func (p *pattern) matchStr(c *evalCtx, o, l string, f *field) bool {
	v := l
	if p.cased {
		v = o
	}
	switch p.op {
	case opNull:
		return o == ""
	case opAny:
		return o != ""
	}
	if o == "" {
		return p.op == opEq && p.s == ""
	}
	switch p.op {
	case opEq:
		return v == p.s
	case opContains:
		return strings.Contains(v, p.s)
	case opPrefix:
		return strings.HasPrefix(v, p.s)
	case opSuffix:
		return strings.HasSuffix(v, p.s)
	case opGlob:
		return glob(p.s, v)
	case opRe:
		return p.re.MatchString(o)
	case opCIDR:
		a, err := netip.ParseAddr(o)
		return err == nil && p.pfx.Contains(a.Unmap())
	case opGT, opGTE, opLT, opLTE:
		n, err := strconv.ParseInt(o, 10, 64)
		return err == nil && cmpNum(p.op, n, p.n)
	case opIntel:
		if f.kind == kindStr && f.id >= 0 {
			if c.istamp[f.id] != c.gen {
				c.istamp[f.id], c.iind[f.id] = c.gen, c.intelLookup(f.intel, o)
			}
			ind := c.iind[f.id]
			return ind != nil && hasLabel(ind, p.s)
		}
		ind := c.intelLookup(f.intel, o)
		return ind != nil && hasLabel(ind, p.s)
	}
	return false
}

func (p *pattern) matchInt(c *evalCtx, v int64, present bool) bool {
	switch p.op {
	case opNull:
		return !present
	case opAny:
		return present
	}
	if !present {
		return false
	}
	switch p.op {
	case opGT, opGTE, opLT, opLTE:
		return cmpNum(p.op, v, p.n)
	case opEq:
		if p.isNum {
			return v == p.num
		}
	}
	s := tmp(strconv.AppendInt(c.numBuf[:0], v, 10))
	return p.matchStr(c, s, s, nil)
}

func (p *pattern) matchAddr(c *evalCtx, a netip.Addr, f *field) bool {
	switch p.op {
	case opNull:
		return !a.IsValid()
	case opAny:
		return a.IsValid()
	}
	if !a.IsValid() {
		return false
	}
	switch p.op {
	case opCIDR:
		return p.pfx.Contains(a.Unmap())
	case opEq:
		if p.addr.IsValid() {
			return a.Unmap() == p.addr
		}
	case opIntel:
		if c.intel == nil {
			return false
		}
		if f.kind == kindAddr && f.id >= 0 {
			if c.istamp[f.id] != c.gen {
				ind, _ := c.intel.Addr(a)
				c.istamp[f.id], c.iind[f.id] = c.gen, ind
			}
			ind := c.iind[f.id]
			return ind != nil && hasLabel(ind, p.s)
		}
		ind, ok := c.intel.Addr(a)
		return ok && hasLabel(ind, p.s)
	}
	s := tmp(a.AppendTo(c.numBuf[:0]))
	return p.matchStr(c, s, s, f)
}

func cmpNum(o op, v, n int64) bool {
	switch o {
	case opGT:
		return v > n
	case opGTE:
		return v >= n
	case opLT:
		return v < n
	case opLTE:
		return v <= n
	}
	return false
}

func (c *evalCtx) intelLookup(k intelKind, v string) *intel.Indicator {
	if c.intel == nil {
		return nil
	}
	var ind *intel.Indicator
	var ok bool
	switch k {
	case intelDomain:
		ind, ok = c.intel.Domain(v)
	case intelURL:
		ind, ok = c.intel.URL(v)
	case intelHash:
		ind, ok = c.intel.Hash(strings.ToLower(v))
	case intelAddr:
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil
		}
		ind, ok = c.intel.Addr(a)
	}
	if !ok {
		return nil
	}
	return ind
}

// hasLabel reports whether ind carries label; "*" or "" means any.
func hasLabel(ind *intel.Indicator, label string) bool {
	if label == "" || label == "*" {
		return true
	}
	for _, l := range ind.Labels {
		if strings.EqualFold(l, label) {
			return true
		}
	}
	return false
}

// glob matches Sigma wildcards: '*' any run, '?' one character. The pattern
// holds escapes already resolved into the marker bytes globStar/globOne.
func glob(p, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := -1, -1
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			switch p[px] {
			case globStar:
				nextPx, nextSx = px, sx+1
				px++
				continue
			case globOne:
				if sx < len(s) {
					_, n := decodeRune(s[sx:])
					px++
					sx += n
					continue
				}
			default:
				if sx < len(s) && s[sx] == p[px] {
					px++
					sx++
					continue
				}
			}
		}
		if nextSx > 0 && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}

// Marker bytes for unescaped wildcards inside a compiled glob. They are
// invalid in UTF-8, so they never equal a byte of a valid value; invalid
// UTF-8 input bytes 0xFE/0xFF in a value would be treated as literals and
// can only fail to match a marker position.
const (
	globStar = 0xFF
	globOne  = 0xFE
)

func decodeRune(s string) (rune, int) {
	if s[0] < utf8.RuneSelf {
		return rune(s[0]), 1
	}
	return utf8.DecodeRuneInString(s)
}

// compileString builds a pattern from a Sigma string value and the string
// modifier (contains, startswith, endswith or none). Unescaped '*' and '?'
// are wildcards; '\*', '\?' and '\\' are literals.
func compileString(v, mod string, cased bool) (pattern, error) {
	if !cased {
		v = strings.ToLower(v) // before markers: ToLower rewrites invalid bytes
	}
	var b []byte
	wild := false
	if mod == "contains" || mod == "endswith" {
		b = append(b, globStar)
		wild = true
	}
	for i := 0; i < len(v); i++ {
		ch := v[i]
		switch {
		case ch == '\\' && i+1 < len(v) && (v[i+1] == '*' || v[i+1] == '?' || v[i+1] == '\\'):
			b = append(b, v[i+1])
			i++
		case ch == '*':
			b = append(b, globStar)
			wild = true
		case ch == '?':
			b = append(b, globOne)
			wild = true
		default:
			b = append(b, ch)
		}
	}
	switch mod {
	case "contains", "startswith":
		b = append(b, globStar)
		wild = true
	case "", "endswith":
	default:
		return pattern{}, fmt.Errorf("unknown string modifier %q", mod)
	}
	s := string(b)
	p := pattern{s: s, cased: cased}
	if !wild {
		p.op = opEq
		if a, err := netip.ParseAddr(s); err == nil {
			p.addr = a.Unmap()
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			p.num, p.isNum = n, true
		}
		return p, nil
	}
	// Simplify the common shapes to plain string operations.
	lead := len(b) > 0 && b[0] == globStar
	trail := len(b) > 0 && b[len(b)-1] == globStar && (len(b) > 1 || !lead)
	inner := b
	if lead {
		inner = inner[1:]
	}
	if trail && len(inner) > 0 {
		inner = inner[:len(inner)-1]
	}
	plain := true
	for _, c := range inner {
		if c == globStar || c == globOne {
			plain = false
		}
	}
	switch {
	case plain && lead && len(inner) == 0:
		p.op = opAny
	case plain && lead && trail:
		p.op, p.s = opContains, string(inner)
	case plain && trail && !lead:
		p.op, p.s = opPrefix, string(inner)
	case plain && lead && !trail:
		p.op, p.s = opSuffix, string(inner)
	default:
		p.op = opGlob
	}
	return p, nil
}
