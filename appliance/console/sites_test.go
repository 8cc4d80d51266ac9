package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSiteTrafficAndPurge: a tenant admin sees its own site's days and
// purges its cache by URL and by prefix; another tenant's site, a
// look-alike host and a viewer are refused and audited.
func TestSiteTrafficAndPurge(t *testing.T) {
	e := newEnv(t, nil)
	ta := e.client()
	require.Equal(t, http.StatusSeeOther, ta.loginForm("aoba-admin", testPassword))
	code, page := ta.get("/sites")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, page, "www.aoba.example.jp")
	assert.NotContains(t, page, "www.midori.example.jp")
	today := time.Now().Format("2006-01-02")
	assert.Contains(t, page, today)
	assert.Contains(t, page, "<td>1000</td>", "today's requests from the rollups")
	assert.Contains(t, page, "10.0%", "cache hit ratio")
	code, _ = ta.get("/sites?tenant=midori")
	assert.Equal(t, http.StatusNotFound, code)

	api := e.client()
	require.Equal(t, http.StatusOK, api.apiLogin("aoba-admin", testPassword))
	code, b := api.api("GET", "/api/v1/sites?days=3", nil)
	require.Equal(t, http.StatusOK, code)
	var res []SiteTrafficResult
	require.NoError(t, json.Unmarshal(b, &res))
	require.Len(t, res, 1)
	assert.Equal(t, "www.aoba.example.jp", res[0].Site)
	require.Len(t, res[0].Days, 3)
	assert.Equal(t, today, res[0].Days[0].Day)
	assert.Equal(t, int64(1002), res[0].Days[2].Requests)
	assert.Equal(t, int64(2), res[0].Days[2].Attacks)

	tok := ta.pageCSRF("/sites")
	code, _, h := ta.postForm("/sites/purge", url.Values{"csrf": {tok}, "url": {"https://WWW.aoba.example.jp/news/today.html"}, "mode": {"url"}})
	require.Equal(t, http.StatusSeeOther, code)
	assert.Equal(t, "/sites?purged=1", h.Get("Location"))
	_, page = ta.get(h.Get("Location"))
	assert.Contains(t, page, "キャッシュを削除しました（1 件）")
	code, b = api.api("POST", "/api/v1/sites/purge", map[string]any{"url": "www.aoba.example.jp/news/", "prefix": true})
	require.Equal(t, http.StatusOK, code, string(b))
	assert.Equal(t, []string{"url:https://www.aoba.example.jp/news/today.html", "prefix:www.aoba.example.jp/news/"}, e.purge.got())
	assert.True(t, e.auditHas("aoba-admin", "site.purge", "success", "site:www.aoba.example.jp"))

	for _, target := range []string{"https://www.midori.example.jp/", "www.midori.example.jp", "https://www.aoba.example.jp.evil.example/",
		"https://evil.example/www.aoba.example.jp/"} {
		code, _, _ := ta.postForm("/sites/purge", url.Values{"csrf": {tok}, "url": {target}, "mode": {"prefix"}})
		assert.Equal(t, http.StatusNotFound, code, target)
		code, _ = api.api("POST", "/api/v1/sites/purge", map[string]any{"url": target, "prefix": true})
		assert.Equal(t, http.StatusNotFound, code, target)
	}
	for _, target := range []string{"", "https://www.aoba.example.jp:8443/", "https://user@www.aoba.example.jp/", "https://www.aoba.example.jp/a b",
		"https://www.aoba.example.jp/a\r\nb", "javascript:alert(1)"} {
		code, _, _ := ta.postForm("/sites/purge", url.Values{"csrf": {tok}, "url": {target}})
		assert.Equal(t, http.StatusBadRequest, code, "%q", target)
	}
	assert.Len(t, e.purge.got(), 2, "nothing else purged")
	assert.True(t, e.auditHas("aoba-admin", "site.purge", "denied", "site:www.midori.example.jp"))

	// A viewer sees the traffic but has no purge button and is refused.
	v := e.client()
	require.Equal(t, http.StatusSeeOther, v.loginForm("aoba-view", testPassword))
	_, page = v.get("/sites")
	assert.Contains(t, page, "www.aoba.example.jp")
	assert.NotContains(t, page, `action="/sites/purge"`)
	code, _, _ = v.postForm("/sites/purge", url.Values{"csrf": {v.pageCSRF("/sites")}, "url": {"https://www.aoba.example.jp/"}})
	assert.Equal(t, http.StatusForbidden, code)
	assert.True(t, e.auditHas("aoba-view", "site.purge", "denied", "site:www.aoba.example.jp"))

	// The operator sees both tenants' sites and purges any.
	op := e.client()
	require.Equal(t, http.StatusSeeOther, op.loginForm("soc", testPassword))
	_, page = op.get("/sites")
	assert.Contains(t, page, "www.aoba.example.jp")
	assert.Contains(t, page, "www.midori.example.jp")
	code, _, _ = op.postForm("/sites/purge", url.Values{"csrf": {op.pageCSRF("/sites")}, "url": {"https://www.midori.example.jp/"}, "mode": {"prefix"}})
	assert.Equal(t, http.StatusSeeOther, code)
	assert.Contains(t, e.purge.got(), "prefix:https://www.midori.example.jp/")
}

func TestPurgeTarget(t *testing.T) {
	for _, c := range []struct{ in, key, host string }{
		{"https://WWW.City.example.jp/News/", "https://www.city.example.jp/News/", "www.city.example.jp"},
		{"http://a.example.jp", "http://a.example.jp/", "a.example.jp"},
		{"a.example.jp/x?y=1", "a.example.jp/x?y=1", "a.example.jp"},
		{"//a.example.jp/", "a.example.jp/", "a.example.jp"},
	} {
		key, host, err := purgeTarget(c.in, true)
		require.NoError(t, err, c.in)
		assert.Equal(t, c.key, key, c.in)
		assert.Equal(t, c.host, host, c.in)
	}
	for _, in := range []string{"", "https://", "https://a..b/", "https://.a/", "https://a_b/", "https://[::1]/", "ftp://a.example/", "https://a.example/#x"} {
		_, _, err := purgeTarget(in, false)
		assert.ErrorIs(t, err, errBadTarget, in)
	}
}

// countingCounter is a Counter that records what it was asked.
type countingCounter struct {
	mu      sync.Mutex
	tenants []string
}

func (c *countingCounter) Counts(tenantID string, from, to time.Time) (RollupCounts, error) {
	c.mu.Lock()
	c.tenants = append(c.tenants, tenantID)
	c.mu.Unlock()
	days := int64(to.Sub(from) / (24 * time.Hour))
	return RollupCounts{Events: map[string]int64{"waf": 7000 + days, "dns": 123}, Detections: [4]int64{0, 11, 22, 3 + days}}, nil
}

// TestDashboardFromRollups: with a Counter the dashboard's counts come
// from it (the store is not read), in the tenant's scope.
func TestDashboardFromRollups(t *testing.T) {
	cnt := &countingCounter{}
	e := newEnv(t, func(c *Config) { c.Counter = cnt; c.Events = nil })
	ta := e.client()
	require.Equal(t, http.StatusOK, ta.apiLogin("aoba-admin", testPassword))
	code, b := ta.api("GET", "/api/v1/dashboard", nil)
	require.Equal(t, http.StatusOK, code)
	var d Dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	require.Len(t, d.Counts, 2)
	assert.Equal(t, "today", d.Counts[0].Label)
	assert.Equal(t, "rollup", d.Counts[0].Source)
	assert.Equal(t, [4]int64{0, 11, 22, 4}, d.Counts[0].Detections)
	require.Len(t, d.Counts[0].Rows, 2)
	assert.Equal(t, CountRow{Module: "dns", Total: 123}, d.Counts[0].Rows[0])
	assert.Equal(t, 7001, d.Counts[0].Rows[1].Total)
	assert.Greater(t, d.Counts[1].Rows[1].Total, 7001, "the month spans more days than today")
	assert.Equal(t, []string{"aoba", "aoba"}, cnt.tenants)

	op := e.client()
	require.Equal(t, http.StatusSeeOther, op.loginForm("soc", testPassword))
	_, page := op.get("/dashboard")
	assert.Contains(t, page, `data-source="rollup"`)
	assert.Contains(t, page, "<td>123</td>")
	assert.Contains(t, page, "検知件数（危険度別、全機能）")
	assert.Equal(t, []string{"aoba", "aoba", "", ""}, cnt.tenants, "an operator counts the whole cloud")
	assert.False(t, strings.Contains(page, "イベントストアが接続されていません"))
}
