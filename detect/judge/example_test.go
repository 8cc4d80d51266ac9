package judge_test

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/judge"
	"github.com/jichitai/seccloud/detect/rules"
)

func ExampleDefault() {
	rs, _ := rules.Parse("waf.yml", strings.NewReader(`
id: waf-attack
title: Web attack
detection: {s: {event.module: waf}, condition: s}
`))
	set, _ := rules.Compile(rs)
	ev := detect.Event{Module: "waf", Tenant: "tsu", Client: netip.MustParseAddrPort("203.0.113.9:5000"),
		DestDomain: "www.city.tsu.example.jp", URL: "https://www.city.tsu.example.jp/?q=<script>",
		HTTP: detect.HTTPInfo{Status: 200}, Verdict: detect.Verdict{Action: detect.ActionReport, Rule: "crs-941100"}}
	d := &judge.Default{Vuln: judge.StaticVuln{"tsu": {"www.city.tsu.example.jp": true}}}
	j := d.Judge(judge.Input{Rule: set.Rules()[0], Tenant: "tsu", Events: []detect.Event{ev}, Count: 1})
	fmt.Println(j.Severity, j.Host)
	for _, e := range j.Evidence {
		fmt.Println(e.EN)
	}
	// Output:
	// succeeded www.city.tsu.example.jp
	// Rule waf-attack ("Web attack") matched on 1 event(s).
	// 1 event(s) reached the target (e.g. request from 203.0.113.9 to https://www.city.tsu.example.jp/?q=<script> HTTP 200 [report crs-941100]).
	// The target www.city.tsu.example.jp is recorded as vulnerable.
	// Level 3: the attack very likely succeeded.
}
