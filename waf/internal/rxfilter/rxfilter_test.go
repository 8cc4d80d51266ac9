package rxfilter

import (
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/waf/internal/rxgen"
)

func TestNeedles(t *testing.T) {
	for _, c := range []struct {
		pattern string
		needles []string // nil: no needle filter
		minLen  int
	}{
		{`(?i)union\s+select`, []string{"select"}, 12},
		{`(?i)(?:union|insert)\s+into`, []string{"insert", "union"}, 10},
		{`(?i)(?:sleep|benchmark)\s*\(`, []string{"benchmark", "sleep"}, 6},
		{`<script`, []string{"<script"}, 7},
		{`[<>]`, []string{"<", ">"}, 1},
		{`abc|\d+`, nil, 1},
		{`a.*b`, nil, 2},
		{`(?i)on(?:load|error)\s*=`, []string{"onerror", "onload"}, 7},
		{`\.\./`, []string{"../"}, 3},
		{`(?i)\bdocument\.cookie\b`, []string{"document.cookie"}, 15},
		{`(?i)\x{212A}elvin`, []string{"kelvin"}, 6},
		{`(?i)é`, nil, 1},
		{`é`, []string{"é"}, 1},
		{`(?:foo)?bar`, []string{"bar"}, 3},
		{`x?y?z?`, nil, 0},
		{`[^a]`, nil, 1},
	} {
		f := New(c.pattern)
		if c.needles == nil {
			if f != nil {
				assert.Nil(t, f.Needles(), c.pattern)
			}
		} else {
			require.NotNil(t, f, c.pattern)
			assert.Equal(t, c.needles, f.Needles(), c.pattern)
		}
		if f != nil {
			assert.Equal(t, c.minLen, f.MinLen(), c.pattern)
		}
	}
}

func TestMayMatch(t *testing.T) {
	f := New(`(?i)union\s+select`)
	require.NotNil(t, f)
	assert.True(t, f.MayMatch("1 UNION SELECT 2"))
	assert.True(t, f.MayMatch("SeLeCt"[:0]+"xx sElEcT yy"))
	assert.False(t, f.MayMatch("防災 information about sele ct"))
	assert.False(t, f.MayMatch("short"))
	// 's' folds with U+017F LONG S: text holding one is passed on
	assert.True(t, regexp.MustCompile(`(?i)union\s+select`).MatchString("union \u017felect"))
	assert.True(t, f.MayMatch("union \u017felect"))
	var nilF *Filter
	assert.True(t, nilF.MayMatch("anything"))
	assert.Nil(t, New(`(`), "a pattern that does not parse gives no filter")
	assert.Nil(t, New(`.`), "no condition worth checking")
}

// The fold orbits of ASCII letters leave ASCII only for k and s: the
// guard of MayMatch covers exactly those.
func TestASCIIFoldOrbits(t *testing.T) {
	for c := 'a'; c <= 'z'; c++ {
		var out []rune
		for r := unicode.SimpleFold(c); r != c; r = unicode.SimpleFold(r) {
			if r >= utf8.RuneSelf {
				out = append(out, r)
			}
		}
		switch c {
		case 'k':
			assert.Equal(t, []rune{'\u212a'}, out)
		case 's':
			assert.Equal(t, []rune{'\u017f'}, out)
		default:
			assert.Empty(t, out, string(c))
		}
	}
}

var contexts = []string{"", "", "防災情報のお知らせです。", "abc ", "\n", "ＡＢＣ", "\xff", "Tokyo 東京 ", "x=1&y="}

// checkSound generates matching strings for pattern and checks that the
// filter passes every one the regexp matches; it returns how many
// matched.
func checkSound(t *testing.T, r *rand.Rand, pattern string, tries int) int {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return 0
	}
	tree, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return 0
	}
	tree = tree.Simplify()
	f := New(pattern)
	matched := 0
	for i := 0; i < tries; i++ {
		var b strings.Builder
		b.WriteString(contexts[r.IntN(len(contexts))])
		rxgen.Write(r, tree, &b)
		b.WriteString(contexts[r.IntN(len(contexts))])
		s := b.String()
		for _, v := range []string{s, strings.ToUpper(s), strings.ToLower(s)} {
			if re.MatchString(v) {
				matched++
				if !f.MayMatch(v) {
					t.Errorf("unsound: %q matches %q, filter %q (min %d) says no", pattern, v, f.Needles(), f.MinLen())
					return matched
				}
			}
		}
	}
	return matched
}

// TestSoundOnCRS: for every CRS @rx pattern, in the (?sm) form Coraza
// compiles, strings generated from the pattern that the regexp matches
// all pass the filter; and most patterns get a needle filter.
func TestSoundOnCRS(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pats := rxgen.CRSPatterns(t)
	tries := 60
	if testing.Short() {
		tries = 10
	}
	withMatch, withNeedles := 0, 0
	for _, p := range pats {
		if checkSound(t, r, "(?sm)"+p, tries) > 0 {
			withMatch++
		}
		if f := New("(?sm)" + p); f != nil && f.Needles() != nil {
			withNeedles++
		}
	}
	t.Logf("%d CRS patterns: %d matched generated text, %d have needles", len(pats), withMatch, withNeedles)
	assert.Greater(t, withMatch, len(pats)*8/10, "the generator must exercise most patterns")
	assert.Greater(t, withNeedles, len(pats)/2)
}

// The filter accepts every CRS regression payload the regexp matches.
// (The generated strings above are the main check; this one adds real
// attack text.)
func TestSoundOnSamples(t *testing.T) {
	samples := []string{
		"1' OR '1'='1", "<script>alert(1)</script>", "../../etc/passwd", "; cat /etc/passwd",
		"${jndi:ldap://x/a}", "UNION ALL SELECT NULL--", "<img src=x onerror=alert(1)>",
		"javascript:alert(1)", "{{7*7}}", "防災 SELECT * FROM users WHERE 1=1",
		"\u212aey=\u017felect", "<?php system($_GET['c']); ?>",
	}
	for _, p := range rxgen.CRSPatterns(t) {
		re, err := regexp.Compile("(?sm)" + p)
		if err != nil {
			continue
		}
		f := New("(?sm)" + p)
		for _, s := range samples {
			for _, v := range []string{s, strings.ToUpper(s)} {
				if re.MatchString(v) && !f.MayMatch(v) {
					t.Errorf("unsound: %q matches %q, filter %q says no", p, v, f.Needles())
				}
			}
		}
	}
}

func TestNeedlesSorted(t *testing.T) {
	f := New(`(?i)(?:zeta|alpha|mid)x`)
	require.NotNil(t, f)
	assert.True(t, slices.IsSorted(f.Needles()))
}

// FuzzSound: for any pattern and text, a regexp match implies MayMatch.
func FuzzSound(f *testing.F) {
	rxgen.Fuzz(f, [][2]string{
		{`(?i)union\s+select`, "1 UNION \u017fELECT"},
		{`(?i)k[ae]y`, "\u212aey"},
		{`[<>]`, "a<b"},
		{`(?sm)^foo$`, "x\nfoo\ny"},
		{`é|ü`, "\xffé"},
		{`(?i)(?:a|b)+c{2,}`, "ABCC"},
		{`\x{FFFD}x`, "\xffx"},
	}, func(t *testing.T, re *regexp.Regexp, pattern, text string) {
		fl := New(pattern)
		if re.MatchString(text) && !fl.MayMatch(text) {
			t.Fatalf("unsound: %q matches %q, filter %q (min %d) says no", pattern, text, fl.Needles(), fl.MinLen())
		}
	})
}
