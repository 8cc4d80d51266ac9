package app

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
)

// TestWAFThroughAppliance serves a tenant's site through the wired reverse
// proxy, refuses an unknown host, and finds the access events in the store.
func TestWAFThroughAppliance(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "site %s %s", r.Host, r.Header.Get("X-Forwarded-For"))
	}))
	t.Cleanup(o.Close) // after the appliance stops
	a, ctx := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0", waf_http: "127.0.0.1:0"}
functions: {proxy: false, dns: false}
tenants:
  - id: tsu
    name: 津市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    sites:
      - {host: www.city.tsu.example.jp, origins: ["`+o.Listener.Addr().String()+`"]}
`)
	addr := startedService[*wafService](t, a).addrs["listen.waf_http"]

	get := func(host string) (int, string) {
		req, err := http.NewRequest("GET", "http://"+addr+"/index.html", nil)
		require.NoError(t, err)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("www.city.tsu.example.jp")
	assert.Equal(t, 200, code)
	assert.Equal(t, "site www.city.tsu.example.jp 127.0.0.1", body)
	code, _ = get("unknown.example.jp")
	assert.Equal(t, 404, code)

	require.NoError(t, a.events.flush(ctx, 10*time.Second))
	var got []detect.Event
	require.NoError(t, a.events.store.Query(ctx, store.Filter{Module: "waf"}, func(e detect.Event) error {
		got = append(got, e)
		return nil
	}))
	require.Len(t, got, 2)
	statuses := map[int]string{}
	for _, e := range got {
		statuses[e.HTTP.Status] = e.Tenant
	}
	assert.Equal(t, "tsu", statuses[200])
	assert.Contains(t, statuses, 404)
}
