package proxy_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/tenant"
)

func TestForwardGET(t *testing.T) {
	var seen atomic.Pointer[http.Request]
	o := origin(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Clone(r.Context()))
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "secret")
		w.Header().Set("X-End", "kept")
		fmt.Fprint(w, "hello ", r.RemoteAddr)
	}))
	e := startProxy(t, proxy.Config{Via: "seccloud"})
	req, err := http.NewRequest("GET", o.URL+"/a/b?c=d", nil)
	require.NoError(t, err)
	req.Header.Set("User-Agent", "test-agent")
	req.Header.Set("Connection", "X-Private")
	req.Header.Set("X-Private", "hop")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Header.Set("X-Forwarded-For", "10.1.2.3")
	req.Header.Set("X-Custom", "end-to-end")
	resp, err := e.client(termA).Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	assert.Equal(t, 200, resp.StatusCode)
	assert.True(t, strings.HasPrefix(string(body), "hello 127.0.1.254:"), "origin sees tenant A's egress address: %s", body)
	assert.Empty(t, resp.Header.Get("X-Hop"), "hop-by-hop header named in Connection is stripped")
	assert.Equal(t, "kept", resp.Header.Get("X-End"))
	assert.Equal(t, "1.1 seccloud", resp.Header.Get("Via"))

	r := seen.Load()
	require.NotNil(t, r)
	assert.Equal(t, "/a/b?c=d", r.RequestURI)
	assert.Equal(t, strings.TrimPrefix(o.URL, "http://"), r.Host)
	assert.Empty(t, r.Header.Get("X-Private"))
	assert.Empty(t, r.Header.Get("Proxy-Authorization"))
	assert.Empty(t, r.Header.Get("X-Forwarded-For"), "XFF is not leaked upstream by default")
	assert.Equal(t, "end-to-end", r.Header.Get("X-Custom"))
	assert.Equal(t, "1.1 seccloud", r.Header.Get("Via"))

	ev := e.sink.waitEvents(t, 1)[0]
	assert.Equal(t, "proxy", ev.Module)
	assert.Equal(t, "proxy.access", ev.Dataset)
	assert.Equal(t, "aoba", ev.Tenant)
	assert.Equal(t, termA, ev.Client.Addr())
	assert.Equal(t, "127.0.1.5", ev.Terminal)
	assert.Equal(t, "GET", ev.HTTP.Method)
	assert.Equal(t, 200, ev.HTTP.Status)
	assert.Equal(t, "test-agent", ev.HTTP.UserAgent)
	assert.Equal(t, o.URL+"/a/b?c=d", ev.URL)
	assert.Equal(t, o.Listener.Addr().String(), ev.Dest.String())
	assert.Equal(t, "success", ev.Outcome)
	assert.Positive(t, ev.BytesIn)
	assert.Positive(t, ev.BytesOut)
	assert.Positive(t, ev.Duration)
	assert.Equal(t, detect.ActionNone, ev.Verdict.Action)
}

func TestKeepAliveAndPooling(t *testing.T) {
	var conns atomic.Int32
	o := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "x")
	}))
	o.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	o.Start()
	defer o.Close()
	e := startProxy(t, proxy.Config{})
	c := e.dial(t, termA)
	br := bufio.NewReader(c)
	for i := 0; i < 20; i++ {
		fmt.Fprintf(c, "GET %s/%d HTTP/1.1\r\nHost: %s\r\n\r\n", o.URL, i, o.Listener.Addr())
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, "x", string(b))
		require.False(t, resp.Close)
	}
	assert.Equal(t, int32(1), conns.Load(), "one pooled upstream connection carries every request")
	assert.Len(t, e.sink.waitEvents(t, 20), 20)
	assert.Equal(t, 1, e.srv.PoolIdle())
}

func TestNoTenantRefused(t *testing.T) {
	o := origin(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("origin reached") }))
	e := startProxy(t, proxy.Config{})
	resp, body := get(t, e.client(netip.MustParseAddr("127.0.0.1")), o.URL+"/")
	assert.Equal(t, 403, resp.StatusCode)
	assert.Contains(t, body, "どの接続団体にも登録されていない")
	assert.Contains(t, body, "proxy-no-tenant")
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	ev := e.sink.waitEvents(t, 1)[0]
	assert.Empty(t, ev.Tenant)
	assert.Equal(t, detect.ActionBlock, ev.Verdict.Action)
	assert.Equal(t, proxy.RuleNoTenant, ev.Verdict.Rule)
	assert.Equal(t, "denied", ev.Type)
	assert.NotEmpty(t, ev.ID)
	assert.Contains(t, body, ev.ID, "the page quotes the event id as reference")
}

func TestDestinationChecks(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	inB := origin(t, "127.0.2.80:0", ok) // a server in tenant B's network
	_, portB, _ := net.SplitHostPort(inB.Listener.Addr().String())
	inet := origin(t, "127.0.0.1:0", ok)
	_, portI, _ := net.SplitHostPort(inet.Listener.Addr().String())

	allowAB := testTenants(t, func(ts []tenant.Tenant) { ts[0].Policy.AllowTenants = []string{"midori"} })
	for _, tc := range []struct {
		name   string
		cfg    proxy.Config
		src    netip.Addr
		url    string
		status int
		rule   string
		dest   string // destination.ip of the event, when set
	}{
		{"internet allowed", proxy.Config{}, termA, inet.URL, 200, "", ""},
		{"other tenant banned", proxy.Config{}, termA, inB.URL, 403, proxy.RuleTenantBan, ""},
		{"other tenant as octal-hex literal", proxy.Config{}, termA, "http://0177.0.0x2.0120:" + portB + "/", 403, proxy.RuleTenantBan, ""},
		{"other tenant as integer literal", proxy.Config{}, termA, "http://2130707024:" + portB + "/", 403, proxy.RuleTenantBan, "127.0.2.80"},
		{"other tenant as mapped IPv6", proxy.Config{}, termA, "http://[::ffff:127.0.2.80]:" + portB + "/", 403, proxy.RuleTenantBan, ""},
		{"other tenant by name", proxy.Config{Resolver: fakeResolver{"b.example": {netip.MustParseAddr("127.0.2.80")}}}, termA, "http://B.Example.:" + portB + "/", 403, proxy.RuleTenantBan, "127.0.2.80"},
		{"allowed pair", proxy.Config{Directory: allowAB}, termA, inB.URL, 200, "", ""},
		{"allowance is one way", proxy.Config{Directory: allowAB}, termB, "http://127.0.1.254:" + portI + "/", 403, proxy.RuleTenantBan, ""},
		{"own network passes", proxy.Config{}, termB, inB.URL, 200, "", ""},
		{"loopback denied by default", proxy.Config{AllowDestinations: []netip.Prefix{}}, termA, inet.URL, 403, proxy.RuleDestination, ""},
		{"integer literal of loopback denied", proxy.Config{AllowDestinations: []netip.Prefix{}}, termA, "http://2130706433:" + portI + "/", 403, proxy.RuleDestination, ""},
		{"name resolving to metadata denied", proxy.Config{Resolver: fakeResolver{"meta.example": {netip.MustParseAddr("169.254.169.254")}}}, termA, "http://meta.example/", 403, proxy.RuleDestination, "169.254.169.254"},
		{"unknown name", proxy.Config{Resolver: fakeResolver{}}, termA, "http://nx.example/", 502, "", ""},
		{"bad numeric host", proxy.Config{}, termA, "http://1.2.3.4.5/", 400, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startProxy(t, tc.cfg)
			resp, body := get(t, e.client(tc.src), tc.url)
			assert.Equal(t, tc.status, resp.StatusCode, body)
			ev := e.sink.waitEvents(t, 1)[0]
			assert.Equal(t, tc.rule, ev.Verdict.Rule)
			if tc.dest != "" { // refused before dialing, the address is still in the event
				assert.Equal(t, tc.dest, ev.Dest.Addr().String())
			}
			if tc.rule != "" {
				assert.Equal(t, detect.ActionBlock, ev.Verdict.Action)
				assert.Contains(t, body, tc.rule)
			}
		})
	}
}

func TestURLFilter(t *testing.T) {
	o := origin(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	_, port, _ := net.SplitHostPort(o.Listener.Addr().String())
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	res := fakeResolver{}
	for _, n := range []string{"bad.example", "www.bad.example", "good.bad.example", "shop.example", "news.example", "mixed.example"} {
		res[n] = lo
	}
	cats, err := proxy.ParseCategories(strings.NewReader("# domain category\nshop.example shopping\nnews.example news\n"))
	require.NoError(t, err)
	lists, err := proxy.NewLists(proxy.ListConfig{
		Global: proxy.Rules{
			Block: []string{"bad.example", "http://mixed.example/private"},
			Allow: []string{"=good.bad.example"},
		},
		Tenants:    map[string]proxy.Rules{"aoba": {BlockCategories: []string{"shopping"}}},
		Categories: cats,
	})
	require.NoError(t, err)
	e := startProxy(t, proxy.Config{Decider: lists, Resolver: res})
	u := func(host, path string) string { return "http://" + host + ":" + port + path }
	for _, tc := range []struct {
		name   string
		src    netip.Addr
		url    string
		status int
		action detect.Action
		rule   string
	}{
		{"blocked domain", termA, u("bad.example", "/"), 403, detect.ActionBlock, proxy.RuleBlockList},
		{"blocked subdomain", termA, u("WWW.bad.example", "/x"), 403, detect.ActionBlock, proxy.RuleBlockList},
		{"allow list wins", termA, u("good.bad.example", "/"), 200, detect.ActionAllow, proxy.RuleAllowList},
		{"URL prefix blocked", termA, u("mixed.example", "/private/x"), 403, detect.ActionBlock, proxy.RuleBlockList},
		{"URL prefix elsewhere passes", termA, u("mixed.example", "/public"), 200, detect.ActionNone, ""},
		{"tenant category", termA, u("shop.example", "/"), 403, detect.ActionBlock, proxy.RuleCategory},
		{"category not blocked for B", termB, u("shop.example", "/"), 200, detect.ActionNone, ""},
		{"report-only tenant passes", termC, u("bad.example", "/"), 200, detect.ActionReport, proxy.RuleBlockList},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := len(e.sink.events())
			resp, body := get(t, e.client(tc.src), tc.url)
			assert.Equal(t, tc.status, resp.StatusCode)
			ev := e.sink.waitEvents(t, n+1)[n]
			assert.Equal(t, tc.action, ev.Verdict.Action)
			assert.Equal(t, tc.rule, ev.Verdict.Rule)
			if tc.status == 403 {
				assert.Contains(t, body, "このページへのアクセスはブロックされました")
				assert.Contains(t, body, "Access to this page was blocked")
			}
		})
	}
	t.Run("CONNECT blocked before tunnelling", func(t *testing.T) {
		e := startProxy(t, proxy.Config{Decider: lists, Resolver: res, ConnectPorts: []uint16{443}})
		c := e.dial(t, termA)
		fmt.Fprint(c, "CONNECT www.bad.example:443 HTTP/1.1\r\nHost: www.bad.example:443\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		assert.Equal(t, 403, resp.StatusCode)
		ev := e.sink.waitEvents(t, 1)[0]
		assert.Equal(t, "connect", ev.Action)
		assert.Equal(t, "www.bad.example:443", ev.URL)
		assert.Equal(t, proxy.RuleBlockList, ev.Verdict.Rule)
	})
}

// echoUpper answers each connection with the upper-cased bytes it read,
// after the client half-closed; then it closes.
func echoUpper(t *testing.T) (addr string, port uint16) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write(bytes.ToUpper(b))
			}()
		}
	}()
	ap := netip.MustParseAddrPort(ln.Addr().String())
	return ln.Addr().String(), ap.Port()
}

func TestConnectHalfClose(t *testing.T) {
	checkGoroutines(t)
	addr, port := echoUpper(t)
	e := startProxy(t, proxy.Config{ConnectPorts: []uint16{port}, Via: "seccloud"})
	c := e.dial(t, termA)
	// The client sends data right behind the CONNECT head, before the 200.
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\nhello ", addr, addr)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "1.1 seccloud", resp.Header.Get("Via"))
	fmt.Fprint(c, "tunnel")
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	got, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, "HELLO TUNNEL", string(got), "the origin saw EOF, answered, and the answer came back")
	ev := e.sink.waitEvents(t, 1)[0]
	assert.Equal(t, "connect", ev.Action)
	assert.Equal(t, "aoba", ev.Tenant)
	assert.Equal(t, addr, ev.URL)
	assert.Equal(t, addr, ev.Dest.String())
	assert.Equal(t, "success", ev.Outcome)
	assert.EqualValues(t, len(addr)*2+len("CONNECT  HTTP/1.1\r\nHost: \r\n\r\nhello tunnel"), ev.BytesIn)
	assert.Equal(t, 200, ev.HTTP.Status)
	c.Close()
}

func TestConnectRefusals(t *testing.T) {
	addr, _ := echoUpper(t)
	e := startProxy(t, proxy.Config{}) // 443 only
	for _, tc := range []struct {
		name, target string
		status       int
	}{
		{"odd port", addr, 403},
		{"no port", "127.0.0.1", 400},
		{"userinfo", "user@127.0.0.1:443", 400},
		{"other tenant", "127.0.2.9:443", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial(t, termA)
			fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", tc.target, tc.target)
			resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
			require.NoError(t, err)
			assert.Equal(t, tc.status, resp.StatusCode)
		})
	}
}

func TestTunnelIdleTimeout(t *testing.T) {
	checkGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() { // accepts and stays silent
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	port := netip.MustParseAddrPort(ln.Addr().String()).Port()
	e := startProxy(t, proxy.Config{ConnectPorts: []uint16{port}, TunnelIdleTimeout: 100 * time.Millisecond})
	c := e.dial(t, termA)
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\n\r\n", ln.Addr())
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	_, err = io.ReadAll(br) // ends when the proxy closes the idle tunnel
	require.NoError(t, err)
	ev := e.sink.waitEvents(t, 1)[0]
	assert.Equal(t, "failure", ev.Outcome)
	c.Close()
}

// TestNoLeakAfterAbortedTunnels aborts 10,000 tunnels (half before the
// 200, half after it with data in flight) with a reset and checks that no
// goroutine (checkGoroutines), tracked connection or file descriptor is
// left.
func TestNoLeakAfterAbortedTunnels(t *testing.T) {
	checkGoroutines(t)
	addr, port := echoUpper(t)
	e := startProxy(t, proxy.Config{ConnectPorts: []uint16{port}})
	n := 10_000
	if testing.Short() {
		n = 1_000
	}
	// open runs on several goroutines: assert, not require.
	d := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(termA, 0))}
	open := func(i int) {
		c, err := d.Dial("tcp", e.addr)
		if !assert.NoError(t, err) {
			return
		}
		defer c.Close() // abort: RST (linger 0)
		c.(*net.TCPConn).SetLinger(0)
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\n\r\n", addr)
		if i%2 == 0 {
			resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
			if assert.NoError(t, err) && assert.Equal(t, 200, resp.StatusCode) {
				fmt.Fprint(c, "partial")
			}
		}
	}
	open(0) // the first tunnel starts the Server's tunnel loop (epoll fd, pipe)
	require.Eventually(t, func() bool { return e.srv.ActiveConns() == 0 }, 10*time.Second, 10*time.Millisecond)
	fds0 := openFDs(t)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				open(i)
			}
		}()
	}
	wg.Wait()
	require.Eventually(t, func() bool { return e.srv.ActiveConns() == 0 }, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return openFDs(t) <= fds0 }, 10*time.Second, 10*time.Millisecond,
		"file descriptors: %d before, %d after %d aborted tunnels", fds0, openFDs(t), n)
	// Every tunnel that got its 200 ends with an event (the others may
	// have been reset before their request was read).
	e.sink.waitEvents(t, n/2+1)
}

// openFDs counts this process's open file descriptors (Linux); it skips
// the test elsewhere.
func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(ents)
}

func TestSlowAndHugeHeaders(t *testing.T) {
	e := startProxy(t, proxy.Config{ReadHeaderTimeout: 100 * time.Millisecond, MaxHeaderBytes: 4096})
	t.Run("slowloris", func(t *testing.T) {
		c := e.dial(t, termA)
		fmt.Fprint(c, "GET http://127.0.0.1/ HTTP/1.1\r\nX-Slow: ")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		assert.Equal(t, 408, resp.StatusCode)
	})
	t.Run("huge header", func(t *testing.T) {
		c := e.dial(t, termA)
		fmt.Fprintf(c, "GET http://127.0.0.1/ HTTP/1.1\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 20000))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		assert.Equal(t, 431, resp.StatusCode)
	})
	for _, tc := range []struct {
		name, raw string
		status    int
	}{
		{"garbage", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 hello\r\n\r\n", 400},
		{"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
		{"origin-form", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400},
		{"https absolute URI", "GET https://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400},
		{"bad host", "GET http://exa mple/ HTTP/1.1\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial(t, termA)
			fmt.Fprint(c, tc.raw)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.True(t, resp.Close)
		})
	}
}

func TestXForwardedForTerminal(t *testing.T) {
	o := origin(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Header.Get("X-Forwarded-For"))
	}))
	e := startProxy(t, proxy.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.1.10/32")}, ForwardXFF: true})
	for i, tc := range []struct {
		name, xff, terminal, upstream string
		src                           netip.Addr
	}{
		{"trusted downstream proxy", "10.9.8.7", "10.9.8.7", "10.9.8.7, 127.0.1.10", netip.MustParseAddr("127.0.1.10")},
		{"spoofed left part ignored", "6.6.6.6, 10.9.8.7", "10.9.8.7", "6.6.6.6, 10.9.8.7, 127.0.1.10", netip.MustParseAddr("127.0.1.10")},
		{"untrusted client", "10.9.8.7", "127.0.1.5", "10.9.8.7, 127.0.1.5", termA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", o.URL, nil)
			req.Header.Set("X-Forwarded-For", tc.xff)
			resp, err := e.client(tc.src).Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, tc.upstream, string(b))
			ev := e.sink.waitEvents(t, i+1)[i]
			assert.Equal(t, tc.terminal, ev.Terminal)
		})
	}
}

func TestBodiesAndFraming(t *testing.T) {
	big := make([]byte, 3<<20+17)
	rand.Read(big)
	sum := sha256.Sum256(big)
	o := origin(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			w.Write(big)
		case "/stream": // chunked, flushed piece by piece
			for i := 0; i < 5; i++ {
				fmt.Fprintf(w, "part%d;", i)
				w.(http.Flusher).Flush()
			}
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			h := sha256.Sum256(b)
			fmt.Fprintf(w, "%d %x %s", len(b), h[:4], r.Header.Get("Expect"))
		case "/nocontent":
			w.WriteHeader(204)
		}
	}))
	e := startProxy(t, proxy.Config{})
	c := e.client(termA)
	t.Run("large body is spliced intact", func(t *testing.T) {
		resp, body := get(t, c, o.URL+"/big")
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, sum, sha256.Sum256([]byte(body)))
	})
	t.Run("chunked stream", func(t *testing.T) {
		resp, body := get(t, c, o.URL+"/stream")
		assert.Equal(t, "part0;part1;part2;part3;part4;", body)
		assert.Equal(t, []string{"chunked"}, resp.TransferEncoding)
	})
	t.Run("chunked upload", func(t *testing.T) {
		resp, err := c.Post(o.URL+"/echo", "application/octet-stream", io.MultiReader(bytes.NewReader(big[:100000]), strings.NewReader("")))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := sha256.Sum256(big[:100000])
		assert.Equal(t, fmt.Sprintf("100000 %x ", h[:4]), string(b))
	})
	t.Run("expect 100-continue", func(t *testing.T) {
		req, _ := http.NewRequest("PUT", o.URL+"/echo", bytes.NewReader(big[:5000]))
		req.Header.Set("Expect", "100-continue")
		resp, err := c.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := sha256.Sum256(big[:5000])
		assert.Equal(t, fmt.Sprintf("5000 %x ", h[:4]), string(b))
	})
	t.Run("HEAD and 204", func(t *testing.T) {
		resp, err := c.Head(o.URL + "/big")
		require.NoError(t, err)
		resp.Body.Close()
		assert.EqualValues(t, len(big), resp.ContentLength)
		resp, body := get(t, c, o.URL+"/nocontent")
		assert.Equal(t, 204, resp.StatusCode)
		assert.Empty(t, body)
	})
	t.Run("HTTP/1.0 client", func(t *testing.T) {
		conn := e.dial(t, termA)
		fmt.Fprintf(conn, "GET %s/stream HTTP/1.0\r\n\r\n", o.URL)
		b, err := io.ReadAll(conn)
		require.NoError(t, err)
		assert.True(t, strings.HasSuffix(string(b), "\r\n\r\npart0;part1;part2;part3;part4;"), string(b))
	})
}

// A pooled upstream connection the origin closed silently is retried once.
func TestStalePooledConnRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // one response per connection, then close without notice
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err == nil {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
				time.Sleep(20 * time.Millisecond)
				c.Close()
			}()
		}
	}()
	e := startProxy(t, proxy.Config{})
	c := e.client(termA)
	for i := 0; i < 3; i++ {
		resp, body := get(t, c, "http://"+ln.Addr().String()+"/")
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, "ok", body)
		require.Eventually(t, func() bool { return e.srv.PoolIdle() == 1 }, 5*time.Second, time.Millisecond)
		time.Sleep(50 * time.Millisecond) // the origin has closed the pooled one
	}
}

func TestUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	e := startProxy(t, proxy.Config{})
	resp, body := get(t, e.client(termA), "http://"+addr+"/")
	assert.Equal(t, 502, resp.StatusCode)
	assert.Contains(t, body, "接続先のサーバーに接続できませんでした")
}

func TestShutdownDrains(t *testing.T) {
	checkGoroutines(t)
	release := make(chan struct{})
	o := origin(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		fmt.Fprint(w, "done")
	}))
	srv, err := proxy.New(proxy.Config{Directory: testTenants(t, nil), AllowDestinations: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	e := &env{srv: srv, addr: ln.Addr().String()}
	c := e.client(termA)
	_, body := get(t, c, o.URL+"/") // leaves an idle keep-alive connection
	require.Equal(t, "done", body)
	slow := make(chan string, 1)
	go func() {
		resp, err := e.client(termA).Get(o.URL + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(b)
	}()
	require.Eventually(t, func() bool { return srv.ActiveConns() == 2 }, 5*time.Second, time.Millisecond)
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(t.Context()) }()
	require.Eventually(t, func() bool { return srv.ActiveConns() == 1 }, 5*time.Second, time.Millisecond, "the idle connection is closed at once: %d", srv.ActiveConns())
	close(release)
	assert.Equal(t, "done", <-slow, "the request in flight completes")
	require.NoError(t, <-shut)
	require.ErrorIs(t, <-served, proxy.ErrServerClosed)
	c.CloseIdleConnections()
	o.Close()
}

func TestNewValidates(t *testing.T) {
	dir := testTenants(t, nil)
	for _, tc := range []struct {
		name string
		cfg  proxy.Config
		want string
	}{
		{"no directory", proxy.Config{}, "Directory"},
		{"negative timeout", proxy.Config{Directory: dir, IdleTimeout: -1}, "IdleTimeout"},
		{"tiny header limit", proxy.Config{Directory: dir, MaxHeaderBytes: 10}, "MaxHeaderBytes"},
		{"port zero", proxy.Config{Directory: dir, ConnectPorts: []uint16{0}}, "ConnectPorts[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := proxy.New(tc.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "proxy: "))
		})
	}
}
