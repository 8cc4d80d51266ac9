package waf_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf"
)

// BenchmarkProxy measures requests per second through the reverse proxy
// to a local origin over loopback (keep-alive on both sides), a 1 KiB
// body per response. Reported: ns/op per request, req/s, allocations.
func BenchmarkProxy(b *testing.B) {
	body := make([]byte, 1024)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(body)
	}))
	defer origin.Close()
	s, err := waf.New(waf.Config{
		Directory: directory(b, tenant.Site{Host: siteHost, Origins: []string{origin.URL, origin.URL + "/"}}),
		DDoS:      waf.DDoSConfig{Disabled: true}, // one client address: the per-client limits would throttle it
	})
	if err != nil {
		b.Fatal(err)
	}
	addr := start(b, s, false)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/page?id=1", nil)
			req.Host = siteHost
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkServeHTTP measures the handler alone (no client socket): site
// lookup, header rewriting, origin choice, event — and the origin round
// trip over loopback.
func BenchmarkServeHTTP(b *testing.B) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	defer origin.Close()
	s := newServer(b, waf.Config{
		Directory: directory(b, tenant.Site{Host: siteHost, Origins: []string{origin.URL}}),
		DDoS:      waf.DDoSConfig{Disabled: true},
	})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, "http://"+siteHost+"/page?id=1", nil)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Errorf("status %d", w.Code)
				return
			}
		}
	})
}

// BenchmarkDirect is the baseline: the same client straight to the
// origin, without the WAF.
func BenchmarkDirect(b *testing.B) {
	body := make([]byte, 1024)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(body)
	}))
	defer origin.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(origin.URL + "/page?id=1")
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
