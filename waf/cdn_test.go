package waf_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf"
)

// testClock is a settable clock for the WAF.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock { c := &testClock{}; c.ns.Store(time.Now().UnixNano()); return c }

func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func cacheOrigin(name string, hits *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		hits.Add(1)
		switch r.URL.Path {
		case "/slow":
			time.Sleep(200 * time.Millisecond)
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "防災情報 "+r.URL.Path)
	}
}

// TestDisasterSiteStaysReadable is the acceptance scenario: a site with
// two origins, pages cached; one origin stops, then both: cached pages are
// still served (grace), with their events saying so.
func TestDisasterSiteStaysReadable(t *testing.T) {
	var hits atomic.Int64
	oa := httptest.NewServer(cacheOrigin("a", &hits))
	ob := httptest.NewServer(cacheOrigin("b", &hits))
	defer oa.Close()
	defer ob.Close()
	clk := newTestClock()
	rec := &recorder{}
	s := newServer(t, waf.Config{
		Directory: directory(t, tenant.Site{Host: siteHost, Origins: []string{oa.Listener.Addr().String(), ob.Listener.Addr().String()}}),
		Sink:      rec, Now: clk.Now,
		Origins: waf.OriginConfig{HealthInterval: -1},
		Sites:   map[string]waf.SiteOptions{siteHost: {Cache: waf.SiteCache{Grace: 24 * time.Hour}}},
	})
	base := "http://" + start(t, s, false)
	c := clientFrom("127.0.0.1")

	code, body, h := do(t, c, "GET", base+"/news", "")
	require.Equal(t, 200, code)
	assert.Equal(t, "防災情報 /news", body)
	assert.Contains(t, h.Get("Cache-Status"), "fwd=uri-miss")
	code, _, h = do(t, c, "GET", base+"/news", "")
	assert.Equal(t, 200, code)
	assert.Contains(t, h.Get("Cache-Status"), "hit")
	assert.Equal(t, "SAMEORIGIN", h.Get("X-Frame-Options"), "protections apply to hits too")
	assert.EqualValues(t, 1, hits.Load())
	evs := rec.wait(t, 2)
	v, _ := evs[1].Label("cache")
	assert.Equal(t, "hit", v)
	v, _ = evs[1].Label("origin_answered")
	assert.Equal(t, "false", v)
	v, _ = evs[0].Label("origin_answered")
	assert.Equal(t, "true", v)
	_, hasOrigin := evs[0].Label("origin")
	assert.True(t, hasOrigin)

	do(t, c, "GET", base+"/top", "")
	oa.Close() // one origin down: the other serves
	clk.Add(2 * time.Minute)
	code, _, h = do(t, c, "GET", base+"/top", "")
	assert.Equal(t, 200, code)
	ob.Close() // both down: stored copies under grace
	clk.Add(time.Hour)
	for _, p := range []string{"/news", "/top"} {
		code, body, h = do(t, c, "GET", base+p, "")
		assert.Equal(t, 200, code, p)
		assert.Equal(t, "防災情報 "+p, body)
		assert.Contains(t, h.Get("Cache-Status"), "detail=grace", p)
	}
	ev := lastEvent(t, rec, 6)
	assert.Equal(t, "success", ev.Outcome)
	v, _ = ev.Label("cache")
	assert.Equal(t, "stale", v)
	v, _ = ev.Label("origin_answered")
	assert.Equal(t, "false", v)
	assert.Contains(t, ev.Message, "stored copy served")
	code, _, _ = do(t, c, "GET", base+"/never-cached", "")
	assert.Equal(t, http.StatusBadGateway, code)

	// purge: the page is gone, so with the origins down it is a 502
	ps := httptest.NewServer(s.PurgeHandler())
	defer ps.Close()
	resp, err := http.PostForm(ps.URL, url.Values{"url": {siteHost + "/news"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	code, _, _ = do(t, c, "GET", base+"/news", "")
	assert.Equal(t, http.StatusBadGateway, code)
}

func TestCoalescedMissesThroughWAF(t *testing.T) {
	var hits atomic.Int64
	o := httptest.NewServer(cacheOrigin("a", &hits))
	defer o.Close()
	s := newServer(t, waf.Config{
		Directory: directory(t, tenant.Site{Host: siteHost, Origins: []string{o.Listener.Addr().String()}}),
		Origins:   waf.OriginConfig{HealthInterval: -1},
	})
	base := "http://" + start(t, s, false)
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, _ := do(t, clientFrom(fmt.Sprintf("127.0.4.%d", i+1)), "GET", base+"/slow", "")
			if code == 200 {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 30, ok.Load())
	assert.EqualValues(t, 1, hits.Load(), "one origin fetch for 30 simultaneous misses")
}

func TestOriginAuthHeaderAndEgress(t *testing.T) {
	var got atomic.Pointer[http.Request]
	o := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Clone(r.Context()))
		w.Header().Set("Cache-Control", "no-store")
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go o.Serve(l)
	defer o.Close()
	src := netip4("127.0.0.77")
	s := newServer(t, waf.Config{
		Directory: directory(t, tenant.Site{Host: siteHost, Origins: []string{l.Addr().String()}}),
		Origins:   waf.OriginConfig{HealthInterval: -1, SourceAddr: src, Egress: []netipAddr{netip4("192.0.2.10")}},
		Sites:     map[string]waf.SiteOptions{siteHost: {OriginAuth: waf.OriginAuth{Header: "X-Origin-Auth", Value: "s3cret"}}},
	})
	base := "http://" + start(t, s, false)
	code, _, _ := do(t, clientFrom("127.0.0.1"), "GET", base+"/", "", "X-Origin-Auth", "forged")
	require.Equal(t, 200, code)
	r := got.Load()
	assert.Equal(t, []string{"s3cret"}, r.Header.Values("X-Origin-Auth"), "the client's forged copy is replaced")
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	assert.Equal(t, "127.0.0.77", host, "origins see the published source address")
	assert.Equal(t, []netipAddr{src, netip4("192.0.2.10")}, s.EgressAddrs())
}

type netipAddr = netip.Addr

func netip4(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestDisasterSiteDefaults: a site marked Disaster caches pages without
// Cache-Control for DefaultDisasterTTL and keeps them for
// DefaultDisasterGrace when the origin fails.
func TestDisasterSiteDefaults(t *testing.T) {
	var hits atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, "給水所の場所") // a CMS page without Cache-Control
	}))
	clk := newTestClock()
	s := newServer(t, waf.Config{
		Directory: directory(t, tenant.Site{Host: siteHost, Disaster: true, Origins: []string{o.Listener.Addr().String()}}),
		Now:       clk.Now, Origins: waf.OriginConfig{HealthInterval: -1},
	})
	base := "http://" + start(t, s, false)
	c := clientFrom("127.0.0.1")
	do(t, c, "GET", base+"/water", "")
	_, _, h := do(t, c, "GET", base+"/water", "")
	assert.Contains(t, h.Get("Cache-Status"), "hit")
	assert.EqualValues(t, 1, hits.Load())
	clk.Add(waf.DefaultDisasterTTL + time.Second)
	do(t, c, "GET", base+"/water", "")
	assert.EqualValues(t, 2, hits.Load(), "refreshed after the default TTL")
	o.Close()
	clk.Add(12 * time.Hour)
	code, body, _ := do(t, c, "GET", base+"/water", "")
	assert.Equal(t, 200, code)
	assert.Equal(t, "給水所の場所", body)
	// a page never stored cannot be served
	code, _, _ = do(t, c, "GET", base+"/other", "")
	assert.Equal(t, http.StatusBadGateway, code)
}
