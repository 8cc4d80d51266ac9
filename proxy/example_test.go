package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/tenant"
)

// A proxy for one tenant owning 127.0.1.0/24, with a block list; a terminal
// of the tenant fetches an allowed and a blocked URL.
func Example() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer origin.Close()

	var mu sync.Mutex
	var events []detect.Event
	dir, _ := tenant.NewSnapshot([]tenant.Tenant{{ID: "aoba", Name: "あおば市",
		Networks:   []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
		EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.1.254")}}}, tenant.Options{})
	lists, _ := proxy.NewLists(proxy.ListConfig{Global: proxy.Rules{Block: []string{"http://" + origin.Listener.Addr().String() + "/ads"}}})
	srv, err := proxy.New(proxy.Config{
		Directory: dir,
		Decider:   lists,
		Sink: detect.SinkFunc(func(e detect.Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}),
		// The origin is on loopback, which is denied by default.
		AllowDestinations: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	if err != nil {
		panic(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)

	// A terminal of tenant aoba: source address 127.0.1.5.
	pu, _ := url.Parse("http://" + ln.Addr().String())
	src := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.1.5")}}
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), DialContext: src.DialContext}}
	for _, path := range []string{"/", "/ads/banner"} {
		resp, err := c.Get(origin.URL + path)
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			fmt.Println(path, resp.StatusCode, string(b))
		} else {
			fmt.Println(path, resp.StatusCode)
		}
	}
	// Shutdown waits for the connections, so every event was emitted.
	_ = srv.Shutdown(context.Background())
	for _, e := range events {
		fmt.Println(strings.TrimSpace(fmt.Sprint("event: ", e.Tenant, " ", e.HTTP.Method, " ", e.URL[len(origin.URL):], " ", e.HTTP.Status, " ", e.Verdict.Action, " ", e.Verdict.Rule)))
	}
	// Output:
	// / 200 hello
	// /ads/banner 403
	// event: aoba GET / 200 none
	// event: aoba GET /ads/banner 403 block proxy-block-list
}

// The inspection CA mints one certificate per host and keeps it.
func ExampleCA() {
	certPEM, keyPEM, err := proxy.GenerateCA("seccloud TLS inspection CA", time.Now())
	if err != nil {
		panic(err)
	}
	ca, err := proxy.NewCA(certPEM, keyPEM, proxy.CAConfig{})
	if err != nil {
		panic(err)
	}
	leaf, _ := ca.Leaf("www.example.jp")
	again, _ := ca.Leaf("www.example.jp")
	fmt.Println(leaf.Leaf.DNSNames, leaf.Leaf.Issuer.CommonName, leaf == again, ca.Minted())
	// Output: [www.example.jp] seccloud TLS inspection CA true 1
}

// Two municipalities share a 1 Gbit/s line: under contention aoba (weight
// 3) gets at least 750 Mbit/s of downloads and midori (weight 1) 250,
// either may use what the other leaves, and midori never exceeds its own
// 100 Mbit/s ceiling.
func ExampleGlobalBandwidth() {
	dir, _ := tenant.NewSnapshot([]tenant.Tenant{
		{ID: "aoba", Name: "あおば市", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
			Bandwidth: tenant.Bandwidth{Weight: 3}},
		{ID: "midori", Name: "みどり町", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.2.0/24")},
			Bandwidth: tenant.Bandwidth{Weight: 1, DownMbps: 100}},
	}, tenant.Options{})
	srv, err := proxy.New(proxy.Config{Directory: dir,
		GlobalBandwidth: proxy.GlobalBandwidth{UpMbps: 1000, DownMbps: 1000}})
	fmt.Println(err)
	srv.Close()

	_, err = proxy.New(proxy.Config{Directory: dir, GlobalBandwidth: proxy.GlobalBandwidth{DownMbps: -1}})
	fmt.Println(err)
	// Output:
	// <nil>
	// proxy: Config.GlobalBandwidth must not be negative, got {UpMbps:0 DownMbps:-1}
}
