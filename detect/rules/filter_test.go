package rules_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/rules"
)

const filterRules = `
title: WAF attack
id: waf-attack
logsource: {product: seccloud, service: waf}
detection: {sel: {seccloud.verdict: block}, condition: sel}
---
title: Many WAF blocks
id: waf-many
correlation: {type: event_count, rules: [waf-attack], group-by: [source.ip], timespan: 1h, condition: {gte: 3}, generate: true}
---
title: DNS NXDOMAIN
id: dns-nx
logsource: {product: seccloud, service: dns}
detection: {sel: {dns.response_code: NXDOMAIN}, condition: sel}
---
title: Drop the cloud's own vulnerability scanner everywhere
id: filter-scanner
filter:
  scanner:
    source.ip|cidr: 192.0.2.0/28
  condition: not scanner
---
title: Tenant b's printers ask for names that do not exist; not useful
id: filter-b-printers
logsource: {product: seccloud, service: dns}
filter:
  rules: [dns-nx]
  printers:
    dns.question.name|endswith: .printer.local
  condition: not printers
seccloud: {tenants: [b]}
`

func TestFilters(t *testing.T) {
	e, c := engine(t, filterRules, nil)
	block := func(src, tenant string) detect.Event {
		x := ev("waf")
		x.Tenant, x.Client = tenant, netip.MustParseAddrPort(src+":1000")
		x.Verdict = detect.Verdict{Action: detect.ActionBlock, Rule: "crs-1"}
		return x
	}
	// The scanner's blocks reach no rule and no correlation.
	for i := range 5 {
		x := block("192.0.2.3", "a")
		x.Time = t0.Add(time.Duration(i) * time.Second)
		e.Process(&x)
	}
	assert.Empty(t, c.ids())
	assert.EqualValues(t, 5, e.Stats().Filtered)
	// An attacker's blocks do.
	for i := range 3 {
		x := block("203.0.113.7", "a")
		x.Time = t0.Add(time.Duration(i) * time.Second)
		e.Process(&x)
	}
	assert.Equal(t, []string{"waf-attack", "waf-attack", "waf-attack", "waf-many"}, c.ids())

	// The per-tenant, per-rule filter: tenant b's printer lookups are
	// dropped from dns-nx, tenant a's are not, other names of b are not.
	c.alerts = nil
	for _, tc := range []struct{ tenant, name string }{{"b", "hp.printer.local."}, {"a", "hp.printer.local."}, {"b", "x.example."}} {
		x := ev("dns")
		x.Tenant, x.DNS = tc.tenant, detect.DNSInfo{QName: tc.name, RCode: "NXDOMAIN"}
		e.Process(&x)
	}
	require.Len(t, c.alerts, 2)
	assert.Equal(t, "a", c.alerts[0].Tenant)
	assert.Equal(t, "x.example", strings.TrimSuffix(c.alerts[1].Events[0].DNS.QName, "."))
	assert.EqualValues(t, 6, e.Stats().Filtered)
}

func TestFilterErrors(t *testing.T) {
	for name, tc := range map[string]struct{ src, want string }{
		"unknown rule": {`
id: f
filter: {rules: [nope], s: {event.module: dns}, condition: not s}`, `filter refers to unknown rule "nope"`},
		"tenants on a detection": {`
id: r
detection: {s: {event.module: dns}, condition: s}
seccloud: {tenants: [a]}`, "seccloud.tenants is for filters only"},
		"filter and detection": {`
id: r
detection: {s: {event.module: dns}, condition: s}
filter: {s: {event.module: dns}, condition: s}`, "a rule has one of detection, correlation or filter"},
		"correlation of a filter": {`
id: f
filter: {s: {event.module: dns}, condition: not s}
---
id: c
correlation: {type: event_count, rules: [f], group-by: [source.ip], timespan: 1m, condition: {gte: 2}}`, `correlation refers to filter "f"`},
	} {
		t.Run(name, func(t *testing.T) {
			rs, err := rules.Parse("f.yml", strings.NewReader(tc.src))
			if err == nil {
				_, err = rules.Compile(rs)
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "f.yml:")
		})
	}
}
