// Package fastrx runs a regular expression with the semantics of Go's
// regexp package, faster on long text.
//
// Three stages decide a match:
//
//  1. the necessary condition of package rxfilter (minimum length and
//     needles): text that fails it cannot match, and nothing else runs;
//  2. RE2's DFA (github.com/wasilibs/go-re2, RE2 compiled to Go through
//     WebAssembly, no cgo), which is linear in the text and an order of
//     magnitude faster than Go's backtracking/NFA matcher on CRS's long
//     alternations (2.7 ms against 23 ms for all CRS patterns over 3 KiB of
//     Japanese text);
//  3. Go's regexp, the reference: it runs when RE2 cannot decide
//     exactly as Go would — the text is not valid UTF-8 (RE2 stops at the
//     first invalid byte; Go reads it as U+FFFD), the pattern does not
//     compile in RE2, or RE2's DFA ran out of its memory budget — and to
//     locate a match (indexes and captures) once RE2 said there is one.
//
// Match results equal Go's regexp on every input; the differential tests
// compare both on text generated from every CRS pattern.
package fastrx

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/wasilibs/go-re2/experimental"

	"github.com/jichitai/seccloud/waf/internal/rxfilter"
)

// RE2 memory budgets tried in turn for a pattern's program and DFA
// cache: most patterns fit the first; CRS's largest alternations need
// more. A DFA that outgrows its budget makes RE2 give up on that text,
// and Go's regexp decides instead.
var budgets = []int{1 << 20, 4 << 20, 16 << 20}

// minRE2Len: shorter text goes straight to Go's regexp (crossing into
// RE2 costs more than Go spends on a short string).
const minRE2Len = 64

// Regexp is a compiled expression. It is safe for concurrent use.
type Regexp struct {
	re  *regexp.Regexp
	set *experimental.Set // nil: RE2 does not take the pattern
	f   *rxfilter.Filter  // nil: no condition
}

// Compile parses pattern (Go regexp syntax) as regexp.Compile does.
func Compile(pattern string) (*Regexp, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("fastrx: %w", err)
	}
	r := &Regexp{re: re, f: rxfilter.New(pattern)}
	for _, mm := range budgets {
		set, err := experimental.CompileSetWithOptions([]string{pattern}, experimental.CompileOptions{MaxMem: mm})
		if err == nil {
			r.set = set
			break
		}
		if !strings.Contains(err.Error(), "too large") {
			break // a pattern RE2 reads differently: Go's regexp only
		}
	}
	return r, nil
}

// MustCompile is Compile that panics on a bad pattern.
func MustCompile(pattern string) *Regexp {
	r, err := Compile(pattern)
	if err != nil {
		panic(err)
	}
	return r
}

// String returns the pattern.
func (r *Regexp) String() string { return r.re.String() }

// Filter returns the pattern's necessary condition (nil: none).
func (r *Regexp) Filter() *rxfilter.Filter { return r.f }

// maybe reports whether s may match: false is certain; true from RE2
// is certain when decided is true.
func (r *Regexp) maybe(s string) (match, decided bool) {
	if !r.f.MayMatch(s) {
		return false, true
	}
	if r.set == nil || len(s) < minRE2Len || !utf8.ValidString(s) {
		return true, false
	}
	ids, err := r.set.FindAllStringWithError(s, 1)
	if err != nil {
		return true, false
	}
	return len(ids) > 0, true
}

// MatchString reports whether s contains a match, as regexp's.
func (r *Regexp) MatchString(s string) bool {
	m, decided := r.maybe(s)
	if decided {
		return m
	}
	return r.re.MatchString(s)
}

// FindStringIndex is regexp's: the leftmost match's location, or nil.
func (r *Regexp) FindStringIndex(s string) []int {
	if m, decided := r.maybe(s); decided && !m {
		return nil
	}
	return r.re.FindStringIndex(s)
}

// FindStringSubmatchIndex is regexp's: the leftmost match's location and
// its groups', or nil.
func (r *Regexp) FindStringSubmatchIndex(s string) []int {
	if m, decided := r.maybe(s); decided && !m {
		return nil
	}
	return r.re.FindStringSubmatchIndex(s)
}
