package dnsres_test

import (
	"context"
	"github.com/jichitai/seccloud/detect/intel"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/dnsres"
	"github.com/jichitai/seccloud/dnsres/dnsrestest"
	"github.com/jichitai/seccloud/tenant"
)

// Tenant A terminals are 127.0.1.0/24 (report-only off), tenant B
// 127.0.2.0/24 (report-only on); anything else is the internet.
func testDirectory(t testing.TB) tenant.Directory {
	snap, err := tenant.NewSnapshot([]tenant.Tenant{
		{ID: "aoba", Name: "あおば市", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
			Policy: tenant.Policy{EgressOptional: true}},
		{ID: "midori", Name: "みどり町", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.2.0/24")},
			Policy: tenant.Policy{EgressOptional: true, ReportOnly: true}},
	}, tenant.Options{})
	require.NoError(t, err)
	return tenant.NewLive(snap)
}

const upstreamZone = `$ORIGIN example.test.
$TTL 300
@      IN SOA ns1 hostmaster 1 3600 600 86400 60
@      IN NS  ns1
ns1    IN A   127.0.0.1
www    IN A   192.0.2.10
www    IN A   192.0.2.11
v6     IN AAAA 2001:db8::1
alias  IN CNAME www
short 1 IN A  192.0.2.20
*.wild IN A   192.0.2.30
big    IN TXT "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
big    IN TXT "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
big    IN TXT "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
big    IN TXT "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
big    IN TXT "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
c2c    IN A   192.0.2.66
huge   IN TXT "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
huge   IN TXT "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
huge   IN TXT "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
huge   IN TXT "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
huge   IN TXT "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
huge   IN TXT "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
huge   IN TXT "gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg"
huge   IN TXT "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
`

// fixture is a resolver (policy → zones → cache → forwarder) in front of
// a loopback authority.
type fixture struct {
	up     *dnsrestest.Authority
	srv    *dnsres.Server
	cache  *dnsres.Cache
	policy *dnsres.Policy
	zones  *dnsres.Zones
	sink   *dnsrestest.Sink
	clock  *fakeClock
}

type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := new(fakeClock)
	c.ns.Store(time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

type fixtureOpt func(*dnsres.CacheConfig, *dnsres.PolicyConfig)

func newFixture(t *testing.T, opts ...fixtureOpt) *fixture {
	t.Helper()
	f := &fixture{sink: new(dnsrestest.Sink), clock: newClock()}
	f.up = dnsrestest.NewAuthority(t, "127.0.0.1:0", map[string]string{"example.test.": upstreamZone})
	fw, err := dnsres.NewForwarder(dnsres.ForwarderConfig{Upstreams: []string{f.up.Addr.String()}, Timeout: time.Second, Attempts: 2})
	require.NoError(t, err)
	t.Cleanup(func() { _ = fw.Close() })
	iset, err := intel.FromDomains("c2c.example.test", "evil.invalid")
	require.NoError(t, err)
	cc := dnsres.CacheConfig{Resolver: fw, Now: f.clock.Now}
	pc := dnsres.PolicyConfig{Intel: intel.NewLive(iset), SinkholeA: netip.MustParseAddr("127.0.0.99"), SinkholeAAAA: netip.MustParseAddr("::1")}
	for _, o := range opts {
		o(&cc, &pc)
	}
	f.cache, err = dnsres.NewCache(cc)
	require.NoError(t, err)
	t.Cleanup(func() { f.cache.Close() })
	f.policy, err = dnsres.NewPolicy(pc)
	require.NoError(t, err)
	f.zones = dnsres.NewZones(dnsres.DefaultZone("aoba.example.jp", "ns.aoba.example.jp"))
	f.srv, err = dnsres.NewServer(dnsres.ServerConfig{
		Addr: "127.0.0.1:0", Directory: testDirectory(t), Sink: f.sink, Now: f.clock.Now, UDPSockets: 2,
		Handler: dnsres.Chain(f.cache, f.policy.Middleware, f.zones.Middleware),
	})
	require.NoError(t, err)
	require.NoError(t, f.srv.Start())
	t.Cleanup(func() { _ = f.srv.Shutdown(context.Background()) })
	return f
}

// query asks the server from source address src over net ("udp"/"tcp").
func (f *fixture) query(t *testing.T, src, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	r, err := f.exchange(src, network, m)
	require.NoError(t, err)
	return r
}

func (f *fixture) exchange(src, network string, m *dns.Msg) (*dns.Msg, error) {
	var la net.Addr
	if network == "tcp" {
		la = &net.TCPAddr{IP: net.ParseIP(src)}
	} else {
		la = &net.UDPAddr{IP: net.ParseIP(src)}
	}
	c := &dns.Client{Net: network, Timeout: 3 * time.Second, Dialer: &net.Dialer{LocalAddr: la, Timeout: 3 * time.Second}}
	r, _, err := c.Exchange(m, f.srv.Addr().String())
	return r, err
}

func q(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func qEDNS(name string, qtype uint16) *dns.Msg {
	m := q(name, qtype)
	m.SetEdns0(4096, false)
	return m
}
