package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRun starts the example proxy and fetches an allowed and a blocked
// host through it as a terminal of the tenant.
func TestRun(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer origin.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	var out syncBuf
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", "127.0.1.0/24", "127.0.0.1", "blocked.example", true, &out, slog.New(slog.DiscardHandler), ready)
	}()
	addr := <-ready
	pu, _ := url.Parse("http://" + addr)
	src := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.1.5")}}
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), DialContext: src.DialContext}}

	resp, err := c.Get(origin.URL + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "hello", string(body))

	resp, err = c.Get("http://blocked.example/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 403, resp.StatusCode)

	cancel()
	require.NoError(t, <-done)
	lines := bytes.Split(bytes.TrimSpace([]byte(out.String())), []byte("\n"))
	require.Len(t, lines, 2)
	var e detect.Event
	require.NoError(t, detect.DecodeECS(lines[1], &e))
	assert.Equal(t, "demo", e.Tenant)
	assert.Equal(t, detect.ActionBlock, e.Verdict.Action)
}
