package judge_test

import (
	"testing"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/judge"
)

func BenchmarkJudge(b *testing.B) {
	r := rule(&testing.T{}, "id: w\ntitle: web attack\ndetection: {s: {event.module: waf}, condition: s}\n")
	in := judge.Input{Rule: r, Tenant: "a", Events: []detect.Event{waf(detect.ActionReport, 200)}, Count: 1}
	d := &judge.Default{Vuln: judge.StaticVuln{"a": {"www.city.example.jp": false}}}
	b.ReportAllocs()
	for b.Loop() {
		_ = d.Judge(in)
	}
}
