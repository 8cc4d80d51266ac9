package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/tenant"
)

// holdOrigin accepts connections and keeps them, without a goroutine per
// connection; conns returns those accepted so far.
func holdOrigin(t *testing.T) (port uint16, conns func() []net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var held []net.Conn
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
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	return uint16(ln.Addr().(*net.TCPAddr).Port), func() []net.Conn {
		mu.Lock()
		defer mu.Unlock()
		return append([]net.Conn(nil), held...)
	}
}

// TestIdleTunnelsHoldNoGoroutine holds 200 idle tunnels: on Linux they wait
// in the Server's epoll set, so the proxy keeps no goroutine per tunnel,
// and a tunnel still carries bytes both ways after idling there.
func TestIdleTunnelsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the goroutine-free tunnel loop is Linux only (epoll)")
	}
	checkGoroutines(t)
	port, conns := holdOrigin(t)
	e := startProxy(t, proxy.Config{ConnectPorts: []uint16{port}})
	const n = 200
	clients := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	for i := range clients {
		c := e.dial(t, termA)
		fmt.Fprintf(c, "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", port)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)
		clients[i], readers[i] = c, br
	}
	require.Eventually(t, func() bool { return len(conns()) == n }, 10*time.Second, 5*time.Millisecond)
	// The test's own goroutines are a handful; two per tunnel would be 400.
	g := runtime.NumGoroutine()
	assert.Less(t, g, n/2, "goroutines with %d idle tunnels", n)

	// The last tunnel carries bytes both ways after idling.
	fmt.Fprint(clients[n-1], "ping")
	var origin net.Conn // the origin side of that tunnel: the one that got "ping"
	buf := make([]byte, 4)
	require.Eventually(t, func() bool {
		for _, c := range conns() {
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			if k, _ := io.ReadFull(c, buf); k == 4 {
				origin = c
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, "ping", string(buf))
	fmt.Fprint(origin, "pong!")
	got := make([]byte, 5)
	_, err := io.ReadFull(readers[n-1], got)
	require.NoError(t, err)
	assert.Equal(t, "pong!", string(got))

	// The origin closes: the client sees EOF (half-close), then closes its
	// side and the tunnel ends with one event counting the bytes.
	require.NoError(t, origin.(*net.TCPConn).CloseWrite())
	_, err = readers[n-1].ReadByte()
	assert.ErrorIs(t, err, io.EOF)
	require.NoError(t, clients[n-1].(*net.TCPConn).CloseWrite())
	ev := e.sink.waitEvents(t, 1)[0]
	assert.Equal(t, "success", ev.Outcome)
	head := fmt.Sprintf("CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", port)
	assert.EqualValues(t, len(head)+len("ping"), ev.BytesIn)
	assert.EqualValues(t, len("HTTP/1.1 200 Connection established\r\n\r\n")+len("pong!"), ev.BytesOut)
}

// TestShapedTunnel sends 200 kB each way through a CONNECT tunnel of a
// tenant capped at 1 Mbit/s each way: the bytes arrive intact and not
// faster than the ceiling allows (a lower bound only; a slow machine only
// adds time).
func TestShapedTunnel(t *testing.T) {
	const size = 200_000
	payload := []byte(strings.Repeat("z", size))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	got := make(chan int, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		go func() { c.Write(payload); c.(*net.TCPConn).CloseWrite() }()
		b, _ := io.ReadAll(c)
		got <- len(b)
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	dir := testTenants(t, func(ts []tenant.Tenant) {
		ts[0].Bandwidth = tenant.Bandwidth{UpMbps: 1, DownMbps: 1} // 125,000 bytes/s each way
	})
	e := startProxy(t, proxy.Config{Directory: dir, ConnectPorts: []uint16{uint16(port)}})
	c := e.dial(t, termA)
	start := time.Now()
	fmt.Fprintf(c, "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", port)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	go func() { c.Write(payload); c.(*net.TCPConn).CloseWrite() }()
	down, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Len(t, down, size)
	assert.Equal(t, size, <-got)
	// 200 kB at 125 kB/s after a burst of 1/20 s cannot take less than ~1.5 s.
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "shaped to 1 Mbit/s")
	ev := e.sink.waitEvents(t, 1)[0]
	assert.Equal(t, "success", ev.Outcome)
	assert.GreaterOrEqual(t, ev.BytesIn, int64(size))
	assert.GreaterOrEqual(t, ev.BytesOut, int64(size))
}
