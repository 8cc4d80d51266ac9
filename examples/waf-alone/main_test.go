package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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

// TestGateway puts the example in front of a loopback origin and sends
// allowed and denied requests with net/http.
func TestGateway(t *testing.T) {
	var originHits sync.Map
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originHits.Store(r.URL.Path, true)
		io.WriteString(w, "市のお知らせ")
	}))
	defer origin.Close()
	var out syncBuf
	g, err := New(Config{Addr: "127.0.0.1:0", Host: "www.city.example.jp", Origin: origin.URL,
		Deny: []string{"/wp-admin", "/.git/"}, Out: &out})
	require.NoError(t, err)

	get := func(host, target string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+g.Addr()+target, nil)
		require.NoError(t, err)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name, host, target string
		status             int
	}{
		{"allowed", "www.city.example.jp", "/news/?id=1", 200},
		{"denied prefix", "www.city.example.jp", "/wp-admin/login.php", 403},
		{"denied, percent-encoded", "www.city.example.jp", "/%77p-admin/", 403},
		{"denied, dot segments and case", "www.city.example.jp", "/news/../.GIT/config", 403},
		{"not under the prefix", "www.city.example.jp", "/wp-admin-guide", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(tt.host, tt.target)
			assert.Equal(t, tt.status, status)
			if status == 200 {
				assert.Equal(t, "市のお知らせ", body)
			}
		})
	}
	_, reached := originHits.Load("/wp-admin/login.php")
	assert.False(t, reached, "a denied request never reaches the origin")
	status, _ := get("unknown.example.jp", "/")
	assert.NotEqual(t, 200, status, "a host that is no site is not proxied")

	require.NoError(t, g.Shutdown(context.Background()))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, len(tests)+1, "one event per request")
	var blocked int
	for _, l := range lines {
		var e detect.Event
		require.NoError(t, detect.DecodeECS([]byte(l), &e))
		if e.Verdict.Action == detect.ActionBlock && e.Verdict.Rule == "100001" {
			blocked++
			assert.Equal(t, "city", e.Tenant)
			assert.Equal(t, 403, e.HTTP.Status)
		}
	}
	assert.Equal(t, 3, blocked)
}
