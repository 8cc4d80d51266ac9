// Package rxfilter derives from a regular expression a cheap necessary
// condition on the text it can match, so that the expression need not
// run on text that cannot match.
//
// The condition has two parts: a minimum length in bytes, and a set of
// needles of which every match contains at least one (compared with
// ASCII case folding). MayMatch reports false only when the text is
// shorter than the minimum or contains none of the needles; the
// expression is then certain not to match. Anything else — including any
// doubt while analysing the expression — means "may match", and the
// caller runs the expression.
//
// Unlike Coraza's SecRxPreFilter, whose case-insensitive filters give up
// on any text that is not pure ASCII, the condition here holds for every
// input: Japanese form text, invalid UTF-8 and binary data keep their
// filter. Under (?i) Go folds 'k' with U+212A KELVIN SIGN and 's' with
// U+017F LATIN SMALL LETTER LONG S; text containing either of those is
// always passed on when a needle contains 'k' or 's'. Other non-ASCII
// letters that have case variants are never part of a needle when the
// expression folds case. A character class or literal that can match
// U+FFFD (which Go's regexp also matches on each invalid byte) is never
// part of a needle either.
//
// The analysis follows the expression's syntax tree (regexp/syntax,
// simplified): each node yields the finite set of strings it matches when
// that set is small, or else a set of strings one of which each of its
// matches must contain. Concatenations multiply small exact sets,
// alternations join the sets of their branches, and optional parts
// contribute nothing. Needles are searched with one pass of an
// Aho-Corasick automaton over byte classes.
package rxfilter

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the analysis. Larger sets are not worth the search.
const (
	maxExact       = 64   // strings in a node's exact set
	maxExactLen    = 64   // bytes of a string in an exact set
	maxNeedles     = 256  // needles of a filter
	maxNeedleBytes = 4096 // bytes of all needles of a filter
	maxClassRunes  = 16   // runes of a character class kept as an exact set
)

// Filter is the necessary condition of one expression. A Filter is
// immutable and safe for concurrent use.
type Filter struct {
	minLen  int
	needles []string // lower-cased (ASCII), sorted
	guard   bool     // pass text with U+212A or U+017F
	// Aho-Corasick automaton: class of each byte, transitions
	// (state*ncls+class); a transition into a matching state is match.
	cls   [256]uint8
	ncls  int
	trans []uint16
	// single: the one needle has no ASCII letter: strings.Contains.
	single string
}

const match = 0xffff

// New analyses pattern (Go regexp syntax, with syntax.Perl flags, as
// regexp.Compile reads it). It returns nil when the pattern does not
// parse or gives no condition worth checking. The result is sound for
// regexp.Compile(pattern): if the expression matches s (anywhere in s),
// MayMatch(s) is true.
func New(pattern string) *Filter {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	f := &Filter{minLen: minLen(re)}
	in := analyse(re)
	if set := minimal(in.best()); useful(set) && len(set) <= maxNeedles && total(set) <= maxNeedleBytes {
		f.needles = set
		for _, n := range set {
			if strings.ContainsAny(n, "ks") {
				f.guard = true
			}
		}
		f.build()
	}
	if f.needles == nil && f.minLen < 2 {
		return nil
	}
	return f
}

// MinLen is the minimum length in bytes of a match.
func (f *Filter) MinLen() int { return f.minLen }

// Needles returns the needles (ASCII lower-cased); nil when only the
// length is checked.
func (f *Filter) Needles() []string { return slices.Clone(f.needles) }

// MayMatch reports whether the expression may match s; false means it
// certainly does not. A nil Filter always reports true.
func (f *Filter) MayMatch(s string) bool {
	if f == nil {
		return true
	}
	if len(s) < f.minLen {
		return false
	}
	if f.needles == nil {
		return true
	}
	if f.single != "" {
		return strings.Contains(s, f.single)
	}
	if f.guard && (strings.Contains(s, "\u212a") || strings.Contains(s, "\u017f")) {
		return true
	}
	st := 0
	n := f.ncls
	for i := 0; i < len(s); i++ {
		st = int(f.trans[st*n+int(f.cls[s[i]])])
		if st == match {
			return true
		}
	}
	return false
}

// info is what the analysis knows of a node: exact, when non-nil, is
// every string the node can match; req, when non-nil, is a set one of
// which every match contains. Strings are ASCII lower-cased.
type info struct {
	exact []string
	req   []string
}

var unknown = info{}

func exactly(s ...string) info { return info{exact: s} }

// best is the strongest necessary set the node gives: its exact set or
// its required set, whichever scores higher.
func (in info) best() []string {
	return better(in.exact, in.req)
}

// score rates a necessary set: the weight of its weakest needle (0 for
// no condition). A needle weighs its length, a single letter, digit,
// space or ASCII-control byte weighs less than one byte, since nearly all
// text holds it.
func score(set []string) float64 {
	if len(set) == 0 {
		return 0 // no condition (nil), or an empty set: be conservative
	}
	w := 1e9
	for _, n := range set {
		var x float64
		switch {
		case n == "":
			return 0
		case len(n) == 1 && common(n[0]):
			x = 0.5
		default:
			x = float64(len(n))
		}
		w = min(w, x)
	}
	// fewer needles are better at equal weight
	return w - float64(len(set))*1e-6
}

func common(c byte) bool {
	return c < 0x80 && (c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == ' ' || c < 0x20)
}

func better(a, b []string) []string {
	if score(b) > score(a) {
		return b
	}
	if score(a) == 0 {
		return nil
	}
	return a
}

func useful(set []string) bool { return score(set) > 0.9 }

func total(set []string) int {
	n := 0
	for _, s := range set {
		n += len(s)
	}
	return n
}

// analyse computes the info of a simplified syntax tree.
func analyse(re *syntax.Regexp) info {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return exactly("")
	case syntax.OpLiteral:
		parts := make([]info, 0, len(re.Rune))
		for _, r := range re.Rune {
			parts = append(parts, runeInfo(r, re.Flags&syntax.FoldCase != 0))
		}
		return concat(parts)
	case syntax.OpCharClass:
		return classInfo(re.Rune)
	case syntax.OpCapture:
		return analyse(re.Sub[0])
	case syntax.OpQuest:
		sub := analyse(re.Sub[0])
		if sub.exact != nil && len(sub.exact) < maxExact {
			return exactly(union(sub.exact, []string{""})...)
		}
		return unknown
	case syntax.OpStar:
		return unknown
	case syntax.OpPlus:
		return info{req: analyse(re.Sub[0]).best()}
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return info{req: analyse(re.Sub[0]).best()}
		}
		return unknown
	case syntax.OpConcat:
		parts := make([]info, 0, len(re.Sub))
		for _, s := range re.Sub {
			parts = append(parts, analyse(s))
		}
		return concat(parts)
	case syntax.OpAlternate:
		return alternate(re.Sub)
	}
	// OpAnyChar, OpAnyCharNotNL, OpNoMatch and anything new
	return unknown
}

// runeInfo is the info of one literal rune.
func runeInfo(r rune, fold bool) info {
	if r == utf8.RuneError || r < 0 || r > unicode.MaxRune {
		return unknown
	}
	if r < utf8.RuneSelf {
		return exactly(string(lowerASCII(byte(r))))
	}
	if fold && unicode.SimpleFold(r) != r {
		return unknown
	}
	return exactly(string(r))
}

// classInfo is the info of a character class (pairs of rune ranges).
func classInfo(ranges []rune) info {
	n := 0
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		if lo <= utf8.RuneError && utf8.RuneError <= hi {
			return unknown
		}
		n += int(hi-lo) + 1
		if n > maxClassRunes {
			return unknown
		}
	}
	var set []string
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1]; r++ {
			s := string(r)
			if r < utf8.RuneSelf {
				s = string(lowerASCII(byte(r)))
			}
			set = append(set, s)
		}
	}
	return exactly(norm(set)...)
}

// concat combines the infos of consecutive parts.
func concat(parts []info) info {
	cur := []string{""} // exact set of the current run of exact parts
	var req []string    // best necessary set so far
	all := true         // every part was exact and joined
	for _, p := range parts {
		if p.exact != nil && cur != nil && len(cur)*len(p.exact) <= maxExact {
			if next := cross(cur, p.exact); next != nil {
				cur = next
				continue
			}
		}
		all = false
		if cur != nil {
			req = better(req, cur)
		}
		if p.exact != nil {
			cur = p.exact
		} else {
			cur = []string{""}
			req = better(req, p.req)
		}
	}
	req = better(req, cur)
	if all {
		return info{exact: cur, req: req}
	}
	return info{req: req}
}

// cross is {a+b : a in x, b in y}; nil when a string gets too long.
func cross(x, y []string) []string {
	out := make([]string, 0, len(x)*len(y))
	for _, a := range x {
		for _, b := range y {
			if len(a)+len(b) > maxExactLen {
				return nil
			}
			out = append(out, a+b)
		}
	}
	return norm(out)
}

// alternate combines the branches of an alternation.
func alternate(subs []*syntax.Regexp) info {
	var exact, req []string
	exactOK, reqOK := true, true
	for _, s := range subs {
		in := analyse(s)
		if exactOK && in.exact != nil && len(exact)+len(in.exact) <= maxExact {
			exact = append(exact, in.exact...)
		} else {
			exactOK = false
		}
		b := in.best()
		if b == nil {
			reqOK = false
		} else if reqOK {
			req = append(req, b...)
		}
	}
	var out info
	if exactOK {
		out.exact = norm(exact)
	}
	if reqOK && len(req) <= maxNeedles {
		out.req = minimal(norm(req))
	}
	return out
}

// minimal drops needles that contain another needle of the set: text
// holding the longer one holds the shorter one too.
func minimal(set []string) []string {
	if set == nil {
		return nil
	}
	out := set[:0:0]
	for _, s := range set {
		redundant := false
		for _, t := range set {
			if t != s && len(t) < len(s) && strings.Contains(s, t) {
				redundant = true
				break
			}
		}
		if !redundant {
			out = append(out, s)
		}
	}
	return out
}

func union(a, b []string) []string { return norm(append(slices.Clone(a), b...)) }

// norm sorts and de-duplicates a set (never returning nil for an empty
// non-nil input).
func norm(set []string) []string {
	set = slices.Clone(set)
	slices.Sort(set)
	set = slices.Compact(set)
	if set == nil {
		set = []string{}
	}
	return set
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// minLen is a lower bound of the length in bytes of any match (each
// rune counts one byte: an invalid byte is one).
func minLen(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune)
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1
	case syntax.OpCapture, syntax.OpPlus:
		return minLen(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min * minLen(re.Sub[0])
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			n += minLen(s)
		}
		return n
	case syntax.OpAlternate:
		n := -1
		for _, s := range re.Sub {
			if m := minLen(s); n < 0 || m < n {
				n = m
			}
		}
		return max(n, 0)
	}
	return 0
}

// build makes the search automaton of f.needles.
func (f *Filter) build() {
	if len(f.needles) == 1 && !hasLetter(f.needles[0]) {
		f.single = f.needles[0]
		return
	}
	// byte classes: 0 for bytes in no needle; A-Z share a-z's class
	for _, n := range f.needles {
		for i := 0; i < len(n); i++ {
			if f.cls[n[i]] == 0 {
				if f.ncls == 250 {
					f.needles = nil // too many distinct bytes to be selective
					return
				}
				f.ncls++
				f.cls[n[i]] = uint8(f.ncls)
			}
		}
	}
	f.ncls++
	for c := 'A'; c <= 'Z'; c++ {
		f.cls[c] = f.cls[c+'a'-'A']
	}
	// trie
	type node struct {
		next map[uint8]int
		out  bool
	}
	nodes := []node{{next: map[uint8]int{}}}
	for _, n := range f.needles {
		s := 0
		for i := 0; i < len(n); i++ {
			c := f.cls[n[i]]
			t, ok := nodes[s].next[c]
			if !ok {
				t = len(nodes)
				nodes = append(nodes, node{next: map[uint8]int{}})
				nodes[s].next[c] = t
			}
			s = t
		}
		nodes[s].out = true
	}
	// breadth-first: failure links and full transitions
	n := f.ncls
	trans := make([]int, len(nodes)*n)
	fail := make([]int, len(nodes))
	queue := []int{}
	for c := 0; c < n; c++ {
		if t, ok := nodes[0].next[uint8(c)]; ok {
			trans[c] = t
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if nodes[fail[s]].out {
			nodes[s].out = true
		}
		for c := 0; c < n; c++ {
			if t, ok := nodes[s].next[uint8(c)]; ok {
				fail[t] = trans[fail[s]*n+c]
				trans[s*n+c] = t
				queue = append(queue, t)
			} else {
				trans[s*n+c] = trans[fail[s]*n+c]
			}
		}
	}
	if len(nodes) >= match {
		f.needles = nil // cannot happen within maxNeedleBytes
		return
	}
	f.trans = make([]uint16, len(trans))
	for i, t := range trans {
		if nodes[t].out {
			f.trans[i] = match
		} else {
			f.trans[i] = uint16(t)
		}
	}
}

func hasLetter(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c >= 'a' && c <= 'z' {
			return true
		}
	}
	return false
}
