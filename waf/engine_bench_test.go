package waf_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/jichitai/seccloud/waf"
)

// benchWords are the search words of the speed workload (BENCH.md):
// percent-encoded Japanese and English.
var benchWords = []string{"%E9%98%B2%E7%81%BD", "%E9%81%BF%E9%9B%A3%E6%89%80", "%E3%81%8A%E7%9F%A5%E3%82%89%E3%81%9B",
	"%E3%81%94%E3%81%BF", "tokyo", "weather", "library", "bousai"}

// benchVaried inspects the "varied benign" workload: GET with a
// 3-parameter query that changes on every request.
// The fast path's memo is warmed first with every date and word (the id
// varies over a million values and is never repeated in the run): the
// figure is the steady state of a long run.
func benchVaried(b *testing.B, e waf.Engine) {
	var n atomic.Int64
	h := http.Header{"User-Agent": {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"}, "Accept": {"*/*"}}
	if ce, ok := e.(*waf.CRSEngine); ok && b.N > 1 {
		for m := 1; m <= 12; m++ {
			for d := 1; d <= 28; d++ {
				uri := fmt.Sprintf("/index.html?id=%d&date=2026-%02d-%02d&q=%s", 1000000+m*d, m, d, benchWords[(m*d)%8])
				_, _ = ce.Inspect(context.Background(), &waf.Request{Site: siteHost, Method: "GET", URI: uri, Proto: "HTTP/1.1", Host: "app.bench.test", Header: h})
			}
		}
		b.ResetTimer()
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			uri := fmt.Sprintf("/index.html?id=%d&date=2026-%02d-%02d&q=%s", i*7919%1000003, i%12+1, i%28+1, benchWords[i%8])
			d, err := e.Inspect(context.Background(), &waf.Request{Site: siteHost, Method: "GET", URI: uri, Proto: "HTTP/1.1", Host: "app.bench.test", Header: h})
			if err != nil || d.Action != waf.Pass {
				b.Fatalf("%s: %v %v", uri, err, d)
			}
		}
	})
}

func BenchmarkEngineVariedGET(b *testing.B) {
	ours, noFast, plain := crsEngines(b)
	b.Run("ours", func(b *testing.B) { benchVaried(b, ours) })
	b.Run("ours-no-fast-path", func(b *testing.B) { benchVaried(b, noFast) })
	b.Run("plain-coraza-crs", func(b *testing.B) { benchVaried(b, plain) })
}

func BenchmarkEngineFormPOST(b *testing.B) {
	ours, _, plain := crsEngines(b)
	body := make([]byte, 0, 10<<10)
	for i := 0; len(body) < 10<<10; i++ {
		body = fmt.Appendf(body, "field%d=value+number+%d+%%E9%%98%%B2%%E7%%81%%BD&", i, i)
	}
	h := http.Header{"User-Agent": {"Mozilla/5.0"}, "Accept": {"*/*"}, "Content-Type": {"application/x-www-form-urlencoded"},
		"Content-Length": {fmt.Sprint(len(body))}}
	for _, c := range []struct {
		name string
		e    waf.Engine
	}{{"ours", ours}, {"plain-coraza-crs", plain}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					d, err := c.e.Inspect(context.Background(), &waf.Request{Site: siteHost, Method: "POST", URI: "/form", Proto: "HTTP/1.1", Host: "app.bench.test", Header: h, Body: body})
					if err != nil || d.Action != waf.Pass {
						b.Fatalf("%v %v", err, d.Matches)
					}
				}
			})
		})
	}
}

func BenchmarkEngineSQLi(b *testing.B) {
	ours, _, plain := crsEngines(b)
	h := http.Header{"User-Agent": {"Mozilla/5.0"}, "Accept": {"*/*"}}
	for _, c := range []struct {
		name string
		e    waf.Engine
	}{{"ours", ours}, {"plain-coraza-crs", plain}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					d, err := c.e.Inspect(context.Background(), &waf.Request{Site: siteHost, Method: "GET", URI: "/index.html?id=1%27%20OR%20%271%27%3D%271", Proto: "HTTP/1.1", Host: "app.bench.test", Header: h})
					if err != nil || d.Action != waf.Block {
						b.Fatalf("%v %v", err, d)
					}
				}
			})
		})
	}
}

// benchBody inspects POST bodies that change on every request: body(i)
// is made in advance, outside the timer, for each of the b.N requests.
func benchBody(b *testing.B, e waf.Engine, ct string, body func(i int) []byte) {
	var n atomic.Int64
	bodies := make([][]byte, b.N+1)
	for i := range bodies {
		bodies[i] = body(i + 1)
	}
	b.ResetTimer()
	b.ReportAllocs()
	b.SetBytes(int64(len(bodies[0])))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := bodies[int(n.Add(1)-1)%len(bodies)]
			h := http.Header{"User-Agent": {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"},
				"Accept": {"*/*"}, "Content-Type": {ct}, "Content-Length": {fmt.Sprint(len(body))}}
			d, err := e.Inspect(context.Background(), &waf.Request{Site: siteHost, Method: "POST", URI: "/contact/send", Proto: "HTTP/1.1", Host: "app.bench.test", Header: h, Body: body})
			if err != nil || d.Action != waf.Pass {
				b.Fatalf("%v %v", err, d.Matches)
			}
		}
	})
}

func BenchmarkEngineForm10K(b *testing.B) {
	ours, _, plain := crsEngines(b)
	b.Run("ours", func(b *testing.B) { benchBody(b, ours, "application/x-www-form-urlencoded", formBody) })
	b.Run("plain-coraza-crs", func(b *testing.B) { benchBody(b, plain, "application/x-www-form-urlencoded", formBody) })
}

func BenchmarkEngineJSON1M(b *testing.B) {
	ours, _, plain := crsEngines(b)
	body := func(i int) []byte { return jsonBody(i, 1<<20) }
	b.Run("ours", func(b *testing.B) { benchBody(b, ours, "application/json", body) })
	b.Run("plain-coraza-crs", func(b *testing.B) { benchBody(b, plain, "application/json", body) })
}
