package rules_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/detect/rules"
)

// benchEvents is a mix like the gateway's: mostly clean DNS and proxy
// events, some WAF blocks and mail, and a few intel hits.
func benchEvents() []detect.Event {
	var out []detect.Event
	for i := range 256 {
		cl := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}), uint16(30000+i))
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 443)
		t := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
		switch i % 8 {
		case 0, 1, 2:
			name := fmt.Sprintf("www%d.example%d.jp.", i, i%7)
			if i%64 == 0 {
				name = "x.cc.example."
			}
			out = append(out, detect.Event{Time: t, Module: "dns", Action: "dns_query", Tenant: "a", Client: cl, Terminal: cl.Addr().String(),
				DNS:     detect.DNSInfo{QName: name, QType: "A", RCode: "NOERROR", Resolved: []netip.Addr{dst.Addr()}},
				Verdict: detect.Verdict{Action: detect.ActionAllow}})
		case 3, 4, 5:
			host := fmt.Sprintf("www%d.example%d.jp", i, i%7)
			out = append(out, detect.Event{Time: t, Module: "proxy", Action: "http_request", Tenant: "a", Client: cl, Terminal: cl.Addr().String(),
				URL: "https://" + host + "/path/index.html?q=1", DestDomain: host, Dest: dst,
				HTTP:    detect.HTTPInfo{Method: "GET", Status: 200, UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"},
				Verdict: detect.Verdict{Action: detect.ActionAllow}, BytesOut: 12345})
		case 6:
			out = append(out, detect.Event{Time: t, Module: "waf", Tenant: "a", Client: netip.MustParseAddrPort("203.0.113.9:5555"),
				DestDomain: "www.city.example.jp", URL: "https://www.city.example.jp/?id=1%27%20OR%201=1", HTTP: detect.HTTPInfo{Method: "GET", Status: 403},
				Verdict: detect.Verdict{Action: detect.ActionBlock, Rule: "crs-942100", RuleName: "SQL injection"}})
		case 7:
			out = append(out, detect.Event{Time: t, Module: "mail", Tenant: "a", Client: cl,
				Email:   detect.EmailInfo{From: "user@city.example.jp", To: []string{"x@example.com"}, Subject: "会議資料", Direction: "outbound"},
				Verdict: detect.Verdict{Action: detect.ActionAllow}})
		}
	}
	return out
}

func benchIntel(b *testing.B) *intel.Live {
	var inds []intel.Indicator
	inds = append(inds, intel.Indicator{Kind: intel.KindDomain, Value: "cc.example", Labels: []string{"c2"}})
	for i := range 10000 {
		inds = append(inds, intel.Indicator{Kind: intel.KindDomain, Value: fmt.Sprintf("bad%d.example", i)})
	}
	s, err := intel.Build(inds)
	if err != nil {
		b.Fatal(err)
	}
	return intel.NewLive(s)
}

// manyRules generates n rules spread over the modules, with the usual
// shapes of SOC rules: suffix and substring matches, CIDRs, rule ids.
func manyRules(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "---\nid: gen-%d\n", i)
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "logsource: {product: seccloud, service: dns}\ndetection:\n  s:\n    dns.question.name|endswith: ['.bad%d.example', '.evil%d.test']\n  condition: s\n", i, i)
		case 1:
			fmt.Fprintf(&b, "logsource: {product: seccloud, service: proxy}\ndetection:\n  s:\n    url.full|contains: '/payload%d/'\n  f:\n    user_agent.original|startswith: 'curl/'\n  condition: s and not f\n", i)
		case 2:
			fmt.Fprintf(&b, "logsource: {product: seccloud, service: proxy}\ndetection:\n  s:\n    destination.ip|cidr: '10.%d.%d.0/24'\n    destination.port: [4444, %d]\n  condition: s\n", i%256, (i/256)%256, 1000+i)
		case 3:
			fmt.Fprintf(&b, "logsource: {product: seccloud, service: waf}\ndetection:\n  s:\n    rule.id: 'crs-%d'\n    seccloud.verdict: report\n  condition: s\n", 900000+i)
		case 4:
			fmt.Fprintf(&b, "logsource: {product: seccloud, service: mail}\ndetection:\n  s:\n    email.subject|contains: 'invoice %d'\n    email.direction: inbound\n  condition: s\n", i)
		}
	}
	return b.String()
}

func benchEngine(b *testing.B, s *rules.Set) {
	evs := benchEvents()
	e := rules.New(rules.Config{Rules: s, Intel: benchIntel(b), Handler: rules.HandlerFunc(func(*rules.Alert) {})})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		e.Process(&evs[i%len(evs)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkIngestDefault: the default rule set, one core.
func BenchmarkIngestDefault(b *testing.B) {
	s, err := rules.Default()
	if err != nil {
		b.Fatal(err)
	}
	benchEngine(b, s)
}

// BenchmarkIngest1000: the default set plus 1,000 generated rules.
func BenchmarkIngest1000(b *testing.B) {
	rs, err := rules.Parse("gen.yml", strings.NewReader(manyRules(1000)))
	if err != nil {
		b.Fatal(err)
	}
	def, _ := rules.Default()
	s, err := rules.Compile(append(def.Rules(), rs...))
	if err != nil {
		b.Fatal(err)
	}
	benchEngine(b, s)
}

// BenchmarkIngestDefaultParallel: the default rule set on every core.
func BenchmarkIngestDefaultParallel(b *testing.B) {
	s, _ := rules.Default()
	evs := benchEvents()
	e := rules.New(rules.Config{Rules: s, Intel: benchIntel(b), Handler: rules.HandlerFunc(func(*rules.Alert) {})})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			e.Process(&evs[i%len(evs)])
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkParseDefault(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rules.Default(); err != nil {
			b.Fatal(err)
		}
	}
}
