package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const base = "id,name,network,egress\naoba,あおば市,127.0.1.0/24,127.0.0.1\nmidori,みどり町,127.0.2.0/24,127.0.0.1\n"

// TestProxyFollowsTheDatabase runs the proxy on the CSV directory and
// changes the file under it: a new municipality may use the proxy after
// the reload, and a broken export keeps the previous tenants.
func TestProxyFollowsTheDatabase(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer origin.Close()
	db := filepath.Join(t.TempDir(), "tenants.csv")
	require.NoError(t, os.WriteFile(db, []byte(base), 0o644))

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan started, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, db, "127.0.0.1:0", time.Hour, slog.New(slog.DiscardHandler), ready) }()
	var s started
	select {
	case s = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	get := func(src string) int {
		t.Helper()
		pu, _ := url.Parse("http://" + s.addr)
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), DialContext: d.DialContext, DisableKeepAlives: true}}
		resp, err := c.Get(origin.URL + "/")
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, 200, get("127.0.1.5"), "aoba")
	assert.Equal(t, 403, get("127.0.3.5"), "nobody's network yet")

	require.NoError(t, os.WriteFile(db, []byte(base+"kiyosu,きよす村,127.0.3.0/24,127.0.0.1\n"), 0o644))
	changed, err := s.dir.Reload()
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, 200, get("127.0.3.5"), "kiyosu, after the reload")
	changed, err = s.dir.Reload()
	require.NoError(t, err)
	assert.False(t, changed, "same file, nothing to do")

	require.NoError(t, os.WriteFile(db, []byte(base+"kiyosu,きよす村,127.0.1.128/25,127.0.0.1\n"), 0o644))
	_, err = s.dir.Reload()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tenants.csv:4: ", "the overlapping row")
	assert.Equal(t, 200, get("127.0.3.5"), "the previous tenants stay in use")

	cancel()
	require.NoError(t, <-done)
}

func TestParseCSV(t *testing.T) {
	tests := []struct {
		name, csv, err string
	}{
		{"good, two rows one tenant", "id,name,network,egress\na,A,127.0.1.0/24,127.0.0.1\na,A,127.0.9.0/24,127.0.0.2\n", ""},
		{"comments", "# export\nid,name,network,egress\na,A,127.0.1.0/24,127.0.0.1\n", ""},
		{"wrong header", "tenant,name,net,egress\na,A,127.0.1.0/24,127.0.0.1\n", "header must be"},
		{"bad network", "id,name,network,egress\na,A,127.0.1.0/24,127.0.0.1\nb,B,127.0.2.0/33,127.0.0.1\n", "f.csv:3: network"},
		{"bad egress", "id,name,network,egress\na,A,127.0.1.0/24,nowhere\n", "f.csv:2: egress"},
		{"bad id", "id,name,network,egress\na,A,127.0.1.0/24,127.0.0.1\nB C,B,127.0.2.0/24,127.0.0.1\n", "f.csv:3: "},
		{"overlap on second network", "id,name,network,egress\na,A,127.0.1.0/24,127.0.0.1\nb,B,127.0.2.0/24,127.0.0.1\nb,B,127.0.1.0/25,127.0.0.1\n", "f.csv:4: "},
		{"short row", "id,name,network,egress\na,A,127.0.1.0/24\n", "wrong number of fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := parseCSV("f.csv", []byte(tt.csv))
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			tn, ok := snap.ByAddr(netip.MustParseAddr("127.0.1.9"))
			require.True(t, ok)
			assert.Equal(t, "a", tn.ID)
		})
	}
}

// TestWatch checks that Watch picks a change up by itself.
func TestWatch(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tenants.csv")
	require.NoError(t, os.WriteFile(db, []byte(base), 0o644))
	d, err := OpenCSV(db, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Watch(ctx, 10*time.Millisecond)
	require.NoError(t, os.WriteFile(db, []byte(base+"kiyosu,きよす村,127.0.3.0/24,127.0.0.1\n"), 0o644))
	require.Eventually(t, func() bool {
		tn, ok := d.ByAddr(netip.MustParseAddr("127.0.3.7"))
		return ok && tn.ID == "kiyosu"
	}, 10*time.Second, 10*time.Millisecond)
}
