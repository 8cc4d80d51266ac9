package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/tenant"
)

// TestGlobalBandwidthFairShare runs two tenants' downloads at once through
// a proxy whose line is 8 Mbit/s (1,000,000 bytes/s) down: tenant A over
// plain HTTP, tenant B through a CONNECT tunnel. Shares are measured over
// the first 1,000,000 bytes received after both streams started; the
// bounds are generous (the scheduler's own tests check precision).
func TestGlobalBandwidthFairShare(t *testing.T) {
	checkGoroutines(t) // the schedulers stop with the Server
	chunk := make([]byte, 16<<10)
	endless := origin(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
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
				for {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
	}()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	for _, tc := range []struct {
		name     string
		a        tenant.Bandwidth
		min, max float64 // bounds of A's share
	}{
		// Weights 3:1: A is owed 75 %.
		{"weights", tenant.Bandwidth{Weight: 3}, 0.6, 0.9},
		// A's own ceiling of 2 Mbit/s (25 % of the line) still holds; B
		// borrows the rest (work-conserving).
		{"ceiling", tenant.Bandwidth{Weight: 3, DownMbps: 2}, 0.1, 0.4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testTenants(t, func(ts []tenant.Tenant) { ts[0].Bandwidth = tc.a })
			e := startProxy(t, proxy.Config{Directory: dir, ConnectPorts: []uint16{port},
				GlobalBandwidth: proxy.GlobalBandwidth{DownMbps: 8}})
			var gotA, gotB atomic.Int64
			count := func(r io.Reader, n *atomic.Int64) {
				buf := make([]byte, 32<<10)
				for {
					k, err := r.Read(buf)
					n.Add(int64(k))
					if err != nil {
						return
					}
				}
			}
			// A: plain HTTP.
			ca := e.dial(t, termA)
			fmt.Fprintf(ca, "GET %s/stream HTTP/1.1\r\nHost: %s\r\n\r\n", endless.URL, endless.Listener.Addr())
			ra := bufio.NewReader(ca)
			resp, err := http.ReadResponse(ra, nil)
			require.NoError(t, err)
			require.Equal(t, 200, resp.StatusCode)
			go count(resp.Body, &gotA)
			// B: a CONNECT tunnel.
			cb := e.dial(t, termB)
			fmt.Fprintf(cb, "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", port)
			rb := bufio.NewReader(cb)
			resp, err = http.ReadResponse(rb, &http.Request{Method: "CONNECT"})
			require.NoError(t, err)
			require.Equal(t, 200, resp.StatusCode)
			go count(rb, &gotB)

			require.Eventually(t, func() bool { return gotA.Load() > 64<<10 && gotB.Load() > 64<<10 },
				20*time.Second, 5*time.Millisecond, "both streams flow")
			a0, b0 := gotA.Load(), gotB.Load()
			start := time.Now()
			const window = 1_000_000
			require.Eventually(t, func() bool { return gotA.Load()-a0+gotB.Load()-b0 >= window },
				30*time.Second, 5*time.Millisecond)
			elapsed := time.Since(start)
			da, db := gotA.Load()-a0, gotB.Load()-b0
			share := float64(da) / float64(da+db)
			t.Logf("A %d bytes, B %d bytes in %v: A's share %.2f", da, db, elapsed, share)
			assert.GreaterOrEqual(t, share, tc.min, "A's share")
			assert.LessOrEqual(t, share, tc.max, "A's share")
			// The line's capacity holds: 1 MB at 1 MB/s cannot arrive much
			// sooner than in a second (a lower bound only: bursts of
			// 64 KiB and socket buffers are the slack).
			assert.GreaterOrEqual(t, elapsed, 500*time.Millisecond, "8 Mbit/s line")
			ca.Close()
			cb.Close()
		})
	}
}
