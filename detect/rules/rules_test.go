package rules_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/detect/rules"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func compile(t testing.TB, src string) *rules.Set {
	t.Helper()
	rs, err := rules.Parse("test.yml", strings.NewReader(src))
	require.NoError(t, err)
	s, err := rules.Compile(rs)
	require.NoError(t, err)
	return s
}

// collector gathers alerts.
type collector struct {
	mu     sync.Mutex
	alerts []*rules.Alert
}

func (c *collector) HandleAlert(a *rules.Alert) {
	c.mu.Lock()
	c.alerts = append(c.alerts, a)
	c.mu.Unlock()
}

func (c *collector) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, a := range c.alerts {
		out = append(out, a.Rule.ID)
	}
	return out
}

func engine(t testing.TB, src string, in *intel.Set) (*rules.Engine, *collector) {
	c := &collector{}
	cfg := rules.Config{Rules: compile(t, src), Handler: c, Now: func() time.Time { return t0.Add(time.Hour) }}
	if in != nil {
		cfg.Intel = intel.NewLive(in)
	}
	return rules.New(cfg), c
}

func ev(mod string) detect.Event {
	return detect.Event{Time: t0, Module: mod, Tenant: "a", Client: netip.MustParseAddrPort("127.0.1.5:40000")}
}

func TestDetectionMatching(t *testing.T) {
	base := ev("proxy")
	base.URL = "http://Evil.Example.jp/Download/setup.EXE?x=1"
	base.DestDomain = "evil.example.jp"
	base.Dest = netip.MustParseAddrPort("192.0.2.10:80")
	base.HTTP = detect.HTTPInfo{Method: "GET", Status: 200, UserAgent: "curl/8.0"}
	base.Verdict = detect.Verdict{Action: detect.ActionAllow, Rule: "proxy-category"}
	base.Labels = []detect.Label{{Key: "category", Value: "Malware"}}
	base.BytesOut = 5000

	cases := []struct {
		name string
		det  string
		want bool
	}{
		{"equals is case-insensitive", `url.domain: EVIL.example.JP`, true},
		{"equals mismatch", `url.domain: evil.example`, false},
		{"contains", `url.full|contains: /download/`, true},
		{"startswith", `url.full|startswith: http://evil`, true},
		{"endswith", `url.path|endswith: .exe`, true},
		{"cased contains fails on case", `url.full|contains|cased: /download/`, false},
		{"cased contains", `url.full|contains|cased: /Download/`, true},
		{"wildcard", `url.full: 'http://*.example.jp/*'`, true},
		{"question mark", `http.request.method: 'G?T'`, true},
		{"escaped star is literal", `url.full: 'http\*'`, false},
		{"list is OR", `http.request.method: [POST, GET]`, true},
		{"all modifier", `url.full|contains|all: [evil, setup]`, true},
		{"all modifier fails", `url.full|contains|all: [evil, nothing]`, false},
		{"re", `url.full|re: '(?i)setup\.exe\?'`, true},
		{"re is cased", `url.full|re: 'setup\.exe'`, false},
		{"re i flag", `url.full|re|i: 'setup\.exe'`, true},
		{"cidr", `destination.ip|cidr: 192.0.2.0/24`, true},
		{"cidr miss", `destination.ip|cidr: 198.51.100.0/24`, false},
		{"addr equals", `destination.ip: 192.0.2.10`, true},
		{"addr wildcard", `destination.ip: '192.0.2.*'`, true},
		{"int equals", `http.response.status_code: 200`, true},
		{"int prefix", `http.response.status_code|startswith: '2'`, true},
		{"gt", `destination.bytes|gt: 4999`, true},
		{"lt", `destination.bytes|lt: 5000`, false},
		{"port", `destination.port: 80`, true},
		{"exists", `user_agent.original|exists: true`, true},
		{"not exists", `http.request.referrer|exists: false`, true},
		{"null", `http.request.referrer: null`, true},
		{"null fails", `url.full: null`, false},
		{"any value", `url.full: '*'`, true},
		{"label", `labels.category: malware`, true},
		{"missing label", `labels.nothing: x`, false},
		{"verdict", `seccloud.verdict: allow`, true},
		{"terminal", `seccloud.terminal: 127.0.1.5`, true},
		{"tenant", `organization.id: a`, true},
		{"map is AND", "url.domain: evil.example.jp\n    http.request.method: POST", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := "id: r1\nlogsource: {product: seccloud, service: proxy}\ndetection:\n  sel:\n    " + tc.det + "\n  condition: sel\n"
			e, c := engine(t, src, nil)
			x := base
			e.Process(&x)
			assert.Equal(t, tc.want, len(c.ids()) == 1)
		})
	}
}

func TestConditions(t *testing.T) {
	e1 := ev("dns")
	e1.DNS = detect.DNSInfo{QName: "a.example.jp.", QType: "A", RCode: "NOERROR", Resolved: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}
	cases := []struct {
		cond string
		want bool
	}{
		{"s1", true},
		{"s1 and s2", false},
		{"s1 or s2", true},
		{"s1 and not s2", true},
		{"not (s1 or s2)", false},
		{"1 of s*", true},
		{"all of s*", false},
		{"all of them", false},
		{"1 of them", true},
		{"any of s*", true},
		{"s1 and _f", true},
		{"all of them and _f", false},
		{"not not s1", true},
		{"s1 and (s2 or s3)", true},
	}
	for _, tc := range cases {
		t.Run(tc.cond, func(t *testing.T) {
			src := `
id: c
logsource: {service: dns, product: seccloud}
detection:
  s1:
    dns.question.name|endswith: .example.jp
  s2:
    dns.question.type: TXT
  s3:
    dns.resolved_ip|cidr: 192.0.2.0/24
  _f:
    dns.response_code: NOERROR
  condition: ` + tc.cond + "\n"
			e, c := engine(t, src, nil)
			x := e1
			e.Process(&x)
			assert.Equal(t, tc.want, len(c.ids()) == 1)
		})
	}
}

func TestLogsourceRestrictsModule(t *testing.T) {
	e, c := engine(t, `
id: r
logsource: {product: seccloud, category: dns}
detection:
  s: {organization.id: a}
  condition: s
`, nil)
	x := ev("proxy")
	e.Process(&x)
	assert.Empty(t, c.ids())
	x = ev("dns")
	e.Process(&x)
	assert.Equal(t, []string{"r"}, c.ids())
}

func TestIntelModifier(t *testing.T) {
	set, err := intel.Build([]intel.Indicator{
		{Kind: intel.KindDomain, Value: "cc.example", Labels: []string{"c2"}},
		{Kind: intel.KindDomain, Value: "phish.example", Labels: []string{"phishing"}},
		{Kind: intel.KindAddr, Value: "203.0.113.0/24", Labels: []string{"c2"}},
	})
	require.NoError(t, err)
	e, c := engine(t, `
id: cc
detection:
  d: {dns.question.name|intel: c2}
  a: {destination.ip|intel: c2}
  condition: d or a
---
id: any
detection:
  d: {dns.question.name|intel: '*'}
  condition: d
`, set)
	for _, tc := range []struct {
		name string
		q    string
		dst  string
		want []string
	}{
		{"c2 subdomain", "x.cc.example.", "", []string{"cc", "any"}},
		{"phishing", "phish.example", "", []string{"any"}},
		{"c2 address", "", "203.0.113.9:443", []string{"cc"}},
		{"clean", "www.example.jp", "198.51.100.1:443", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.alerts = nil
			x := ev("dns")
			x.DNS.QName = tc.q
			if tc.dst != "" {
				x.Dest = netip.MustParseAddrPort(tc.dst)
			}
			e.Process(&x)
			assert.Equal(t, tc.want, c.ids())
		})
	}
}

func TestEventCount(t *testing.T) {
	e, c := engine(t, `
name: blocked
logsource: {product: seccloud, service: waf}
detection:
  s: {seccloud.verdict: block}
  condition: s
---
id: burst
correlation:
  type: event_count
  rules: [blocked]
  group-by: [source.ip]
  timespan: 1m
  condition: {gte: 10}
`, nil)
	send := func(tenant, src string, at time.Duration) {
		x := ev("waf")
		x.Tenant = tenant
		x.Client = netip.MustParseAddrPort(src + ":1000")
		x.Time = t0.Add(at)
		x.Verdict.Action = detect.ActionBlock
		e.Process(&x)
	}
	// 9 events then a gap longer than the window: no alert.
	for i := range 9 {
		send("a", "198.51.100.7", time.Duration(i)*time.Second)
	}
	send("a", "198.51.100.7", 2*time.Minute)
	assert.Empty(t, c.alerts)
	// Other tenant / other source do not add up.
	for i := range 5 {
		send("b", "198.51.100.7", 2*time.Minute+time.Duration(i)*time.Second)
		send("a", "198.51.100.8", 2*time.Minute+time.Duration(i)*time.Second)
	}
	assert.Empty(t, c.alerts)
	for i := range 9 {
		send("a", "198.51.100.7", 2*time.Minute+time.Duration(i+1)*time.Second)
	}
	require.Len(t, c.alerts, 1)
	a := c.alerts[0]
	assert.Equal(t, "burst", a.Rule.ID)
	assert.Equal(t, 10, a.Count)
	assert.Equal(t, "a", a.Tenant)
	assert.Equal(t, map[string]string{"source.ip": "198.51.100.7"}, a.Group)
	assert.Len(t, a.Events, 10)
}

func TestEventCountOutOfOrder(t *testing.T) {
	e, c := engine(t, `
name: x
detection: {s: {event.module: waf}, condition: s}
---
id: n
correlation: {type: event_count, rules: [x], timespan: 10s, condition: {gte: 3}}
`, nil)
	for _, at := range []time.Duration{20 * time.Second, 5 * time.Second, 12 * time.Second} {
		x := ev("waf")
		x.Time = t0.Add(at)
		e.Process(&x)
	}
	assert.Empty(t, c.alerts, "5s..20s spans 15s > 10s")
	x := ev("waf")
	x.Time = t0.Add(14 * time.Second)
	e.Process(&x) // 12, 14, 20 within 10s
	require.Len(t, c.alerts, 1)
	assert.Equal(t, 3, c.alerts[0].Count)
}

func TestLateEventsSkipCorrelation(t *testing.T) {
	e, c := engine(t, `
name: x
detection: {s: {event.module: waf}, condition: s}
---
id: n
correlation: {type: event_count, rules: [x], timespan: 1h, condition: {gte: 2}}
`, nil)
	x := ev("waf")
	x.Time = t0.Add(30 * time.Minute)
	e.Process(&x)
	x.Time = t0 // 30 min late > 2 min lateness
	e.Process(&x)
	assert.Empty(t, c.alerts)
	assert.Equal(t, uint64(1), e.Stats().Late)
}

func TestValueCount(t *testing.T) {
	e, c := engine(t, `
name: nx
detection: {s: {dns.response_code: NXDOMAIN}, condition: s}
---
id: dga
correlation:
  type: value_count
  rules: [nx]
  group-by: [seccloud.terminal]
  timespan: 5m
  condition: {field: dns.question.name, gte: 5}
`, nil)
	q := func(name string, at time.Duration) {
		x := ev("dns")
		x.Time = t0.Add(at)
		x.DNS = detect.DNSInfo{QName: name, RCode: "NXDOMAIN"}
		e.Process(&x)
	}
	for i := range 10 { // same 4 names repeated: 4 distinct
		q([]string{"a.x", "b.x", "c.x", "D.X"}[i%4], time.Duration(i)*time.Second)
	}
	q("d.x", 11*time.Second) // same as D.X
	assert.Empty(t, c.alerts)
	q("e.x", 12*time.Second)
	require.Len(t, c.alerts, 1)
	assert.Equal(t, 5, c.alerts[0].Count)
	assert.Equal(t, "127.0.1.5", c.alerts[0].Terminal)
}

func TestTemporal(t *testing.T) {
	src := `
name: a
detection: {s: {event.action: step_a}, condition: s}
---
name: b
detection: {s: {event.action: step_b}, condition: s}
---
id: t
correlation: {type: TYPE, rules: [a, b], group-by: [seccloud.terminal], timespan: 1m}
`
	for _, tc := range []struct {
		typ   string
		order []string
		want  bool
	}{
		{"temporal", []string{"step_b", "step_a"}, true},
		{"temporal_ordered", []string{"step_b", "step_a"}, false},
		{"temporal_ordered", []string{"step_a", "step_b"}, true},
	} {
		t.Run(tc.typ+" "+strings.Join(tc.order, ","), func(t *testing.T) {
			e, c := engine(t, strings.Replace(src, "TYPE", tc.typ, 1), nil)
			for i, a := range tc.order {
				x := ev("proxy")
				x.Action = a
				x.Time = t0.Add(time.Duration(i) * time.Second)
				e.Process(&x)
			}
			assert.Equal(t, tc.want, len(c.alerts) == 1)
		})
	}
}

// The shipped C&C correlation: a DNS answer for a C&C name, then a proxy
// connection to that address from the same terminal.
func TestDefaultCCResolveConnect(t *testing.T) {
	set, err := intel.Build([]intel.Indicator{{Kind: intel.KindDomain, Value: "cc.example", Labels: []string{"c2"}, Source: "cc.txt:1"}})
	require.NoError(t, err)
	def, err := rules.Default()
	require.NoError(t, err)
	c := &collector{}
	e := rules.New(rules.Config{Rules: def, Handler: c, Intel: intel.NewLive(set), Now: func() time.Time { return t0.Add(time.Hour) }})

	cc := netip.MustParseAddr("198.51.100.66")
	dns := ev("dns")
	dns.Action = "dns_query"
	dns.Terminal = "127.0.1.5"
	dns.DNS = detect.DNSInfo{QName: "beacon.cc.example.", QType: "A", RCode: "NOERROR", Resolved: []netip.Addr{cc}}
	dns.Verdict = detect.Verdict{Action: detect.ActionAllow}
	e.Process(&dns)
	assert.Equal(t, []string{"seccloud-dns-intel-query"}, c.ids())

	// Same terminal, other address: nothing.
	px := ev("proxy")
	px.Time = t0.Add(2 * time.Minute)
	px.Terminal = "127.0.1.5"
	px.DestDomain = "198.51.100.67"
	px.Dest = netip.MustParseAddrPort("198.51.100.67:443")
	px.Verdict = detect.Verdict{Action: detect.ActionAllow}
	e.Process(&px)
	// Other terminal, the C&C address: nothing.
	px2 := px
	px2.Terminal = "127.0.1.6"
	px2.Dest = netip.AddrPortFrom(cc, 443)
	e.Process(&px2)
	assert.Equal(t, []string{"seccloud-dns-intel-query"}, c.ids())
	// Same terminal, the address, after 2 minutes: the correlation.
	px3 := px
	px3.Dest = netip.AddrPortFrom(cc, 443)
	e.Process(&px3)
	require.Equal(t, []string{"seccloud-dns-intel-query", "seccloud-cc-resolve-connect"}, c.ids())
	a := c.alerts[1]
	assert.Equal(t, "a", a.Tenant)
	assert.Equal(t, "127.0.1.5", a.Terminal)
	require.Len(t, a.Events, 2)
	assert.Equal(t, "dns", a.Events[0].Module)
	assert.Equal(t, "proxy", a.Events[1].Module)
	require.Len(t, a.Final, 1)
	assert.Equal(t, "proxy", a.Final[0].Module)
	assert.Equal(t, "198.51.100.66", a.Group["cc_addr"])
	assert.True(t, a.Rule.Success)

	// After the window: nothing more.
	c.alerts = nil
	e.Process(&dns)
	late := px3
	late.Time = t0.Add(15 * time.Minute)
	e.Process(&late)
	assert.Equal(t, []string{"seccloud-dns-intel-query"}, c.ids())
}

func TestParseErrorsHaveFileAndLine(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"unknown field", "id: a\ndetection:\n  s:\n    dns.qname: x\n  condition: s\n", "test.yml:4: rule \"a\": unknown field \"dns.qname\""},
		{"bad modifier", "id: a\ndetection:\n  s:\n    url.full|base64: x\n  condition: s\n", "test.yml:4: rule \"a\": \"url.full|base64\": modifier \"base64\" is not supported"},
		{"bad regexp", "id: a\ndetection:\n  s:\n    url.full|re: '(x'\n  condition: s\n", "test.yml:4: rule \"a\": \"url.full|re\": value \"(x\""},
		{"unknown selection", "id: a\ndetection:\n  s: {url.full: x}\n  condition: s and t\n", "test.yml:4: rule \"a\": condition names unknown selection \"t\""},
		{"yaml syntax", "id: a\ndetection:\n  s: [x\n", "did not find expected"},
		{"v1 aggregation", "id: a\ndetection:\n  s: {url.full: x}\n  condition: s | count() > 5\n", "Sigma v1"},
		{"unknown key", "id: a\nfoo: 1\ndetection: {s: {url.full: x}, condition: s}\n", "test.yml:2: rule \"a\": unknown key \"foo\""},
		{"keywords", "id: a\ndetection:\n  k: [evil]\n  condition: k\n", "keyword"},
		{"lt condition", "id: a\ncorrelation: {type: event_count, rules: [x], timespan: 1m, condition: {lt: 5}}\n", "not supported"},
		{"no id", "title: x\ndetection: {s: {url.full: x}, condition: s}\n", "neither id nor name"},
		{"other product", "id: a\nlogsource: {product: windows}\ndetection: {s: {url.full: x}, condition: s}\n", "only \"seccloud\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rules.Parse("test.yml", strings.NewReader(tc.src))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			var re *rules.Error
			assert.True(t, errors.As(err, &re))
		})
	}
}

func TestCompileErrors(t *testing.T) {
	rs, err := rules.Parse("c.yml", strings.NewReader(`
id: a
detection: {s: {url.full: x}, condition: s}
---
id: a
detection: {s: {url.full: y}, condition: s}
---
id: c
correlation: {type: event_count, rules: [nope], timespan: 1m, condition: {gte: 2}}
---
id: d
correlation: {type: event_count, rules: [a], group-by: [nofield], timespan: 1m, condition: {gte: 2}}
`))
	require.NoError(t, err)
	_, err = rules.Compile(rs)
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, "c.yml:5: rule \"a\": id \"a\" already used by the rule at c.yml:2")
	assert.Contains(t, msg, "unknown rule \"nope\"")
	assert.Contains(t, msg, "\"nofield\" is neither a field nor an alias")
}

// A malformed file is refused with file:line and the running rules stay.
func TestReloadKeepsRunningRules(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "a.yml")
	require.NoError(t, os.WriteFile(good, []byte("id: good\ndetection: {s: {event.module: dns}, condition: s}\n"), 0o644))
	s, err := rules.ParseFiles(dir)
	require.NoError(t, err)
	c := &collector{}
	e := rules.New(rules.Config{Rules: s, Handler: c})

	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.yml"), []byte("id: bad\ndetection:\n  s: {dns.nope: 1}\n  condition: s\n"), 0o644))
	s2, err := rules.ParseFiles(dir)
	require.Error(t, err)
	assert.Nil(t, s2)
	assert.Contains(t, err.Error(), filepath.Join(dir, "b.yml")+":3:")
	e.SetRules(s2) // nil: ignored
	x := ev("dns")
	e.Process(&x)
	assert.Equal(t, []string{"good"}, c.ids())
}

func TestReloadKeepsCorrelationState(t *testing.T) {
	src := `
name: x
detection: {s: {event.module: waf}, condition: s}
---
id: n
correlation: {type: event_count, rules: [x], timespan: 1h, condition: {gte: 2}}
`
	e, c := engine(t, src, nil)
	x := ev("waf")
	e.Process(&x)
	e.SetRules(compile(t, src))
	e.Process(&x)
	assert.Len(t, c.alerts, 1)
}

func TestDefaultRulesCompile(t *testing.T) {
	s, err := rules.Default()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, s.Len(), 10)
	for name, b := range rules.DefaultFiles() {
		_, err := rules.Parse(name, strings.NewReader(string(b)))
		assert.NoError(t, err, name)
	}
}

func TestGroupsBounded(t *testing.T) {
	c := &collector{}
	e := rules.New(rules.Config{Rules: compile(t, `
name: x
detection: {s: {event.module: waf}, condition: s}
---
id: n
correlation: {type: event_count, rules: [x], group-by: [source.ip], timespan: 1h, condition: {gte: 2}}
`), Handler: c, MaxGroups: 10})
	for i := range 20 {
		x := ev("waf")
		x.Client = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 1)
		e.Process(&x)
	}
	assert.Equal(t, uint64(10), e.Stats().GroupsFull)
}

func TestValuesAccessor(t *testing.T) {
	x := ev("dns")
	x.DNS = detect.DNSInfo{QName: "www.example.jp.", Resolved: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}}
	v, ok := rules.Values(&x, "dns.question.name")
	assert.True(t, ok)
	assert.Equal(t, []string{"www.example.jp"}, v)
	v, _ = rules.Values(&x, "dns.resolved_ip")
	assert.Equal(t, []string{"192.0.2.1", "2001:db8::1"}, v)
	_, ok = rules.Values(&x, "no.such")
	assert.False(t, ok)
	assert.Contains(t, rules.FieldNames(), "url.full")
}

func TestGlobShapes(t *testing.T) {
	for _, tc := range []struct {
		pat, val string
		want     bool
	}{
		{"?", "a", true}, {"?", "ab", false}, {"?", "", false},
		{"*", "anything", true}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false},
		{"*.jp", "x.jp", true}, {"x.*", "x.jp", true}, {"*a?c*", "zzabcz", true},
		{"??", "日本", true}, {`a\*`, "a*", true}, {`a\*`, "ab", false}, {`a\\`, `a\`, true},
	} {
		t.Run(tc.pat+"~"+tc.val, func(t *testing.T) {
			e, c := engine(t, "id: g\ndetection:\n  s:\n    message: '"+tc.pat+"'\n  condition: s\n", nil)
			x := ev("proxy")
			x.Message = tc.val
			e.Process(&x)
			assert.Equal(t, tc.want, len(c.alerts) == 1)
		})
	}
}
