package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/tenant"
)

// BenchmarkProxy1K relays 1 KiB GETs over keep-alive connections through a
// real loopback origin, with the access log going to a counting sink: the
// in-process version of the bench/proxy workload.
func BenchmarkProxy1K(b *testing.B) {
	body := strings.Repeat("x", 1024)
	o := origin(b, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	e := startProxy(b, proxy.Config{Sink: detect.SinkFunc(func(detect.Event) {})})
	req := fmt.Sprintf("GET %s/1k HTTP/1.1\r\nHost: %s\r\n\r\n", o.URL, o.Listener.Addr())
	b.ReportAllocs()
	b.SetBytes(1024)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(termA, 0))}
		c, err := d.Dial("tcp", e.addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			if _, err := io.WriteString(c, req); err != nil {
				b.Error(err)
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

func BenchmarkListsDecide(b *testing.B) {
	block := make([]string, 0, 10000)
	for i := 0; i < 10000; i++ {
		block = append(block, fmt.Sprintf("bad%d.example", i))
	}
	l, err := proxy.NewLists(proxy.ListConfig{Global: proxy.Rules{Block: block, Allow: []string{"=ok.example"}},
		Categories: map[string]string{"shop.example": "shopping"}})
	if err != nil {
		b.Fatal(err)
	}
	t := &tenant.Tenant{ID: "aoba", Policy: tenant.Policy{BlockCategories: []string{"shopping"}}}
	r := proxy.Request{Tenant: t, Method: "GET", Host: "www.static.news.example.co.jp", Port: 80, Path: "/a/b?c"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, _ := l.Decide(context.Background(), r); v.Action == detect.ActionBlock {
				b.Error("blocked")
			}
		}
	})
}
