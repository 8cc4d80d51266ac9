package dnsres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/dnsres"
	"github.com/jichitai/seccloud/dnsres/dnsrestest"
)

// detFixture is a server whose chain is Detector → a fixed answer
// (NOERROR with one A record, or NXDOMAIN for names under "nx.").
type detFixture struct {
	fixture
	alerts *dnsrestest.Sink
	det    *dnsres.Detector
}

func newDetFixture(t *testing.T, cfg dnsres.DetectorConfig) *detFixture {
	t.Helper()
	f := &detFixture{alerts: new(dnsrestest.Sink)}
	f.sink, f.clock = new(dnsrestest.Sink), newClock()
	cfg.Sink = f.alerts
	var err error
	f.det, err = dnsres.NewDetector(cfg)
	require.NoError(t, err)
	answer := dnsres.HandlerFunc(func(_ context.Context, w dnsres.ResponseWriter, r *dnsres.Request) (int, error) {
		m := new(dns.Msg)
		if strings.HasSuffix(r.Name(), ".nx.") || strings.Contains(r.Name(), ".nx.") {
			m.Rcode = dns.RcodeNameError
		} else if r.Type == dns.TypeA {
			rr, _ := dns.NewRR(r.Name() + " 60 IN A 192.0.2.1")
			m.Answer = []dns.RR{rr}
		}
		return m.Rcode, w.WriteMsg(m)
	})
	f.srv, err = dnsres.NewServer(dnsres.ServerConfig{
		Addr: "127.0.0.1:0", Directory: testDirectory(t), Sink: f.sink, Now: f.clock.Now, UDPSockets: 1,
		Handler: dnsres.Chain(answer, f.det.Middleware), Observer: f.det,
	})
	require.NoError(t, err)
	require.NoError(t, f.srv.Start())
	t.Cleanup(func() { _ = f.srv.Shutdown(context.Background()) })
	return f
}

func TestDetectorDGAReportOnly(t *testing.T) {
	f := newDetFixture(t, dnsres.DetectorConfig{})
	cases := []struct {
		name string
		dga  bool
	}{
		{"xjwqpzkvbrtfhq.com.", true},
		{"www.kq3v9x0zt7plm2wd.net.", true},
		{"wikipedia.org.", false},
		{"www.rakuten.co.jp.", false},
		{"www.city.sapporo.lg.jp.", false},
		{"d1a2b3c4x9z8q7.cloudfront.net.", false}, // allow-listed CDN
		{"xn--wgv71a119e.jp.", false},             // 日本語.jp: not judged
		{"e1234.dscx.akamaiedge.net.", false},
		{"stackoverflow.com.", false},
	}
	for i, c := range cases {
		r := f.query(t, "127.0.1.5", "udp", q(c.name, dns.TypeA))
		assert.Equal(t, dns.RcodeSuccess, r.Rcode, c.name)
		ev := f.sink.Wait(i+1, time.Second)
		require.Len(t, ev, i+1)
		e := ev[i]
		if c.dga {
			assert.Equal(t, "dns-dga", e.Verdict.Rule, c.name)
			assert.Equal(t, detect.ActionReport, e.Verdict.Action, c.name)
			assert.Greater(t, e.Verdict.Score, 50, c.name)
			assert.Equal(t, "alert", e.Kind)
			assert.Equal(t, "aoba", e.Tenant)
			assert.Equal(t, "127.0.1.5", e.Terminal)
		} else {
			assert.Equal(t, detect.ActionNone, e.Verdict.Action, c.name)
		}
	}
}

func TestDetectorDGABlockPerTenant(t *testing.T) {
	f := newDetFixture(t, dnsres.DetectorConfig{Block: true})
	r := f.query(t, "127.0.1.5", "udp", q("xjwqpzkvbrtfhq.com.", dns.TypeA))
	assert.Equal(t, dns.RcodeNameError, r.Rcode, "blocked for tenant aoba")
	r = f.query(t, "127.0.2.9", "udp", q("xjwqpzkvbrtfhq.com.", dns.TypeA))
	assert.Equal(t, dns.RcodeSuccess, r.Rcode, "tenant midori is report-only")
	ev := f.sink.Wait(2, time.Second)
	require.Len(t, ev, 2)
	assert.Equal(t, detect.ActionBlock, ev[0].Verdict.Action)
	assert.Equal(t, detect.ActionReport, ev[1].Verdict.Action)
	assert.Equal(t, "midori", ev[1].Tenant)

	// BlockTenants narrows blocking to the listed tenants.
	f2 := newDetFixture(t, dnsres.DetectorConfig{Block: true, BlockTenants: []string{"someone-else"}})
	r = f2.query(t, "127.0.1.5", "udp", q("xjwqpzkvbrtfhq.com.", dns.TypeA))
	assert.Equal(t, dns.RcodeSuccess, r.Rcode)
}

// b32 returns n random base32 characters (a tunnel's encoded payload).
func b32(rng *rand.Rand, n int) string {
	const alpha = "abcdefghijklmnopqrstuvwxyz234567"
	b := make([]byte, n)
	for i := range b {
		b[i] = alpha[rng.IntN(len(alpha))]
	}
	return string(b)
}

func TestDetectorTunnel(t *testing.T) {
	f := newDetFixture(t, dnsres.DetectorConfig{Block: true})
	rng := rand.New(rand.NewPCG(1, 2))
	// A tunnel: TXT queries with 50-character encoded labels below one domain.
	const n = 70
	var last *dns.Msg
	for range n {
		last = f.query(t, "127.0.1.7", "udp", q(b32(rng, 50)+"."+b32(rng, 10)+".t.tunnel-exfil.test.", dns.TypeTXT))
	}
	assert.Equal(t, dns.RcodeNameError, last.Rcode, "the tunnel is blocked once judged")
	alerts := f.alerts.Wait(1, time.Second)
	require.Len(t, alerts, 1, "one alert per client, domain and window")
	a := alerts[0]
	assert.Equal(t, "dns-tunnel", a.Verdict.Rule)
	assert.Equal(t, detect.ActionBlock, a.Verdict.Action)
	assert.GreaterOrEqual(t, a.Verdict.Score, 60)
	assert.Equal(t, "aoba", a.Tenant)
	assert.Equal(t, "127.0.1.7", a.Terminal)
	v, _ := a.Label("dns_domain")
	assert.Equal(t, "tunnel-exfil.test", v)

	// Many short, ordinary names below one domain: no tunnel.
	for i := range n {
		r := f.query(t, "127.0.1.8", "udp", q(fmt.Sprintf("host%d.intranet.test.", i), dns.TypeA))
		require.Equal(t, dns.RcodeSuccess, r.Rcode)
	}
	// Another client's names below the tunnel domain are counted apart.
	r := f.query(t, "127.0.1.9", "udp", q(b32(rng, 50)+".t.tunnel-exfil.test.", dns.TypeTXT))
	assert.Equal(t, dns.RcodeSuccess, r.Rcode)
	assert.Len(t, f.alerts.Events(), 1)

	// After two windows the first client is no longer flagged.
	f.clock.Advance(2*dnsres.DefaultDetectWindow + time.Second)
	r = f.query(t, "127.0.1.7", "udp", q(b32(rng, 50)+".t.tunnel-exfil.test.", dns.TypeTXT))
	assert.Equal(t, dns.RcodeSuccess, r.Rcode)
}

func TestDetectorNXDomainStorm(t *testing.T) {
	f := newDetFixture(t, dnsres.DetectorConfig{NXDomainStorm: 30})
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 29 {
		r := f.query(t, "127.0.1.20", "udp", q(fmt.Sprintf("%s%d.nx.", b32(rng, 12), i), dns.TypeA))
		require.Equal(t, dns.RcodeNameError, r.Rcode)
	}
	f.sink.Wait(29, time.Second)
	assert.Empty(t, f.alerts.Events(), "below the threshold")
	for i := range 5 {
		f.query(t, "127.0.1.20", "udp", q(fmt.Sprintf("qzxkvbwptj%d.nx.", i), dns.TypeA))
	}
	alerts := f.alerts.Wait(1, time.Second)
	require.Len(t, alerts, 1, "one alert per client and window")
	assert.Equal(t, "dns-nxdomain-storm", alerts[0].Verdict.Rule)
	assert.Equal(t, "127.0.1.20", alerts[0].Terminal)
	assert.Equal(t, "aoba", alerts[0].Tenant)
	assert.Contains(t, alerts[0].Verdict.Reason, "30 NXDOMAIN")

	// A new window starts the count again.
	f.clock.Advance(dnsres.DefaultDetectWindow)
	for i := range 30 {
		f.query(t, "127.0.1.20", "udp", q(fmt.Sprintf("again%d.nx.", i), dns.TypeA))
	}
	assert.Len(t, f.alerts.Wait(2, time.Second), 2)
}

func TestDetectorConfigErrors(t *testing.T) {
	for name, cfg := range map[string]dnsres.DetectorConfig{
		"window":    {Window: -time.Second},
		"label":     {TunnelLabelLen: 64},
		"entropy":   {TunnelEntropy: -1},
		"threshold": {DGAThreshold: 1.5},
		"allow":     {AllowDomains: []string{""}},
	} {
		_, err := dnsres.NewDetector(cfg)
		assert.Error(t, err, name)
	}
}

// TestDetectorCheckOffline replays queries through Check and Observe with
// requests from NewRequest, as dnsdetect -log does.
func TestDetectorCheckOffline(t *testing.T) {
	alerts := new(dnsrestest.Sink)
	det, err := dnsres.NewDetector(dnsres.DetectorConfig{Sink: alerts, NXDomainStorm: 10})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(5, 6))
	start := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	client := netip.MustParseAddrPort("192.0.2.7:5353")
	var last detect.Verdict
	for i := range 61 {
		r, err := dnsres.NewRequest(b32(rng, 45)+".x.tunnel.test", dns.TypeTXT, client, nil, start.Add(time.Duration(i)*time.Second/2))
		require.NoError(t, err)
		last = det.Check(r)
	}
	assert.Equal(t, "dns-tunnel", last.Rule)
	assert.Equal(t, detect.ActionReport, last.Action)
	for i := range 10 {
		r, err := dnsres.NewRequest(fmt.Sprintf("zzqxkw%dvbnm.example", i), dns.TypeA, client, nil, start)
		require.NoError(t, err)
		det.Observe(r, dns.RcodeNameError)
	}
	ev := alerts.Wait(2, time.Second)
	require.Len(t, ev, 2)
	assert.Equal(t, "dns-tunnel", ev[0].Verdict.Rule)
	assert.Equal(t, "dns-nxdomain-storm", ev[1].Verdict.Rule)
	assert.Equal(t, "192.0.2.7", ev[1].Terminal)

	r, err := dnsres.NewRequest("www.example.jp", dns.TypeA, client, nil, start)
	require.NoError(t, err)
	assert.Equal(t, "www.example.jp.", r.Name())
	assert.Equal(t, detect.ActionNone, det.Check(r).Action)
	_, err = dnsres.NewRequest(strings.Repeat("a", 64)+".example", dns.TypeA, client, nil, start)
	assert.Error(t, err, "label too long")
}
