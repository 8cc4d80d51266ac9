package waf_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf"
)

// A municipal site with two origins behind the WAF, on loopback.
func Example() {
	originA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "防災情報 (A) for %s", r.Header.Get("X-Forwarded-For"))
	}))
	defer originA.Close()
	originB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "防災情報 (B) for %s", r.Header.Get("X-Forwarded-For"))
	}))
	defer originB.Close()

	dir, err := tenant.NewSnapshot([]tenant.Tenant{{
		ID: "aoba", Name: "青葉市",
		EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Sites: []tenant.Site{{Host: "bousai.aoba.example.jp", Disaster: true,
			Origins: []string{originA.URL, originB.URL}}},
	}}, tenant.Options{})
	if err != nil {
		panic(err)
	}
	events := make(chan detect.Event, 10)
	srv, err := waf.New(waf.Config{
		Directory: dir,
		Sink:      detect.SinkFunc(func(e detect.Event) { events <- e }),
	})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown(context.Background())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(l)

	// Two pages go to the two origins in turn; the disaster site's
	// pages are cached (10 s by default), so the third request is a hit.
	for _, path := range []string{"/", "/shelters", "/"} {
		req, _ := http.NewRequest("GET", "http://"+l.Addr().String()+path, nil)
		req.Host = "bousai.aoba.example.jp"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(b))
		e := <-events
		cache, _ := e.Label("cache")
		fmt.Println(e.Module, e.Tenant, e.HTTP.Method, e.URL, e.HTTP.Status, e.Verdict.Action, cache)
	}
	// Output:
	// 200 防災情報 (A) for 127.0.0.1
	// waf aoba GET http://bousai.aoba.example.jp/ 200 allow miss
	// 200 防災情報 (B) for 127.0.0.1
	// waf aoba GET http://bousai.aoba.example.jp/shelters 200 allow miss
	// 200 防災情報 (A) for 127.0.0.1
	// waf aoba GET http://bousai.aoba.example.jp/ 200 allow hit
}
