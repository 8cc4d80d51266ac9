package intel_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect/intel"
)

const sha = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"

func TestParseListAndLookups(t *testing.T) {
	list := `# C&C list
evil.example
*.Bad.Example.   # wildcard form
0.0.0.0 ads.example tracker.example
127.0.0.1 localhost
198.51.100.7
203.0.113.0/24
2001:db8:bad::/48
http://Phish.Example:80/login/
https://x.example/a.exe?dl=1#frag
` + sha + "\n"
	inds, err := intel.ParseList(strings.NewReader(list), "c2.txt", 0, "c2")
	require.NoError(t, err)
	set, err := intel.Build(inds)
	require.NoError(t, err)
	st := set.Stats()
	assert.Equal(t, intel.Stats{Domains: 4, Addrs: 3, URLs: 2, Hashes: 1}, st)

	for _, tc := range []struct {
		name string
		ok   bool
		src  string
	}{
		{"evil.example", true, "c2.txt:2"},
		{"A.B.EVIL.EXAMPLE.", true, "c2.txt:2"},
		{"notevil.example", false, ""},
		{"x.bad.example", true, "c2.txt:3"},
		{"tracker.example", true, "c2.txt:4"},
		{"localhost", false, ""},
		{"example", false, ""},
	} {
		ind, ok := set.Domain(tc.name)
		assert.Equal(t, tc.ok, ok, tc.name)
		if ok {
			assert.Equal(t, tc.src, ind.Source, tc.name)
			assert.Equal(t, []string{"c2"}, ind.Labels)
		}
	}
	for addr, want := range map[string]bool{
		"198.51.100.7": true, "198.51.100.8": false, "203.0.113.255": true, "::ffff:203.0.113.1": true,
		"2001:db8:bad:1::1": true, "2001:db8:bae::1": false,
	} {
		_, ok := set.Addr(netip.MustParseAddr(addr))
		assert.Equal(t, want, ok, addr)
	}
	for u, want := range map[string]bool{
		"http://phish.example/login/":          true,
		"HTTP://PHISH.EXAMPLE/login/step2?x=1": true,
		"http://phish.example/logout":          false,
		"https://x.example/a.exe?dl=1":         true,
		"https://x.example:443/a.exe?dl=1#y":   true,
		"https://x.example/a.exe":              false,
		"not a url":                            false,
	} {
		_, ok := set.URL(u)
		assert.Equal(t, want, ok, u)
	}
	_, ok := set.Hash(strings.ToLower(sha))
	assert.True(t, ok)
	_, ok = set.Hash(sha)
	assert.True(t, ok)
	_, ok = set.Hash("00")
	assert.False(t, ok)
}

func TestParseListErrors(t *testing.T) {
	inds, err := intel.ParseList(strings.NewReader("good.example\nbad domain here\n300.1.1.1/8\n\nbad_ch@r.example\n"), "l.txt", 0, "")
	require.Error(t, err)
	var le *intel.LineError
	require.True(t, errors.As(err, &le))
	msg := err.Error()
	assert.Contains(t, msg, "l.txt:2:")
	assert.Contains(t, msg, "l.txt:3:") // not a prefix, so guessed a domain, and '/' is not allowed in one
	assert.Contains(t, msg, "l.txt:5:")
	assert.Len(t, inds, 1, "good lines are still returned")
	_, err = intel.ParseList(strings.NewReader("not-an-ip\n"), "a.txt", intel.KindAddr, "")
	assert.ErrorContains(t, err, "a.txt:1: not an address or prefix")
}

const bundle = `{
  "type": "bundle", "id": "bundle--1",
  "objects": [
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--a", "name": "C2 domains",
     "pattern": "[domain-name:value = 'cc.example' OR domain-name:value = 'cc2.example']",
     "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z", "indicator_types": ["malicious-activity"]},
    {"type": "indicator", "id": "indicator--b", "pattern": "[ipv4-addr:value = '192.0.2.0/25']", "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"},
    {"type": "indicator", "id": "indicator--c", "pattern": "[file:hashes.'SHA-256' = '` + sha + `']", "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"},
    {"type": "indicator", "id": "indicator--d", "pattern": "[url:value = 'http://it\\'s.example/x']", "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"},
    {"type": "indicator", "id": "indicator--revoked", "revoked": true, "pattern": "[domain-name:value = 'old.example']", "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"},
    {"type": "indicator", "id": "indicator--expired", "valid_until": "2026-06-01T00:00:00Z", "pattern": "[domain-name:value = 'exp.example']", "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"},
    {"type": "indicator", "id": "indicator--and", "pattern": "[domain-name:value = 'a.example' AND domain-name:value = 'b.example']", "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"},
    {"type": "indicator", "id": "indicator--snort", "pattern": "alert tcp any any", "pattern_type": "snort", "valid_from": "2026-01-01T00:00:00Z"},
    {"type": "malware", "id": "malware--x", "name": "x", "is_family": false}
  ]
}`

func TestParseSTIX(t *testing.T) {
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	inds, skipped, err := intel.ParseSTIX(strings.NewReader(bundle), "feed.json", now)
	require.NoError(t, err)
	assert.Equal(t, 4, skipped) // revoked, expired, AND, snort
	set, err := intel.Build(inds)
	require.NoError(t, err)
	ind, ok := set.Domain("www.cc2.example")
	require.True(t, ok)
	assert.Equal(t, "feed.json#indicator--a", ind.Source)
	assert.Equal(t, "C2 domains", ind.Name)
	assert.Equal(t, []string{"malicious-activity"}, ind.Labels)
	_, ok = set.Addr(netip.MustParseAddr("192.0.2.127"))
	assert.True(t, ok)
	_, ok = set.Addr(netip.MustParseAddr("192.0.2.128"))
	assert.False(t, ok)
	_, ok = set.Hash(sha)
	assert.True(t, ok)
	_, ok = set.URL("http://it's.example/x")
	assert.True(t, ok)
	_, ok = set.Domain("old.example")
	assert.False(t, ok)

	_, _, err = intel.ParseSTIX(strings.NewReader(`{"type":"report"}`), "r.json", now)
	assert.ErrorContains(t, err, `r.json: type "report", want "bundle"`)
	_, _, err = intel.ParseSTIX(strings.NewReader(`{`), "r.json", now)
	assert.ErrorContains(t, err, "not a STIX bundle")
}

func TestLoadFilesKeepsNothingOnError(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "d.txt")
	require.NoError(t, os.WriteFile(good, []byte("evil.example\n"), 0o644))
	stix := filepath.Join(dir, "f.json")
	require.NoError(t, os.WriteFile(stix, []byte(bundle), 0o644))
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	set, err := intel.Load(intel.Files{Domains: []string{good}, STIX: []string{stix}}, now)
	require.NoError(t, err)
	assert.Equal(t, 4, set.Stats().Skipped)
	live := intel.NewLive(set)

	bad := filepath.Join(dir, "bad.txt")
	require.NoError(t, os.WriteFile(bad, []byte("ok.example\n!!\n"), 0o644))
	_, err = intel.Load(intel.Files{Domains: []string{good, bad}}, now)
	require.ErrorContains(t, err, "bad.txt:2:")
	_, err = intel.Load(intel.Files{Domains: []string{filepath.Join(dir, "missing")}}, now)
	require.Error(t, err)
	_, ok := live.Load().Domain("evil.example")
	assert.True(t, ok, "the set in force is unchanged")

	var zero intel.Live
	_, ok = zero.Load().Domain("evil.example")
	assert.False(t, ok)
}

func TestLookupsDoNotAllocate(t *testing.T) {
	inds, err := intel.ParseList(strings.NewReader("evil.example\n192.0.2.0/24\n"+sha+"\n"), "x", 0, "")
	require.NoError(t, err)
	set, err := intel.Build(inds)
	require.NoError(t, err)
	a := netip.MustParseAddr("192.0.2.9")
	assert.Zero(t, testing.AllocsPerRun(100, func() { set.Domain("A.B.Evil.Example.") }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { set.Addr(a) }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { set.Hash(sha) }))
}

func FuzzParseList(f *testing.F) {
	f.Add("evil.example\n0.0.0.0 a.example b\n192.0.2.0/24\nhttp://x/\n# c\n")
	f.Add("\xff\n::ffff:1.2.3.4/120\n[::1]\n")
	f.Fuzz(func(t *testing.T, s string) {
		inds, _ := intel.ParseList(strings.NewReader(s), "f", 0, "")
		set, err := intel.Build(inds)
		if err != nil {
			t.Fatalf("ParseList returned indicators Build refuses: %v", err)
		}
		for _, in := range inds {
			again, err := intel.Normalize(in.Kind, in.Value)
			if err != nil || again != in.Value {
				t.Fatalf("normalise not idempotent: %q -> %q, %v", in.Value, again, err)
			}
			switch in.Kind {
			case intel.KindDomain:
				if _, ok := set.Domain(in.Value); !ok {
					t.Fatalf("listed domain %q not found", in.Value)
				}
			case intel.KindURL:
				if _, ok := set.URL(in.Value); !ok {
					t.Fatalf("listed URL %q not found", in.Value)
				}
			case intel.KindAddr:
				if _, ok := set.Addr(netip.MustParsePrefix(in.Value).Addr()); !ok {
					t.Fatalf("listed prefix %q not found", in.Value)
				}
			}
		}
	})
}

func FuzzParseSTIX(f *testing.F) {
	f.Add(bundle)
	f.Add(`{"type":"bundle","objects":[{"type":"indicator","pattern":"[url:value = '\\\\']"}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		inds, _, _ := intel.ParseSTIX(strings.NewReader(s), "f", time.Unix(0, 0))
		if _, err := intel.Build(inds); err != nil {
			t.Fatalf("ParseSTIX returned indicators Build refuses: %v", err)
		}
	})
}

func benchSet(b *testing.B, n int) *intel.Set {
	inds := make([]intel.Indicator, 0, n+n/10)
	for i := range n {
		inds = append(inds, intel.Indicator{Kind: intel.KindDomain, Value: fmt.Sprintf("d%d.bad%d.example", i, i%997)})
	}
	for i := range n / 10 {
		inds = append(inds, intel.Indicator{Kind: intel.KindAddr, Value: netip.AddrFrom4([4]byte{byte(i >> 16), byte(i >> 8), byte(i), 0}).String() + "/24"})
	}
	s, err := intel.Build(inds)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkDomain1M(b *testing.B) {
	s := benchSet(b, 1_000_000)
	names := []string{"www.d4242.bad255.example.", "cdn.images.example.com", "a.b.c.d.e.f.example.org", "D999.BAD5.EXAMPLE"}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.Domain(names[i&3])
			i++
		}
	})
}

func BenchmarkAddr100k(b *testing.B) {
	s := benchSet(b, 1_000_000)
	addrs := []netip.Addr{netip.MustParseAddr("0.1.2.3"), netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("1.134.159.1")}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.Addr(addrs[i&3])
			i++
		}
	})
}
