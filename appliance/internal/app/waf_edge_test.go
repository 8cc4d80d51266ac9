package app

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWAFProtectionsCacheAndAPIs wires the waf section: per-site
// protections, path access, the CDN cache, and the console's purge and
// egress APIs.
func TestWAFProtectionsCacheAndAPIs(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "page %s", r.URL.Path)
	}))
	t.Cleanup(o.Close)
	a, _ := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0", waf_http: "127.0.0.1:0"}
functions: {proxy: false, dns: false, mail: false}
tenants:
  - id: tsu
    name: 津市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    sites:
      - {host: www.city.tsu.example.jp, origins: ["`+o.Listener.Addr().String()+`"]}
waf:
  source_addr: 127.0.0.1
  egress: [192.0.2.10]
  sites:
    - host: www.city.tsu.example.jp
      frame_options: DENY
      cache_grace: 1h
      path_access:
        - {path: /admin, allow: [127.0.1.0/24]}
`)
	addr := startedService[*wafService](t, a).addrs["listen.waf_http"]
	get := func(path string) (int, http.Header) {
		req, err := http.NewRequest("GET", "http://"+addr+path, nil)
		require.NoError(t, err)
		req.Host = "www.city.tsu.example.jp"
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header
	}
	code, h := get("/news")
	assert.Equal(t, 200, code)
	assert.Equal(t, "DENY", h.Get("X-Frame-Options"))
	_, h = get("/news")
	assert.Contains(t, h.Get("Cache-Status"), "hit")
	code, _ = get("/admin/")
	assert.Equal(t, 403, code, "path open to the tenant's network only")

	api := func(method, target string) (int, string) {
		req := httptest.NewRequest(method, target, nil)
		req.RemoteAddr = "127.0.0.1:40000"
		w := httptest.NewRecorder()
		a.handler().ServeHTTP(w, req)
		return w.Code, strings.TrimSpace(w.Body.String())
	}
	code, body := api("GET", "/api/waf/egress")
	assert.Equal(t, 200, code)
	assert.JSONEq(t, `{"egress":["127.0.0.1","192.0.2.10"]}`, body)
	code, body = api("POST", "/api/waf/purge?url=http://www.city.tsu.example.jp/news")
	assert.Equal(t, 200, code)
	assert.JSONEq(t, `{"purged":1}`, body)
	_, h = get("/news")
	assert.Contains(t, h.Get("Cache-Status"), "fwd=uri-miss", "purged")
	req := httptest.NewRequest("POST", "/api/waf/purge?prefix=x", nil) // not loopback
	w := httptest.NewRecorder()
	a.handler().ServeHTTP(w, req)
	assert.Equal(t, http.StatusForbidden, w.Code)
}
