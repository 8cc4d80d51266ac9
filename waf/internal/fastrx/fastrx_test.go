package fastrx

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/waf/internal/rxgen"
)

// long contexts put the generated text past minRE2Len, so RE2 decides.
var contexts = []string{
	"", "\n", "x=1&y=", "\xff",
	strings.Repeat("防災情報のお知らせです。避難所は青葉小学校です。", 3),
	strings.Repeat("Please let me know if English support is available. ", 2),
	"お問い合わせ\r\n" + strings.Repeat("a", 70),
}

// same compares every answer of r with Go's regexp on s.
func same(t *testing.T, r *Regexp, re *regexp.Regexp, s string) bool {
	t.Helper()
	if a, b := r.MatchString(s), re.MatchString(s); a != b {
		t.Errorf("MatchString(%q) = %v, Go %v: %.120s", s, a, b, re.String())
		return false
	}
	if a, b := r.FindStringIndex(s), re.FindStringIndex(s); !slices.Equal(a, b) {
		t.Errorf("FindStringIndex(%q) = %v, Go %v: %.120s", s, a, b, re.String())
		return false
	}
	if a, b := r.FindStringSubmatchIndex(s), re.FindStringSubmatchIndex(s); !slices.Equal(a, b) {
		t.Errorf("FindStringSubmatchIndex(%q) = %v, Go %v: %.120s", s, a, b, re.String())
		return false
	}
	return true
}

// TestSameAsGoOnCRS: text generated from every CRS pattern (matching and
// not, ASCII and Japanese, valid and invalid UTF-8, long enough for RE2)
// gets Go's answers.
func TestSameAsGoOnCRS(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	tries := 12
	if testing.Short() {
		tries = 3
	}
	pats := rxgen.CRSPatterns(t)
	re2, matched := 0, 0
	for _, p := range pats {
		p = "(?sm)" + p
		r, err := Compile(p)
		require.NoError(t, err)
		if r.set != nil {
			re2++
		}
		re := regexp.MustCompile(p)
		tree, err := syntax.Parse(p, syntax.Perl)
		require.NoError(t, err)
		tree = tree.Simplify()
	tries:
		for i := 0; i < tries; i++ {
			var b strings.Builder
			b.WriteString(contexts[rnd.IntN(len(contexts))])
			rxgen.Write(rnd, tree, &b)
			b.WriteString(contexts[rnd.IntN(len(contexts))])
			s := b.String()
			for _, v := range []string{s, strings.ToUpper(s), s[:len(s)/2]} {
				if re.MatchString(v) {
					matched++
				}
				if !same(t, r, re, v) {
					break tries
				}
			}
		}
	}
	t.Logf("%d CRS patterns, %d run by RE2, %d generated texts matched", len(pats), re2, matched)
	assert.Greater(t, re2, len(pats)*9/10, "RE2 takes nearly every CRS pattern")
	assert.Greater(t, matched, len(pats)*tries/2)
}

// One Regexp used from many goroutines at once (RE2 runs in a pool of
// module instances) answers each as Go does.
func TestConcurrentUse(t *testing.T) {
	pats := rxgen.CRSPatterns(t)[:40]
	rs := make([]*Regexp, len(pats))
	gs := make([]*regexp.Regexp, len(pats))
	for i, p := range pats {
		rs[i], gs[i] = MustCompile("(?sm)"+p), regexp.MustCompile("(?sm)"+p)
	}
	texts := []string{contexts[4] + "; cat /etc/passwd", contexts[5] + "<script>alert(1)</script>", contexts[4], contexts[6] + "' or 1=1--"}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 50; n++ {
				i, s := (g*7+n)%len(rs), texts[(g+n)%len(texts)]
				if rs[i].MatchString(s) != gs[i].MatchString(s) {
					errs <- fmt.Sprintf("%.60s on %.40q", pats[i], s)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error("differs from Go:", e)
	}
}

func TestInvalidUTF8GoesToGo(t *testing.T) {
	// Go reads an invalid byte as U+FFFD; RE2 would stop there.
	p := `(?s)^.*$`
	r := MustCompile(p)
	s := strings.Repeat("a", 100) + "\xff" + strings.Repeat("b", 100)
	assert.True(t, r.MatchString(s))
	assert.True(t, same(t, r, regexp.MustCompile(p), s))
	assert.Equal(t, p, r.String())
}

func TestCompileError(t *testing.T) {
	_, err := Compile(`(`)
	assert.ErrorContains(t, err, "fastrx:")
	assert.Panics(t, func() { MustCompile(`(`) })
}

// FuzzSameAsGo: for any pattern and text, the answers are Go's.
func FuzzSameAsGo(f *testing.F) {
	long := strings.Repeat("防災 ", 30)
	rxgen.Fuzz(f, [][2]string{
		{`(?i)union\s+select`, long + "1 UNION \u017fELECT"},
		{`(?sm)^foo$`, long + "x\nfoo\ny"},
		{`(?i)k[ae]y`, long + "\u212aey"},
		{`(a+)(b)?`, long + "aaab"},
		{`\bword\b`, long + "a word."},
		{`[^a]+`, long + "\xff\xfe"},
	}, func(t *testing.T, re *regexp.Regexp, pattern, text string) {
		r, err := Compile(pattern)
		if err != nil {
			t.Fatalf("Go compiles %q, fastrx: %v", pattern, err)
		}
		same(t, r, re, text)
	})
}

func BenchmarkCRSOnJapanese(b *testing.B) {
	text := strings.Repeat("いつもお世話になっております。避難所（青葉小学校体育館）は何時から開設されますか？Please let me know if English support is available at the shelter.", 16)
	var fast []*Regexp
	var gos []*regexp.Regexp
	for _, p := range rxgen.CRSPatterns(b) {
		fast = append(fast, MustCompile("(?sm)"+p))
		gos = append(gos, regexp.MustCompile("(?sm)"+p))
	}
	b.Run("fastrx", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(text)))
		for i := 0; i < b.N; i++ {
			for _, r := range fast {
				r.MatchString(text)
			}
		}
	})
	b.Run("go-regexp", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(text)))
		for i := 0; i < b.N; i++ {
			for _, r := range gos {
				r.MatchString(text)
			}
		}
	})
}
