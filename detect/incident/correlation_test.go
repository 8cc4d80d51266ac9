package incident_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/beacon"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/detect/judge"
	"github.com/jichitai/seccloud/detect/rules"
)

// pipeline is the default rule set + beacon detector → judge → incidents.
type pipeline struct {
	m   *incident.Manager
	eng *rules.Engine
	bd  *beacon.Detector
}

func newPipeline(t *testing.T, c *clock, vuln judge.VulnLookup) *pipeline {
	t.Helper()
	m, err := incident.Open(incident.Config{Dir: t.TempDir(), Now: c.Now, NoSync: true, Judge: &judge.Default{Vuln: vuln}})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	def, err := rules.Default()
	require.NoError(t, err)
	inds, err := intel.ParseList(strings.NewReader("beacon.cc.example\n"), "c2.txt", intel.KindDomain, "c2")
	require.NoError(t, err)
	addrs, err := intel.ParseList(strings.NewReader(ccAddr.String()+"\n"), "c2-addrs.txt", intel.KindAddr, "c2")
	require.NoError(t, err)
	set, err := intel.Build(append(inds, addrs...))
	require.NoError(t, err)
	live := intel.NewLive(set)
	return &pipeline{m: m, eng: rules.New(rules.Config{Rules: def, Handler: m, Intel: live, Now: c.Now}),
		bd: beacon.New(beacon.Config{Handler: m})}
}

func (p *pipeline) feed(evs ...detect.Event) {
	for i := range evs {
		p.eng.Process(&evs[i])
		p.bd.Process(&evs[i])
	}
}

// only returns the single incident of rule, failing otherwise.
func (p *pipeline) only(t *testing.T, rule string) incident.Incident {
	t.Helper()
	var got []incident.Incident
	for _, inc := range p.m.List(incident.Filter{}) {
		if inc.Rule == rule {
			got = append(got, inc)
		}
	}
	require.Len(t, got, 1, "incidents of %s: %v", rule, p.m.List(incident.Filter{}))
	return got[0]
}

var terminal = netip.MustParseAddrPort("127.0.1.5:40000")

func TestCorrelationCCResolveThenConnect(t *testing.T) {
	c := newClock()
	p := newPipeline(t, c, nil)
	cc := netip.MustParseAddr("198.51.100.66")
	p.feed(detect.Event{Time: t0, Module: "dns", Tenant: "a", Client: terminal,
		DNS: detect.DNSInfo{QName: "beacon.cc.example.", QType: "A", RCode: "NOERROR", Resolved: []netip.Addr{cc}}})
	p.feed(detect.Event{Time: t0.Add(30 * time.Second), Module: "proxy", Tenant: "a", Client: terminal,
		Dest: netip.AddrPortFrom(cc, 443), Verdict: detect.Verdict{Action: detect.ActionAllow}})
	inc := p.only(t, "seccloud-cc-resolve-connect")
	assert.Equal(t, detect.SeveritySucceeded, inc.Severity)
	assert.Equal(t, "127.0.1.5", inc.Terminal)
	assert.NotEmpty(t, inc.Evidence)
}

// ccAddr is a C&C address on the pipeline's intel set (label c2).
var ccAddr = netip.MustParseAddr("203.0.113.66")

// A terminal whose C&C lookup was sinkholed then tries a C&C address
// directly (the implant's hard-coded fallback), blocked by the proxy:
// malware runs on it, level 3 although both were stopped.
func TestCorrelationCCNameThenAddressBlocked(t *testing.T) {
	c := newClock()
	p := newPipeline(t, c, nil)
	sinkhole := netip.MustParseAddr("192.0.2.250")
	p.feed(detect.Event{Time: t0, Module: "dns", Tenant: "a", Client: terminal,
		DNS:     detect.DNSInfo{QName: "beacon.cc.example.", QType: "A", RCode: "NOERROR", Resolved: []netip.Addr{sinkhole}},
		Verdict: detect.Verdict{Action: detect.ActionSinkhole, Rule: "dns-intel-domain"}})
	p.feed(detect.Event{Time: t0.Add(20 * time.Second), Module: "proxy", Tenant: "a", Client: terminal,
		Dest: netip.AddrPortFrom(ccAddr, 80), Verdict: detect.Verdict{Action: detect.ActionBlock, Rule: "proxy-intel"}})
	inc := p.only(t, "seccloud-cc-name-then-address")
	assert.Equal(t, detect.SeveritySucceeded, inc.Severity)
	assert.Equal(t, "127.0.1.5", inc.Terminal)
	assert.Equal(t, detect.SeverityStopped, p.only(t, "seccloud-proxy-cc").Severity, "the connection alone was stopped")

	// The address alone, without a C&C lookup before it, is not this rule.
	other := netip.MustParseAddrPort("127.0.1.6:40000")
	p.feed(detect.Event{Time: t0.Add(time.Minute), Module: "proxy", Tenant: "a", Client: other,
		Dest: netip.AddrPortFrom(ccAddr, 80), Verdict: detect.Verdict{Action: detect.ActionBlock, Rule: "proxy-intel"}})
	p.only(t, "seccloud-cc-name-then-address")
}

func TestCorrelationBeaconing(t *testing.T) {
	c := newClock()
	p := newPipeline(t, c, nil)
	rng := rand.New(rand.NewPCG(1, 1))
	// Every 5 minutes ± 2 s, 512–530 bytes, for 4 hours.
	for i := range 48 {
		jitter := time.Duration(rng.IntN(4000)-2000) * time.Millisecond
		p.feed(detect.Event{Time: t0.Add(time.Duration(i)*5*time.Minute + jitter), Module: "proxy", Tenant: "a", Client: terminal,
			DestDomain: "updates.example.net", BytesOut: int64(512 + rng.IntN(18)), Verdict: detect.Verdict{Action: detect.ActionAllow}})
	}
	// Ordinary browsing of another site: irregular times and sizes.
	at := t0
	for range 100 {
		at = at.Add(time.Duration(rng.ExpFloat64()*600) * time.Second)
		p.feed(detect.Event{Time: at, Module: "proxy", Tenant: "a", Client: terminal,
			DestDomain: "news.example.jp", BytesOut: int64(rng.ExpFloat64() * 200000), Verdict: detect.Verdict{Action: detect.ActionAllow}})
	}
	inc := p.only(t, "seccloud-beacon")
	assert.Equal(t, detect.SeverityReached, inc.Severity)
	assert.Equal(t, "updates.example.net", inc.Group["destination"])
	assert.Equal(t, 1, p.bd.Stats().Alerts, "the browsing must not look like a beacon")
}

func TestCorrelationOutboundSpamBurst(t *testing.T) {
	c := newClock()
	p := newPipeline(t, c, nil)
	src := netip.MustParseAddrPort("127.0.1.30:2525")
	for i := range 250 {
		p.feed(detect.Event{Time: t0.Add(time.Duration(i) * time.Second), Module: "mail", Dataset: "mail.message", Tenant: "a",
			Client: src, Email: detect.EmailInfo{Direction: "outbound", To: []string{fmt.Sprintf("u%d@example.com", i)}},
			Verdict: detect.Verdict{Action: detect.ActionAllow}})
	}
	inc := p.only(t, "seccloud-mail-outbound-burst")
	assert.Equal(t, detect.SeverityReached, inc.Severity)
	assert.Equal(t, 200, inc.Count)
}

func TestCorrelationDGAAndTunnel(t *testing.T) {
	c := newClock()
	p := newPipeline(t, c, nil)
	for i := range 120 {
		p.feed(detect.Event{Time: t0.Add(time.Duration(i) * time.Second), Module: "dns", Tenant: "a", Client: terminal,
			DNS: detect.DNSInfo{QName: fmt.Sprintf("x%dqzkvjw.example.", i), QType: "A", RCode: "NXDOMAIN"}})
	}
	for i := range 60 {
		p.feed(detect.Event{Time: t0.Add(time.Duration(i) * time.Second), Module: "dns", Tenant: "a", Client: terminal,
			DNS: detect.DNSInfo{QName: fmt.Sprintf("%060d.t.example.", i), QType: "TXT", RCode: "NOERROR"}})
	}
	assert.Equal(t, detect.SeverityReached, p.only(t, "seccloud-dns-dga").Severity)
	assert.Equal(t, detect.SeverityReached, p.only(t, "seccloud-dns-tunnel").Severity)
}

func TestCorrelationWAF(t *testing.T) {
	attack := func(i int, action detect.Action, status int, scanner string) detect.Event {
		return detect.Event{Time: t0.Add(time.Duration(i) * time.Second), Module: "waf", Tenant: "a",
			Client: netip.MustParseAddrPort(scanner + ":5000"), DestDomain: "www.city.example.jp",
			URL: "https://www.city.example.jp/?id=1'--", HTTP: detect.HTTPInfo{Status: status}, BytesOut: 20000,
			Verdict: detect.Verdict{Action: action, Rule: "crs-942100"}}
	}
	c := newClock()
	vuln := judge.StaticVuln{"a": {"www.city.example.jp": true}}
	p := newPipeline(t, c, nil)
	p.feed(attack(0, detect.ActionBlock, 403, "203.0.113.1"))
	p.feed(attack(1, detect.ActionReport, 200, "203.0.113.2"))
	p.feed(attack(2, detect.ActionReport, 404, "203.0.113.3"))
	levels := map[string]detect.Severity{}
	for _, inc := range p.m.List(incident.Filter{}) {
		levels[inc.Terminal] = inc.Severity
	}
	assert.Equal(t, map[string]detect.Severity{"203.0.113.1": 1, "203.0.113.2": 2, "203.0.113.3": 0}, levels)

	// Detection-only, and the WAF's response inspection saw data leaking
	// in the origin's answer: level 3.
	leak := attack(3, detect.ActionReport, 200, "203.0.113.4")
	leak.Labels = []detect.Label{{Key: "origin_answered", Value: "true"}, {Key: "waf_response_leak", Value: "true"}}
	p.feed(leak)
	levels = map[string]detect.Severity{}
	for _, inc := range p.m.List(incident.Filter{}) {
		levels[inc.Terminal] = inc.Severity
	}
	assert.Equal(t, detect.SeveritySucceeded, levels["203.0.113.4"])
	assert.Len(t, levels, 4)

	// With the inventory saying the site is vulnerable, detection-only with
	// data answered is level 3.
	p = newPipeline(t, c, vuln)
	p.feed(attack(1, detect.ActionReport, 200, "203.0.113.2"))
	inc := p.only(t, "seccloud-waf-attack")
	assert.Equal(t, detect.SeveritySucceeded, inc.Severity)
}

// The resolver's own DGA / tunnel verdicts are level 2 even when the
// resolver blocked the query: the terminal is likely infected.
func TestCorrelationResolverDetections(t *testing.T) {
	c := newClock()
	p := newPipeline(t, c, nil)
	p.feed(detect.Event{Time: t0, Module: "dns", Tenant: "a", Client: terminal,
		DNS:     detect.DNSInfo{QName: "xkq3vbz9w1.example.", QType: "A"},
		Verdict: detect.Verdict{Action: detect.ActionBlock, Rule: "dns-dga", RuleName: "DGA-like domain name"}})
	inc := p.only(t, "seccloud-dns-resolver-detection")
	assert.Equal(t, detect.SeverityReached, inc.Severity)
	var en []string
	for _, e := range inc.Evidence {
		en = append(en, e.EN)
	}
	assert.Contains(t, strings.Join(en, "\n"), "likely infected")

	// A beacon the proxy blocked is level 2 too.
	c2 := newClock()
	p2 := newPipeline(t, c2, nil)
	for i := range 30 {
		p2.feed(detect.Event{Time: t0.Add(time.Duration(i) * 10 * time.Minute), Module: "proxy", Tenant: "a", Client: terminal,
			DestDomain: "updates.example.net", BytesOut: 400, Verdict: detect.Verdict{Action: detect.ActionBlock, Rule: "urlfilter"}})
	}
	assert.Equal(t, detect.SeverityReached, p2.only(t, "seccloud-beacon").Severity)
}

// A lookup of a C&C name is judged as the resolver's own event says:
// sinkholed, level 2 (the terminal is likely infected); answered with
// the real address, level 3.
func TestCCLookupLevels(t *testing.T) {
	for _, c := range []struct {
		name     string
		verdict  detect.Action
		resolved []netip.Addr
		want     detect.Severity
	}{
		{"sinkholed", detect.ActionSinkhole, nil, detect.SeverityReached},
		{"answered", detect.ActionAllow, []netip.Addr{netip.MustParseAddr("198.51.100.66")}, detect.SeveritySucceeded},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPipeline(t, newClock(), nil)
			p.feed(detect.Event{Time: t0, Module: "dns", Tenant: "a", Client: terminal, Verdict: detect.Verdict{Action: c.verdict},
				DNS: detect.DNSInfo{QName: "beacon.cc.example.", QType: "A", RCode: "NOERROR", Resolved: c.resolved}})
			inc := p.only(t, "seccloud-dns-intel-query")
			assert.Equal(t, c.want, inc.Severity, "%v", inc.Evidence)
		})
	}
}
