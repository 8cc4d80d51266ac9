package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/tenant"
)

// wsEcho accepts a WebSocket upgrade and echoes raw bytes back (framing
// does not matter to the proxy, which relays bytes after the 101).
var wsEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "want an upgrade", 400)
		return
	}
	c, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\nhello-from-origin ", r.Header.Get("Sec-WebSocket-Key"))
	brw.Flush()
	io.Copy(c, brw) // echo until the client half-closes
	c.(*net.TCPConn).CloseWrite()
})

func TestWebSocketUpgrade(t *testing.T) {
	o := origin(t, "127.0.0.1:0", wsEcho)
	e := startProxy(t, proxy.Config{})
	c := e.dial(t, termA)
	fmt.Fprintf(c, "GET %s/chat HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		o.URL, o.Listener.Addr())
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Equal(t, 101, resp.StatusCode)
	assert.Equal(t, "websocket", resp.Header.Get("Upgrade"))
	assert.Equal(t, "dGhlIHNhbXBsZSBub25jZQ==", resp.Header.Get("Sec-WebSocket-Accept"))

	_, err = c.Write([]byte("ping-1 ping-2"))
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, "hello-from-origin ping-1 ping-2", string(rest))

	ev := e.sink.waitEvents(t, 1)[0]
	assert.Equal(t, 101, ev.HTTP.Status)
	assert.Equal(t, "websocket", label(ev, "upgrade"))
	assert.Equal(t, "success", ev.Outcome)
}

func TestTenantBandwidthCap(t *testing.T) {
	const size = 200_000
	o := origin(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprint(w, n)
			return
		}
		w.Write([]byte(strings.Repeat("x", size)))
	}))
	dir := testTenants(t, func(ts []tenant.Tenant) {
		ts[0].Bandwidth = tenant.Bandwidth{UpMbps: 1, DownMbps: 1} // 125,000 bytes/s each way
	})
	e := startProxy(t, proxy.Config{Directory: dir})

	// 200 kB at 125 kB/s after a 16 KiB burst cannot take less than ~1.4 s;
	// only a lower bound is checked (a slow machine only adds time).
	start := time.Now()
	_, body := get(t, e.client(termA), o.URL+"/big")
	assert.Len(t, body, size)
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "download shaped to 1 Mbit/s")

	start = time.Now()
	resp, err := e.client(termA).Post(o.URL+"/up", "application/octet-stream", strings.NewReader(strings.Repeat("y", size)))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, fmt.Sprint(size), string(b))
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "upload shaped to 1 Mbit/s")
}

// TestTunnelBulk moves 4 MiB each way through a CONNECT tunnel, whose
// directions take a buffer only while data flows.
func TestTunnelBulk(t *testing.T) {
	const size = 4 << 20
	payload := []byte(strings.Repeat("0123456789abcdef", size/16))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		go func() { c.Write(payload); c.(*net.TCPConn).CloseWrite() }()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	e := startProxy(t, proxy.Config{ConnectPorts: []uint16{uint16(port)}})
	c := e.dial(t, termA)
	fmt.Fprintf(c, "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", port)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	go func() { c.Write(payload); c.(*net.TCPConn).CloseWrite() }()
	down, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.True(t, string(down) == string(payload), "origin -> client intact (%d bytes)", len(down))
	up := <-got
	assert.True(t, string(up) == string(payload), "client -> origin intact (%d bytes)", len(up))
}
