package rules_test

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/rules"
)

// FuzzParse feeds arbitrary bytes to the rule parser and compiler: they must
// never panic, every error must carry the file name, and a set that compiles
// must process events without panicking.
func FuzzParse(f *testing.F) {
	for _, b := range rules.DefaultFiles() {
		f.Add(b)
	}
	f.Add([]byte("id: a\ndetection:\n  s:\n    url.full|contains|all: [a, b]\n    source.ip|cidr: 10.0.0.0/8\n  condition: not s or (s and 1 of s*)\n"))
	f.Add([]byte("name: a\ndetection: {s: {message: 'a*b?c\\\\*'}, condition: s}\n---\nid: c\ncorrelation: {type: temporal, rules: [a, a], group-by: [x], aliases: {x: {a: source.ip}}, timespan: 1m}\n"))
	f.Add([]byte(filterRules))
	evs := benchEvents()[:16]
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := rules.Parse("fuzz.yml", bytes.NewReader(data))
		if err != nil {
			if !bytes.Contains([]byte(err.Error()), []byte("fuzz.yml")) {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		s, err := rules.Compile(rs)
		if err != nil {
			return
		}
		e := rules.New(rules.Config{Rules: s, Now: func() time.Time { return time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC) }})
		for i := range evs {
			e.Process(&evs[i])
		}
		x := detect.Event{Module: "dns", Client: netip.MustParseAddrPort("[::1]:53"), Labels: []detect.Label{{Key: "a", Value: "\xff"}}}
		e.Process(&x)
	})
}
