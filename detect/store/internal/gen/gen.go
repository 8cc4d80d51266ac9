// Package gen generates realistic gateway events for the store's tests,
// benchmarks and the big-store builder: about 33 tenants, the modules
// proxy, dns, mail and waf in gateway proportions, URLs, addresses, user
// agents and verdicts.
package gen

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/jichitai/seccloud/detect"
)

// Gen produces events deterministically from a seed. Not safe for
// concurrent use.
type Gen struct {
	r       *rand.Rand
	tenants []string
	domains []string
	paths   []string
	agents  []string
}

// New returns a generator with the given number of tenants ("t01", ...);
// zero or less means 33.
func New(seed uint64, tenants int) *Gen {
	if tenants <= 0 {
		tenants = 33
	}
	g := &Gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for i := range tenants {
		g.tenants = append(g.tenants, fmt.Sprintf("t%02d", i+1))
	}
	for i := range 2000 {
		tld := []string{"jp", "co.jp", "com", "net", "lg.jp", "org", "go.jp"}[i%7]
		g.domains = append(g.domains, fmt.Sprintf("%s%d.example.%s", []string{"www", "cdn", "api", "static", "mail", "news"}[i%6], i, tld))
	}
	for i := range 500 {
		g.paths = append(g.paths, fmt.Sprintf("/%s/%d/%s", []string{"images", "js", "css", "api/v1", "news", "kurashi", "login"}[i%7], i*7919%100000, []string{"index.html", "app.js", "style.css", "data.json", "logo.png", ""}[i%6]))
	}
	g.agents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
		"Microsoft-CryptoAPI/10.0",
		"Windows-Update-Agent/10.0.10011.16384 Client-Protocol/2.50",
	}
	return g
}

// Tenants returns the tenant ids.
func (g *Gen) Tenants() []string { return g.tenants }

// Event returns one event at time t.
func (g *Gen) Event(t time.Time) detect.Event {
	r := g.r
	ti := r.IntN(len(g.tenants))
	client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(ti), byte(r.IntN(40)), byte(1 + r.IntN(250))}), uint16(1024+r.IntN(60000)))
	dom := g.domains[min(r.IntN(len(g.domains)), r.IntN(len(g.domains)))] // skewed to popular
	dest := netip.AddrFrom4([4]byte{byte(20 + r.IntN(180)), byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
	e := detect.Event{Time: t, Tenant: g.tenants[ti], Client: client, Outcome: "success"}
	switch x := r.IntN(100); {
	case x < 50:
		e.Module, e.Dataset, e.Action, e.Category, e.Type = "proxy", "proxy.access", "http_request", "web", "access"
		e.Dest = netip.AddrPortFrom(dest, 443)
		e.DestDomain = dom
		e.URL = "https://" + dom + g.paths[r.IntN(len(g.paths))]
		e.HTTP = detect.HTTPInfo{Method: "GET", Status: []int{200, 200, 200, 304, 404, 302}[r.IntN(6)], UserAgent: g.agents[r.IntN(len(g.agents))]}
		e.BytesIn, e.BytesOut = int64(300+r.IntN(2000)), int64(r.IntN(200000))
		e.Duration = time.Duration(r.IntN(500)) * time.Millisecond
		e.Verdict.Action = detect.ActionAllow
		if r.IntN(50) == 0 {
			e.Verdict = detect.Verdict{Action: detect.ActionBlock, Rule: "intel-domain", RuleName: "threat intel domain", Reason: "domain listed by threat intelligence"}
			e.Severity = detect.SeverityStopped
			e.Outcome = "failure"
		}
	case x < 85:
		e.Module, e.Dataset, e.Action, e.Category, e.Type = "dns", "dns.query", "dns_query", "network", "protocol"
		e.Client = netip.AddrPortFrom(client.Addr(), 53)
		e.DNS = detect.DNSInfo{QName: dom + ".", QType: []string{"A", "AAAA", "HTTPS"}[r.IntN(3)], RCode: "NOERROR", ID: uint16(r.Uint32()), Resolved: []netip.Addr{dest}}
		e.Verdict.Action = detect.ActionAllow
	case x < 90:
		e.Module, e.Dataset, e.Action, e.Category, e.Type = "mail", "mail.smtp", "smtp_delivery", "email", "info"
		e.Email = detect.EmailInfo{From: fmt.Sprintf("user%d@%s", r.IntN(5000), dom), To: []string{fmt.Sprintf("staff%d@city%d.lg.jp", r.IntN(3000), ti)}, Subject: "お知らせ", MessageID: fmt.Sprintf("<%x@%s>", r.Uint64(), dom), Direction: "inbound"}
		e.Verdict.Action = detect.ActionAllow
		e.BytesIn = int64(2000 + r.IntN(100000))
	default:
		e.Module, e.Dataset, e.Action, e.Category, e.Type = "waf", "waf.request", "http_request", "web", "access"
		e.Client = netip.AddrPortFrom(dest, uint16(1024+r.IntN(60000)))
		e.DestDomain = fmt.Sprintf("www.city%d.lg.jp", ti)
		e.URL = "https://" + e.DestDomain + g.paths[r.IntN(len(g.paths))]
		e.HTTP = detect.HTTPInfo{Method: "GET", Status: 200, UserAgent: g.agents[r.IntN(len(g.agents))]}
		e.Verdict.Action = detect.ActionAllow
		if r.IntN(10) == 0 {
			e.Verdict = detect.Verdict{Action: detect.ActionBlock, Rule: "crs-942100", RuleName: "SQL injection", Reason: "SQL injection attack detected via libinjection", Score: 5}
			e.URL += "?id=1%27%20OR%201%3D1--"
			e.HTTP.Status = 403
			e.Severity = detect.SeverityStopped
		}
	}
	return e
}

// Batch fills dst with n events evenly spread from start by step.
func (g *Gen) Batch(dst []detect.Event, n int, start time.Time, step time.Duration) []detect.Event {
	dst = dst[:0]
	for i := range n {
		dst = append(dst, g.Event(start.Add(time.Duration(i)*step)))
	}
	return dst
}
