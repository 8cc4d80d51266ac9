package dnsres_test

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/dnsres"
	"github.com/jichitai/seccloud/dnsres/dnsrestest"
)

// TestTenantRouterPerTenantUpstreams: tenant midori has its own upstream
// (and cache); tenant aoba uses the default one. The same name gets each
// upstream's answer, cached apart.
func TestTenantRouterPerTenantUpstreams(t *testing.T) {
	zone := func(addr string) string {
		return "$TTL 300\n@ SOA ns h 1 1 1 1 1\n@ NS ns\nns A 127.0.0.1\nwww A " + addr + "\n"
	}
	def := dnsrestest.NewAuthority(t, "127.0.0.1:0", map[string]string{"example.test.": zone("192.0.2.1")})
	own := dnsrestest.NewAuthority(t, "127.0.0.1:0", map[string]string{"example.test.": zone("198.51.100.1")})
	cacheFor := func(up string) *dnsres.Cache {
		fw, err := dnsres.NewForwarder(dnsres.ForwarderConfig{Upstreams: []string{up}, Timeout: time.Second})
		require.NoError(t, err)
		t.Cleanup(func() { _ = fw.Close() })
		c, err := dnsres.NewCache(dnsres.CacheConfig{Resolver: fw})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	defCache, ownCache := cacheFor(def.Addr.String()), cacheFor(own.Addr.String())
	srv, err := dnsres.NewServer(dnsres.ServerConfig{Addr: "127.0.0.1:0", Directory: testDirectory(t), UDPSockets: 1,
		Handler: dnsres.TenantRouter(map[string]dnsres.Handler{"midori": ownCache}, defCache)})
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	f := &fixture{srv: srv}
	for range 2 {
		r := f.query(t, "127.0.1.5", "udp", q("www.example.test.", dns.TypeA))
		require.Len(t, r.Answer, 1)
		assert.Equal(t, "192.0.2.1", r.Answer[0].(*dns.A).A.String(), "aoba: default upstream")
		r = f.query(t, "127.0.2.9", "udp", q("www.example.test.", dns.TypeA))
		require.Len(t, r.Answer, 1)
		assert.Equal(t, "198.51.100.1", r.Answer[0].(*dns.A).A.String(), "midori: its own upstream")
	}
	assert.EqualValues(t, 1, def.Queries(), "second query a cache hit")
	assert.EqualValues(t, 1, own.Queries())
	assert.EqualValues(t, 1, defCache.Stats().Hits)
	assert.EqualValues(t, 1, ownCache.Stats().Hits)
}
