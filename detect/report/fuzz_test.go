package report

import (
	"testing"
	"time"

	"github.com/jichitai/seccloud/detect"
)

// FuzzDecodeRows: any log frame or snapshot payload decodes without
// panicking, and what encodes decodes back to the same rows.
func FuzzDecodeRows(f *testing.F) {
	d := delta{}
	classify(d, &detect.Event{Time: time.Unix(1_800_000_000, 0), Module: "waf", Tenant: "a", Labels: []detect.Label{{Key: "site", Value: "s"}},
		Verdict: detect.Verdict{Action: detect.ActionBlock, Rule: "r"}}, time.Now())
	f.Add(appendRows(nil, d))
	f.Add([]byte{1, 2, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		got := delta{}
		if err := decodeRows(b, got, map[string]string{}); err != nil {
			return
		}
		again := delta{}
		if err := decodeRows(appendRows(nil, got), again, map[string]string{}); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if len(again) != len(got) {
			t.Fatalf("%d rows, then %d", len(got), len(again))
		}
		for k, c := range got {
			if *again[k] != *c {
				t.Fatalf("row %+v: %v then %v", k, *c, *again[k])
			}
		}
	})
}
