package dga_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/dnsres/dga"
)

func TestSplit(t *testing.T) {
	cases := []struct{ name, label, reg string }{
		{"www.example.com.", "example", "example.com"},
		{"www.city.sapporo.lg.jp", "sapporo", "sapporo.lg.jp"},
		{"a.b.rakuten.co.jp", "rakuten", "rakuten.co.jp"},
		{"xyzabc.ddns.net", "xyzabc", "xyzabc.ddns.net"},
		{"host.xyzabc.no-ip.biz", "xyzabc", "xyzabc.no-ip.biz"},
		{"r1-2.miss.bench.test", "bench", "bench.test"},
	}
	for _, c := range cases {
		l, r, ok := dga.Split(c.name)
		require.True(t, ok, c.name)
		assert.Equal(t, c.label, l, c.name)
		assert.Equal(t, c.reg, r, c.name)
	}
	for _, n := range []string{"", ".", "com", "co.jp", "ddns.net"} {
		_, _, ok := dga.Split(n)
		assert.False(t, ok, n)
	}
}

func TestScore(t *testing.T) {
	m, err := dga.Default()
	require.NoError(t, err)
	thr := m.Threshold()
	require.Greater(t, thr, 0.5)
	cases := []struct {
		name    string
		dga     bool
		skipped string
	}{
		{"xjwqpzkvbrtfhq.com", true, ""},
		{"kqzvmwbplxtr.org", true, ""},
		{"3f9a0c1d7be24a6f.net", true, ""}, // hex digest
		{"google.com", false, ""},
		{"wikipedia.org", false, ""},
		{"nicovideo.jp", false, ""},
		{"city.kitakyushu.lg.jp", false, ""},
		{"mizuhobank.co.jp", false, ""},
		{"xn--wgv71a119e.jp", false, "idn"}, // 日本語.jp
		{"xn--eckwd4c7c.xn--zckzah", false, "idn"},
		{"abc.com", false, "short"},
		{"co.jp", false, "suffix"},
	}
	for _, c := range cases {
		r := m.Score(c.name)
		assert.Equal(t, c.skipped, r.Skipped, c.name)
		assert.Equal(t, c.dga, r.Score >= thr, "%s scored %.3f", c.name, r.Score)
		assert.True(t, r.Score >= 0 && r.Score <= 1)
	}
	// Latin IDN labels are folded and scored.
	assert.Empty(t, m.Score("xn--mnchen-3ya.de").Skipped) // münchen.de
}

func TestNewRejectsBadFiles(t *testing.T) {
	_, err := dga.New(&dga.File{Version: 2}, nil)
	assert.Error(t, err)
	_, err = dga.New(&dga.File{Version: 1, Trigram: "!!"}, nil)
	assert.Error(t, err)
	_, err = dga.New(&dga.File{Version: 1, Trigram: "AAAA"}, nil)
	assert.Error(t, err)
}

func FuzzScore(f *testing.F) {
	m, err := dga.Default()
	require.NoError(f, err)
	for _, s := range []string{"example.com", "xn--wgv71a119e.jp", "xn--", "a..b", "xn--zz-.ddns.net", "ÄÖ.com", "-.-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		r := m.Score(name)
		if r.Score < 0 || r.Score > 1 || r.Score != r.Score {
			t.Fatalf("score %v for %q", r.Score, name)
		}
		_ = m.ScoreLabel(name)
	})
}

func BenchmarkScore(b *testing.B) {
	m, err := dga.Default()
	require.NoError(b, err)
	names := []string{"www.example.com", "xjwqpzkvbrtfhq.com", "city.kitakyushu.lg.jp", "r1234-5.miss.bench.test"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = m.Score(names[i%len(names)])
	}
}

func Example() {
	m, err := dga.Default()
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"www.wikipedia.org", "xjwqpzkvbrtfhq.com", "xn--wgv71a119e.jp"} {
		r := m.Score(name)
		fmt.Printf("%s dga=%v skipped=%q\n", name, r.Score >= m.Threshold(), r.Skipped)
	}
	// Output:
	// www.wikipedia.org dga=false skipped=""
	// xjwqpzkvbrtfhq.com dga=true skipped=""
	// xn--wgv71a119e.jp dga=false skipped="idn"
}
