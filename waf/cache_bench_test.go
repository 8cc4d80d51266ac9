package waf_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf"
)

// BenchmarkCacheHit measures the handler answering a popular page from
// the CDN cache (no client socket, no origin trip): site lookup, gate
// checks, inspection (crs: the default engine; none: without), cache
// lookup, response hardening, event.
func BenchmarkCacheHit(b *testing.B) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(make([]byte, 1024))
	}))
	defer origin.Close()
	for _, name := range []string{"none", "crs"} {
		b.Run(name, func(b *testing.B) {
			var e waf.Engine
			if name == "crs" {
				ce, err := waf.NewCRSEngine(waf.CRSConfig{})
				if err != nil {
					b.Fatal(err)
				}
				e = ce
			}
			s := newServer(b, waf.Config{
				Directory: directory(b, tenant.Site{Host: siteHost, Origins: []string{origin.URL}}),
				Engine:    e, DDoS: waf.DDoSConfig{Disabled: true}, Origins: waf.OriginConfig{HealthInterval: -1},
			})
			s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "http://"+siteHost+"/index.html", nil))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodGet, "http://"+siteHost+"/index.html", nil)
					req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
					w := httptest.NewRecorder()
					s.ServeHTTP(w, req)
					if w.Code != http.StatusOK || w.Header().Get("Age") == "" {
						b.Errorf("status %d, not a hit", w.Code)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
