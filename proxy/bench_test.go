package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/tenant"
)

// BenchmarkProxy1K relays 1 KiB GETs over keep-alive connections through a
// real loopback origin, with the access log going to a counting sink: the
// in-process version of the bench/proxy workload.
// Sub-benchmarks: the fast response-head path (default) and
// http.ReadResponse for every response, compared in one run.
func BenchmarkProxy1K(b *testing.B) {
	body := strings.Repeat("x", 1024)
	o := origin(b, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	for _, fast := range []bool{true, false} {
		name := "fast-head"
		if !fast {
			name = "net-http-head"
		}
		b.Run(name, func(b *testing.B) { benchProxy1K(b, o, fast) })
	}
}

func benchProxy1K(b *testing.B, o *httptest.Server, fast bool) {
	e := startProxy(b, proxy.Config{Sink: detect.SinkFunc(func(detect.Event) {})})
	e.srv.SetFastHead(fast)
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

// BenchmarkIdleTunnels holds idle CONNECT tunnels open and reports the
// proxy's memory per tunnel (heap in use + goroutine stacks, measured in
// this process, so the test's own client and origin sockets, about 1 KB a
// tunnel, are included): the figure behind "60,000 idle tunnels".
//
//	go test -run '^$' -bench IdleTunnels -benchtime 5000x ./proxy
func BenchmarkIdleTunnels(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	e := startProxy(b, proxy.Config{Sink: detect.SinkFunc(func(detect.Event) {}), ConnectPorts: []uint16{uint16(port)}})
	mem := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	before := mem()
	conns := make([]net.Conn, 0, b.N)
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(termA, 0))}
	req := fmt.Sprintf("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port, port)
	buf := make([]byte, 64)
	for i := 0; i < b.N; i++ {
		c, err := d.Dial("tcp", e.addr)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		io.WriteString(c, req)
		n, err := c.Read(buf)
		if err != nil || !strings.Contains(string(buf[:n]), " 200 ") {
			b.Fatalf("CONNECT: %q %v", buf[:n], err)
		}
	}
	after := mem()
	b.ReportMetric(float64(after-before)/float64(b.N), "B/tunnel")
	b.ReportMetric(float64(runtime.NumGoroutine())/float64(b.N), "goroutines/tunnel")
	for _, c := range conns {
		c.Close()
	}
}
