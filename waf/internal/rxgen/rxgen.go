// Package rxgen supports the tests of the regular-expression packages:
// it writes random strings an expression matches, and lists the @rx
// patterns of the embedded OWASP CRS.
package rxgen

import (
	"bufio"
	"io/fs"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/stretchr/testify/require"
)

// CRSPatterns returns the @rx arguments of the embedded CRS rules.
func CRSPatterns(t testing.TB) []string {
	var out []string
	err := fs.WalkDir(coreruleset.FS, "@owasp_crs", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".conf") {
			return err
		}
		b, err := fs.ReadFile(coreruleset.FS, path)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			i := strings.Index(line, `"@rx `)
			if i < 0 {
				continue
			}
			rest := line[i+5:]
			var p strings.Builder
			for j := 0; j < len(rest); j++ {
				if rest[j] == '\\' && j+1 < len(rest) && rest[j+1] == '"' {
					p.WriteByte('"')
					j++
					continue
				}
				if rest[j] == '"' {
					break
				}
				p.WriteByte(rest[j])
			}
			out = append(out, p.String())
		}
		return sc.Err()
	})
	require.NoError(t, err)
	require.Greater(t, len(out), 200, "CRS @rx patterns")
	return out
}

// Write writes a random string that re matches (when its empty-width
// assertions hold; callers check with the regexp).
func Write(r *rand.Rand, re *syntax.Regexp, b *strings.Builder) {
	switch re.Op {
	case syntax.OpLiteral:
		for _, c := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				orbit := []rune{c}
				for f := unicode.SimpleFold(c); f != c; f = unicode.SimpleFold(f) {
					orbit = append(orbit, f)
				}
				c = orbit[r.IntN(len(orbit))]
			}
			writeRune(b, c)
		}
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return
		}
		i := r.IntN(len(re.Rune)/2) * 2
		lo, hi := re.Rune[i], re.Rune[i+1]
		c := lo + rune(r.Int64N(int64(hi-lo)+1))
		if r.IntN(4) == 0 {
			c = lo
		}
		writeRune(b, c)
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		choices := []rune{'a', 'Z', '0', ' ', '\t', '防', '\u212a', '<', '\'', utf8.RuneError}
		if re.Op == syntax.OpAnyChar {
			choices = append(choices, '\n')
		}
		writeRune(b, choices[r.IntN(len(choices))])
	case syntax.OpCapture:
		Write(r, re.Sub[0], b)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := 0, 3
		switch re.Op {
		case syntax.OpPlus:
			lo = 1
		case syntax.OpQuest:
			hi = 1
		case syntax.OpRepeat:
			lo, hi = re.Min, re.Max
			if hi < 0 || hi > lo+3 {
				hi = lo + 3
			}
		}
		for n := lo + r.IntN(hi-lo+1); n > 0; n-- {
			Write(r, re.Sub[0], b)
		}
	case syntax.OpConcat:
		for _, s := range re.Sub {
			Write(r, s, b)
		}
	case syntax.OpAlternate:
		Write(r, re.Sub[r.IntN(len(re.Sub))], b)
	}
}

// writeRune writes c; U+FFFD is written as an invalid byte, which the
// regexp matches as U+FFFD.
func writeRune(b *strings.Builder, c rune) {
	if c == utf8.RuneError {
		b.WriteByte(0xff)
		return
	}
	b.WriteRune(c)
}

// Fuzz runs a fuzz target over (pattern, text) pairs, seeded with seeds:
// check gets each pattern Go's regexp compiles (at most 200 bytes).
func Fuzz(f *testing.F, seeds [][2]string, check func(t *testing.T, re *regexp.Regexp, pattern, text string)) {
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, text string) {
		if len(pattern) > 200 {
			return
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			return
		}
		check(t, re, pattern, text)
	})
}
