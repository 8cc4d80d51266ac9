package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
)

// receiver is a SIEM endpoint: it refuses the first POST with 503, then
// stores every event line.
type receiver struct {
	mu     sync.Mutex
	posts  int
	keys   []string
	events []detect.Event
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.posts++
	rc.keys = append(rc.keys, r.Header.Get("Idempotency-Key"))
	if r.Header.Get("Authorization") != "Bearer s3cret" || r.Header.Get("Content-Type") != "application/x-ndjson" {
		http.Error(w, "bad request", http.StatusUnauthorized)
		return
	}
	if rc.posts == 1 {
		http.Error(w, "warming up", http.StatusServiceUnavailable)
		return
	}
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() {
		var e detect.Event
		if err := detect.DecodeECS(sc.Bytes(), &e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.events = append(rc.events, e)
	}
}

// TestForwardsToSIEM proxies requests through the example and checks that
// their events reach the SIEM, after a refused first attempt.
func TestForwardsToSIEM(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer origin.Close()
	rc := new(receiver)
	siem := httptest.NewServer(rc)
	defer siem.Close()

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, Config{Listen: "127.0.0.1:0", Network: netip.MustParsePrefix("127.0.1.0/24"),
			SIEM: SIEMConfig{URL: siem.URL, Token: "s3cret"}, Interval: 50 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler)}, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	pu, _ := url.Parse("http://" + addr)
	for _, src := range []string{"127.0.1.5", "127.0.1.6", "127.0.9.9"} {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), DialContext: d.DialContext}}
		resp, err := c.Get(origin.URL + "/")
		require.NoError(t, err)
		resp.Body.Close()
	}
	cancel()
	require.NoError(t, <-done)

	rc.mu.Lock()
	defer rc.mu.Unlock()
	require.Len(t, rc.events, 3, "every event arrived once the SIEM accepted")
	assert.GreaterOrEqual(t, rc.posts, 2, "the 503 was retried")
	assert.Equal(t, rc.keys[0], rc.keys[1], "a retry carries the same Idempotency-Key")
	byClient := map[string]detect.Event{}
	for _, e := range rc.events {
		byClient[e.Client.Addr().String()] = e
	}
	assert.Equal(t, "demo", byClient["127.0.1.5"].Tenant)
	assert.Equal(t, detect.ActionBlock, byClient["127.0.9.9"].Verdict.Action, "no tenant: refused, and reported")
}

func TestSIEMWriterStatus(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		err, perm bool
	}{
		{"stored", 200, false, false},
		{"accepted", 202, false, false},
		{"rate limited: retry", 429, true, false},
		{"server error: retry", 502, true, false},
		{"malformed: give up", 400, true, true},
		{"forbidden: give up", 403, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tt.status) }))
			defer s.Close()
			w, err := NewSIEMWriter(SIEMConfig{URL: s.URL})
			require.NoError(t, err)
			err = w.WriteEvents(context.Background(), []detect.Event{{Module: "proxy"}})
			assert.Equal(t, tt.err, err != nil, "%v", err)
			assert.Equal(t, tt.perm, detect.IsPermanent(err))
		})
	}
	_, err := NewSIEMWriter(SIEMConfig{URL: "siem.example:443"})
	assert.Error(t, err, "not an http URL")
}
