package rules_test

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/rules"
)

func Example() {
	rs, err := rules.Parse("scan.yml", strings.NewReader(`
title: WAF block
name: waf_block
logsource: {product: seccloud, service: waf}
detection:
  blocked:
    seccloud.verdict: block
    url.path|contains: [/wp-admin, /phpmyadmin]
  condition: blocked
---
title: Scanner probing many paths
id: waf-scanner
correlation:
  type: value_count
  rules: [waf_block]
  group-by: [source.ip]
  timespan: 1m
  condition: {field: url.path, gte: 3}
`))
	if err != nil {
		fmt.Println(err) // every problem, as file:line: rule "id": why
		return
	}
	set, err := rules.Compile(rs)
	if err != nil {
		fmt.Println(err)
		return
	}
	e := rules.New(rules.Config{Rules: set, Handler: rules.HandlerFunc(func(a *rules.Alert) {
		fmt.Println(a.Rule.ID, a.Tenant, a.Group["source.ip"], a.Count)
	})})
	t := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	for i, p := range []string{"/wp-admin/", "/phpmyadmin/", "/wp-admin/setup.php"} {
		ev := detect.Event{Time: t.Add(time.Duration(i) * time.Second), Module: "waf", Tenant: "tsu",
			Client: netip.MustParseAddrPort("203.0.113.9:5000"), URL: "https://www.city.tsu.example.jp" + p,
			Verdict: detect.Verdict{Action: detect.ActionBlock}}
		e.Process(&ev)
	}
	// Output:
	// waf-scanner tsu 203.0.113.9 3
}

func ExampleParse_error() {
	_, err := rules.Parse("bad.yml", strings.NewReader("id: r1\ndetection:\n  s:\n    dns.qname|endswith: .evil.example\n  condition: s\n"))
	fmt.Println(err)
	// Output:
	// rules: bad.yml:4: rule "r1": unknown field "dns.qname" (fields are ECS names of seccloud events, e.g. dns.question.name, url.full, source.ip, labels.<key>)
}
