package proxy_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/tenant"
)

// Tenant A owns 127.0.1.0/24 and leaves from 127.0.1.254; tenant B owns
// 127.0.2.0/24 and leaves from 127.0.2.254; tenant C is in report-only
// mode. Anything else on loopback is "the internet".
var (
	termA  = netip.MustParseAddr("127.0.1.5")
	termB  = netip.MustParseAddr("127.0.2.5")
	termC  = netip.MustParseAddr("127.0.3.5")
	egresA = netip.MustParseAddr("127.0.1.254")
)

func testTenants(t testing.TB, mod func([]tenant.Tenant)) *tenant.Snapshot {
	ts := []tenant.Tenant{
		{ID: "aoba", Name: "あおば市", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
			EgressAddr: []netip.Addr{egresA}},
		{ID: "midori", Name: "みどり町", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.2.0/24")},
			EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.2.254")}},
		{ID: "sakura", Name: "さくら村", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.3.0/24")},
			EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.3.254")}, Policy: tenant.Policy{ReportOnly: true}},
	}
	if mod != nil {
		mod(ts)
	}
	s, err := tenant.NewSnapshot(ts, tenant.Options{})
	require.NoError(t, err)
	return s
}

// memSink records events.
type memSink struct {
	mu sync.Mutex
	ev []detect.Event
}

func (m *memSink) Emit(e detect.Event) {
	m.mu.Lock()
	m.ev = append(m.ev, e)
	m.mu.Unlock()
}

func (m *memSink) events() []detect.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]detect.Event(nil), m.ev...)
}

// waitEvents waits until n events were emitted (events are emitted after
// the response is written, so a client may see the response first).
func (m *memSink) waitEvents(t testing.TB, n int) []detect.Event {
	t.Helper()
	require.Eventually(t, func() bool { return len(m.events()) >= n }, 10*time.Second, 5*time.Millisecond)
	return m.events()
}

// fakeResolver answers every name from a fixed table.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return append([]netip.Addr(nil), a...), nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

type env struct {
	srv  *proxy.Server
	addr string // proxy address
	sink *memSink
}

// startProxy starts a Server on a free loopback port; loopback
// destinations are allowed (they stand for the internet here).
func startProxy(t testing.TB, cfg proxy.Config) *env {
	t.Helper()
	sink := &memSink{}
	if cfg.Directory == nil {
		cfg.Directory = testTenants(t, nil)
	}
	if cfg.Sink == nil {
		cfg.Sink = sink
	}
	if cfg.AllowDestinations == nil {
		cfg.AllowDestinations = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	srv, err := proxy.New(cfg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		require.ErrorIs(t, <-done, proxy.ErrServerClosed)
	})
	return &env{srv: srv, addr: ln.Addr().String(), sink: sink}
}

// client returns an HTTP client that uses the proxy from source address src.
func (e *env) client(src netip.Addr) *http.Client {
	d := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
	pu, _ := url.Parse("http://" + e.addr)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), DialContext: d.DialContext,
		DisableCompression: true, MaxIdleConnsPerHost: 4}}
}

// dial opens a raw connection to the proxy from src.
func (e *env) dial(t testing.TB, src netip.Addr) net.Conn {
	t.Helper()
	d := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
	c, err := d.Dial("tcp", e.addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// origin starts an HTTP test server on addr ("127.0.0.1:0" for any).
func origin(t testing.TB, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	s := httptest.NewUnstartedServer(h)
	s.Listener.Close()
	s.Listener = ln
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func get(t testing.TB, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	return resp, string(b)
}

// checkGoroutines fails when goroutines started during the test outlive it
// (checked after every other cleanup of the test).
func checkGoroutines(t testing.TB) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		t.Helper()
		var now int
		ok := false
		for i := 0; i < 500; i++ {
			runtime.GC()
			now = runtime.NumGoroutine()
			if now <= before {
				ok = true
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !ok {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d before, %d after:\n%s", before, now, buf[:n])
		}
	})
}
