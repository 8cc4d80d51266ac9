package console

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect/incident"
)

func TestLoginPagesOperatorSeesAllTenants(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	code, _ := c.get("/dashboard")
	require.Equal(t, http.StatusSeeOther, code, "no session → login")
	require.Equal(t, http.StatusSeeOther, c.loginForm("soc", testPassword))
	code, body := c.get("/dashboard")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "ダッシュボード")
	assert.Contains(t, body, "あおば市")
	assert.Contains(t, body, "みどり町")
	assert.Contains(t, body, "function/proxy: up")
	for _, id := range append(e.ids["aoba"], e.ids["midori"]...) {
		assert.Contains(t, body, id)
	}
	_, body = c.get("/incidents")
	for _, id := range append(e.ids["aoba"], e.ids["midori"]...) {
		assert.Contains(t, body, id)
	}
	_, body = c.get("/events")
	assert.Contains(t, body, "secret-midori.example.")
	assert.Contains(t, body, "127.0.1.5")
	_, body = c.get("/tenants")
	assert.Contains(t, body, `href="/tenants/midori"`)
	assert.True(t, e.auditHas("soc", "login", "success", "soc"))
}

func TestTenantAdminSeesOnlyOwnTenant(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	require.Equal(t, http.StatusSeeOther, c.loginForm("aoba-admin", testPassword))
	for _, path := range []string{"/dashboard", "/incidents", "/incidents?active=1", "/events", "/tenants/aoba"} {
		code, body := c.get(path)
		require.Equal(t, http.StatusOK, code, path)
		for _, id := range e.ids["midori"] {
			assert.NotContains(t, body, id, path)
		}
		assert.NotContains(t, body, "secret-midori", path)
		assert.NotContains(t, body, "みどり町", path)
		assert.NotContains(t, body, "127.0.2.", path)
	}
	_, body := c.get("/incidents")
	for _, id := range e.ids["aoba"] {
		assert.Contains(t, body, id)
	}
	code, _ := c.get("/tenants")
	assert.Equal(t, http.StatusSeeOther, code, "a tenant user's settings list is its own tenant")

	// Acknowledge one of its own incidents.
	id := e.ids["aoba"][0]
	tok := c.pageCSRF("/incidents/" + id)
	code, _, _ = c.postForm("/incidents/"+id+"/ack", url.Values{"csrf": {tok}})
	require.Equal(t, http.StatusSeeOther, code)
	inc, _ := e.inc.Get(id)
	assert.Equal(t, incident.StateAcknowledged, inc.State)
	assert.Equal(t, "aoba-admin", inc.Timeline[len(inc.Timeline)-1].By)
	assert.True(t, e.auditHas("aoba-admin", "incident.ack", "success", "incident:"+id))

	// Contact and response records, then resolve.
	for _, kind := range []string{"contact", "response", "note"} {
		code, _, _ = c.postForm("/incidents/"+id+"/records", url.Values{"csrf": {tok}, "kind": {kind}, "text": {kind + " text"}})
		require.Equal(t, http.StatusSeeOther, code, kind)
	}
	code, _, _ = c.postForm("/incidents/"+id+"/state", url.Values{"csrf": {tok}, "state": {"resolved"}, "note": {"端末を初期化"}})
	require.Equal(t, http.StatusSeeOther, code)
	inc, _ = e.inc.Get(id)
	assert.Equal(t, incident.StateResolved, inc.State)
	var kinds []string
	for _, en := range inc.Timeline {
		kinds = append(kinds, en.Kind)
	}
	assert.Subset(t, kinds, []string{"contact", "response", "note", "state", "ack"})
	_, body = c.get("/incidents/" + id)
	assert.Contains(t, body, "連絡記録")
	assert.Contains(t, body, "対応記録")
}

// TestIsolationEveryEndpoint tries every page and API endpoint with the
// other tenant's ids: each answers 404 (as for an id that does not
// exist), changes nothing, and leaves a "denied" audit entry.
func TestIsolationEveryEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	page := e.client()
	require.Equal(t, http.StatusSeeOther, page.loginForm("aoba-admin", testPassword))
	api := e.client()
	require.Equal(t, http.StatusOK, api.apiLogin("aoba-admin", testPassword))
	other := e.ids["midori"][0]
	before, _ := e.inc.Get(other)
	tok := page.pageCSRF("/dashboard")
	mreq, err := e.reqs.Create(NewRequest{Tenant: "midori", Kind: KindInquiry, Subject: "みどり町の依頼", By: "midori-admin", Side: "tenant"})
	require.NoError(t, err)
	mreq, err = e.reqs.Update(mreq.ID, "midori-admin", "tenant", "", "", []Upload{{Name: "m.txt", Body: strings.NewReader("127.0.2.1")}}, 1<<20)
	require.NoError(t, err)

	gets := []string{"/incidents/" + other, "/incidents?tenant=midori", "/events?tenant=midori", "/tenants/midori",
		"/api/v1/incidents/" + other, "/api/v1/incidents?tenant=midori", "/api/v1/events?tenant=midori", "/api/v1/tenants/midori",
		"/requests/" + mreq.ID, "/requests/" + mreq.ID + "/files/1", "/requests?tenant=midori", "/sites?tenant=midori",
		"/api/v1/requests/" + mreq.ID, "/api/v1/requests/" + mreq.ID + "/files/1", "/api/v1/requests?tenant=midori", "/api/v1/sites?tenant=midori"}
	for _, p := range gets {
		cl := page
		if strings.HasPrefix(p, "/api/") {
			cl = api
		}
		code, body := cl.get(p)
		assert.Equal(t, http.StatusNotFound, code, p)
		assert.NotContains(t, body, "みどり町", p)
		assert.NotContains(t, body, "127.0.2.", p)
	}
	posts := []struct {
		path string
		form url.Values
	}{
		{"/incidents/" + other + "/ack", url.Values{"csrf": {tok}}},
		{"/incidents/" + other + "/records", url.Values{"csrf": {tok}, "kind": {"note"}, "text": {"x"}}},
		{"/incidents/" + other + "/state", url.Values{"csrf": {tok}, "state": {"resolved"}}},
		{"/requests/" + mreq.ID + "/comments", url.Values{"csrf": {tok}, "text": {"x"}}},
		{"/requests", url.Values{"csrf": {tok}, "tenant": {"midori"}, "kind": {"inquiry"}, "subject": {"x"}}},
		{"/sites/purge", url.Values{"csrf": {tok}, "url": {"https://www.midori.example.jp/"}, "mode": {"prefix"}}},
	}
	for _, p := range posts {
		code, _, _ := page.postForm(p.path, p.form)
		assert.Equal(t, http.StatusNotFound, code, p.path)
	}
	apiPosts := []struct {
		path string
		body any
	}{
		{"/api/v1/incidents/" + other + "/ack", map[string]string{}},
		{"/api/v1/incidents/" + other + "/records", map[string]string{"kind": "note", "text": "x"}},
		{"/api/v1/incidents/" + other + "/state", map[string]string{"state": "resolved"}},
		{"/api/v1/requests/" + mreq.ID + "/comments", map[string]string{"text": "x"}},
		{"/api/v1/requests", RequestInput{Tenant: "midori", Kind: KindInquiry, Subject: "x"}},
		{"/api/v1/sites/purge", map[string]any{"url": "https://www.midori.example.jp/", "prefix": true}},
	}
	for _, p := range apiPosts {
		code, _ := api.api("POST", p.path, p.body)
		assert.Equal(t, http.StatusNotFound, code, p.path)
	}
	after, _ := e.inc.Get(other)
	got, _ := e.reqs.Get(mreq.ID)
	assert.Len(t, got.Comments, len(mreq.Comments), "nothing added to the other tenant's request")
	assert.Len(t, e.reqs.List("midori"), 1, "nothing filed for the other tenant")
	assert.Empty(t, e.purge.got(), "the other tenant's cache untouched")
	assert.Equal(t, before.State, after.State)
	assert.Equal(t, len(before.Timeline), len(after.Timeline), "nothing recorded on the other tenant's incident")

	// The unfiltered API lists hold only the own tenant.
	code, b := api.get("/api/v1/incidents")
	require.Equal(t, http.StatusOK, code)
	var list []incident.Incident
	require.NoError(t, json.Unmarshal([]byte(b), &list))
	require.Len(t, list, len(e.ids["aoba"]))
	for _, inc := range list {
		assert.Equal(t, "aoba", inc.Tenant)
	}
	_, b = api.get("/api/v1/events")
	assert.NotContains(t, b, "midori")
	_, b = api.get("/api/v1/tenants")
	assert.NotContains(t, b, "midori")
	_, b = api.get("/api/v1/requests")
	assert.NotContains(t, b, "midori")
	_, b = api.get("/api/v1/sites")
	assert.NotContains(t, b, "midori")
	code, _ = api.get("/api/v1/audit")
	assert.Equal(t, http.StatusForbidden, code, "the audit log is the operators'")

	denied, err := e.audit.Entries(func(a *AuditEntry) bool { return a.User == "aoba-admin" && a.Outcome == "denied" })
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(denied), len(gets)+len(posts)+len(apiPosts))
	assert.True(t, e.auditHas("aoba-admin", "incident.ack", "denied", "incident:"+other))
	assert.True(t, e.auditHas("aoba-admin", "tenant.view", "denied", "tenant:midori"))
	assert.True(t, e.auditHas("aoba-admin", "event.search", "denied", "tenant:midori"))

	// A viewer reads but cannot act, even on its own tenant.
	v := e.client()
	require.Equal(t, http.StatusSeeOther, v.loginForm("aoba-view", testPassword))
	own := e.ids["aoba"][1]
	code, body := v.get("/incidents/" + own)
	require.Equal(t, http.StatusOK, code)
	assert.NotContains(t, body, `id="ack"`)
	code, _, _ = v.postForm("/incidents/"+own+"/ack", url.Values{"csrf": {v.pageCSRF("/dashboard")}})
	assert.Equal(t, http.StatusForbidden, code)
	assert.True(t, e.auditHas("aoba-view", "incident.ack", "denied", "incident:"+own))
}

func TestLockoutAfterWrongPasswords(t *testing.T) {
	clock := time.Now()
	e := newEnv(t, func(c *Config) {
		c.Now = func() time.Time { return clock }
		c.LockoutAfter = 3
		c.LockoutFor = 15 * time.Minute
	})
	c := e.client()
	for i := range 3 {
		code := c.loginForm("aoba-admin", "wrong password "+fmt.Sprint(i))
		if i < 2 {
			assert.Equal(t, http.StatusUnauthorized, code, "attempt %d", i)
		} else {
			assert.Equal(t, http.StatusTooManyRequests, code, "the third failure locks")
		}
	}
	// Locked: even the right password is refused, on the page and the API.
	assert.Equal(t, http.StatusTooManyRequests, c.loginForm("aoba-admin", testPassword))
	assert.Equal(t, http.StatusTooManyRequests, e.client().apiLogin("aoba-admin", testPassword))
	_, body := c.get("/login")
	_ = body
	// Other accounts are not affected.
	assert.Equal(t, http.StatusSeeOther, e.client().loginForm("midori-admin", testPassword))
	assert.True(t, e.auditHas("aoba-admin", "login", "failure", "aoba-admin"))
	locked, err := e.audit.Entries(func(a *AuditEntry) bool {
		return a.User == "aoba-admin" && strings.Contains(a.Detail, "locked")
	})
	require.NoError(t, err)
	assert.NotEmpty(t, locked)
	// After the lockout period, one more try is allowed.
	clock = clock.Add(6 * time.Minute)
	assert.Equal(t, http.StatusSeeOther, c.loginForm("aoba-admin", testPassword))
}

func TestCSRFRefused(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	require.Equal(t, http.StatusSeeOther, c.loginForm("aoba-admin", testPassword))
	id := e.ids["aoba"][0]
	for _, form := range []url.Values{{}, {"csrf": {"forged-token"}}} {
		code, body, _ := c.postForm("/incidents/"+id+"/ack", form)
		assert.Equal(t, http.StatusForbidden, code)
		assert.Contains(t, body, "フォームの有効期限")
	}
	inc, _ := e.inc.Get(id)
	assert.NotEqual(t, incident.StateAcknowledged, inc.State)
	assert.True(t, e.auditHas("aoba-admin", "csrf", "denied", "/incidents/"+id+"/ack"))

	// Logout without a token is refused too.
	code, _, _ := c.postForm("/logout", nil)
	assert.Equal(t, http.StatusForbidden, code)

	// The login form without its token.
	code, _, _ = e.client().postForm("/login", url.Values{"user": {"aoba-admin"}, "password": {testPassword}})
	assert.Equal(t, http.StatusForbidden, code)
	assert.True(t, e.auditHas("", "login", "denied", "aoba-admin"))

	// The API without X-CSRF-Token.
	a := e.client()
	require.Equal(t, http.StatusOK, a.apiLogin("aoba-admin", testPassword))
	a.csrf = ""
	code, _ = a.api("POST", "/api/v1/incidents/"+id+"/ack", map[string]string{})
	assert.Equal(t, http.StatusForbidden, code)
	assert.True(t, e.auditHas("aoba-admin", "csrf", "denied", "POST /api/v1/incidents/"+id+"/ack"))
	// The API login wants JSON (a cross-site form cannot send it).
	code, _, _ = e.client().postForm("/api/v1/session", url.Values{"user": {"aoba-admin"}, "password": {testPassword}})
	assert.Equal(t, http.StatusUnsupportedMediaType, code)
}

// xssPayloads are WAF-holdout-style payloads: script tags, event handlers,
// javascript: URLs, attribute breakouts, template syntax.
var xssPayloads = []string{
	`<script>alert(1)</script>`,
	`"><img src=x onerror=alert(1)>`,
	`'><svg/onload=alert(1)>`,
	`javascript:alert(document.cookie)`,
	`</textarea><script>alert(1)</script>`,
	`{{.CSRF}}`,
	`<a href="javascript:alert(1)">x</a>`,
	`<iframe srcdoc="<script>alert(1)</script>">`,
	`%3Cscript%3Ealert(1)%3C/script%3E`,
	"<scr\x00ipt>alert(1)</script>",
}

func TestXSSEscapedEverywhere(t *testing.T) {
	e := newEnv(t, nil)
	// A hostile rule title and terminal name (attacker-influenced fields).
	r := testRule(t, "xss", "x", true)
	r.Title = xssPayloads[0] + xssPayloads[1]
	now := time.Now()
	ev := e.inc // keep the manager handy
	id, err := ev.Add(alertFor(r, "aoba", `"><script>alert(2)</script>`, now))
	require.NoError(t, err)

	c := e.client()
	require.Equal(t, http.StatusSeeOther, c.loginForm("aoba-admin", testPassword))
	tok := c.pageCSRF("/incidents/" + id)
	for _, p := range xssPayloads {
		code, _, _ := c.postForm("/incidents/"+id+"/records", url.Values{"csrf": {tok}, "kind": {"note"}, "text": {p}})
		require.Equal(t, http.StatusSeeOther, code, p)
	}
	for _, path := range []string{"/incidents/" + id, "/incidents", "/dashboard"} {
		_, body := c.get(path)
		assert.NotContains(t, body, "<script>", path)
		assert.NotContains(t, body, "<img src=x", path)
		assert.NotContains(t, body, "<svg", path)
		assert.NotContains(t, body, "<iframe", path)
		assert.NotContains(t, body, `href="javascript:`, path)
		assert.Contains(t, body, html.EscapeString(xssPayloads[0]), path)
	}
	_, body := c.get("/incidents/" + id)
	assert.NotContains(t, body, tok+"</td>", "template syntax in a note is text, not a template")
	assert.Contains(t, body, "{{.CSRF}}")

	// A hostile next= after login never leaves the site.
	d := e.client()
	_, lp := d.get("/login?next=//evil.example/")
	m := csrfField.FindStringSubmatch(lp)
	require.NotNil(t, m)
	code, _, h := d.postForm("/login", url.Values{"csrf": {m[1]}, "user": {"aoba-admin"}, "password": {testPassword}, "next": {"//evil.example/"}})
	require.Equal(t, http.StatusSeeOther, code)
	assert.Equal(t, "/dashboard", h.Get("Location"))
	assert.True(t, e.auditHas("aoba-admin", "incident.note", "success", "incident:"+id))
}

func TestSessionCookieAttributes(t *testing.T) {
	for _, secure := range []bool{false, true} {
		e := newEnv(t, func(c *Config) { c.SecureCookies = secure })
		c := e.client()
		_, body := c.get("/login")
		m := csrfField.FindStringSubmatch(body)
		require.NotNil(t, m)
		_, _, h := c.postForm("/login", url.Values{"csrf": {m[1]}, "user": {"soc"}, "password": {testPassword}})
		var found bool
		for _, raw := range h.Values("Set-Cookie") {
			if strings.HasPrefix(raw, cookieSession+"=") && !strings.HasPrefix(raw, cookieSession+"=;") {
				found = true
				assert.Contains(t, raw, "HttpOnly")
				assert.Contains(t, raw, "SameSite=Strict")
				assert.Equal(t, secure, strings.Contains(raw, "Secure"), raw)
			}
		}
		assert.True(t, found)
	}
}

func TestLogoutEndsSession(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	require.Equal(t, http.StatusSeeOther, c.loginForm("soc", testPassword))
	tok := c.pageCSRF("/dashboard")
	code, _, _ := c.postForm("/logout", url.Values{"csrf": {tok}})
	require.Equal(t, http.StatusSeeOther, code)
	code, _ = c.get("/dashboard")
	assert.Equal(t, http.StatusSeeOther, code)
	assert.True(t, e.auditHas("soc", "logout", "success", ""))
}

func TestRemovedAccountLosesSession(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	require.Equal(t, http.StatusSeeOther, c.loginForm("aoba-view", testPassword))
	require.NoError(t, e.acc.Remove("aoba-view"))
	code, _ := c.get("/dashboard")
	assert.Equal(t, http.StatusSeeOther, code)
}

func TestTOTPLogin(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return clock } })
	sec, err := NewTOTPSecret()
	require.NoError(t, err)
	require.NoError(t, e.acc.SetTOTP("aoba-admin", sec))
	c := e.client()
	assert.Equal(t, http.StatusUnauthorized, c.loginForm("aoba-admin", testPassword), "no code")
	code, err := TOTPCode(sec, clock)
	require.NoError(t, err)
	_, body := c.get("/login")
	m := csrfField.FindStringSubmatch(body)
	st, _, _ := c.postForm("/login", url.Values{"csrf": {m[1]}, "user": {"aoba-admin"}, "password": {testPassword}, "code": {code}})
	assert.Equal(t, http.StatusSeeOther, st)
	assert.True(t, e.auditHas("aoba-admin", "login", "failure", ""))
	// The same code again (a replay) is refused.
	d := e.client()
	_, body = d.get("/login")
	m = csrfField.FindStringSubmatch(body)
	st, _, _ = d.postForm("/login", url.Values{"csrf": {m[1]}, "user": {"aoba-admin"}, "password": {testPassword}, "code": {code}})
	assert.Equal(t, http.StatusUnauthorized, st)
}

func TestEnglishSwitch(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	require.Equal(t, http.StatusSeeOther, c.loginForm("aoba-admin", testPassword))
	code, _ := c.get("/lang?to=en&back=/incidents")
	require.Equal(t, http.StatusSeeOther, code)
	_, body := c.get("/incidents")
	assert.Contains(t, body, `<html lang="en">`)
	assert.Contains(t, body, "Incidents")
	assert.Contains(t, body, "日本語")
}

func TestAPIFlow(t *testing.T) {
	e := newEnv(t, nil)
	a := e.client()
	assert.Equal(t, http.StatusUnauthorized, a.apiLogin("soc", "wrong password!"))
	require.Equal(t, http.StatusOK, a.apiLogin("soc", testPassword))
	code, b := a.api("GET", "/api/v1/dashboard", nil)
	require.Equal(t, http.StatusOK, code)
	var d Dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	assert.Len(t, d.Open, 4)
	require.Len(t, d.Counts, 2)
	total := 0
	for _, r := range d.Counts[1].Rows {
		total += r.Total
	}
	if now := time.Now(); now.Day() != 1 || now.Hour() > 0 || now.Minute() > 5 { // the events are up to 2 min old
		assert.Equal(t, 5, total, "this month: 4 proxy events and 1 dns event")
	}

	id := e.ids["midori"][1]
	code, b = a.api("POST", "/api/v1/incidents/"+id+"/records", map[string]string{"kind": "contact", "text": "電話で総務課に連絡"})
	require.Equal(t, http.StatusOK, code, string(b))
	code, b = a.api("POST", "/api/v1/incidents/"+id+"/state", map[string]string{"state": "false_positive", "note": "検査"})
	require.Equal(t, http.StatusOK, code, string(b))
	var inc incident.Incident
	require.NoError(t, json.Unmarshal(b, &inc))
	assert.Equal(t, incident.StateFalsePositive, inc.State)
	code, _ = a.api("POST", "/api/v1/incidents/"+id+"/state", map[string]string{"state": "acknowledged"})
	assert.Equal(t, http.StatusConflict, code, "a closed incident cannot be reopened")

	code, b = a.api("GET", "/api/v1/events?module=dns&verdict=sinkhole", nil)
	require.Equal(t, http.StatusOK, code)
	var er EventsResult
	require.NoError(t, json.Unmarshal(b, &er))
	require.Equal(t, 1, er.Matched)
	assert.Contains(t, string(er.Events[0]), `"secret-midori.example."`)

	code, b = a.api("GET", "/api/v1/audit", nil)
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, string(b), `"incident.state"`)
	code, _ = a.api("DELETE", "/api/v1/session", nil)
	assert.Equal(t, http.StatusNoContent, code)
	code, _ = a.api("GET", "/api/v1/me", nil)
	assert.Equal(t, http.StatusUnauthorized, code)
}

func TestOversizedFormRefused(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	require.Equal(t, http.StatusSeeOther, c.loginForm("aoba-admin", testPassword))
	id := e.ids["aoba"][0]
	tok := c.pageCSRF("/incidents/" + id)
	code, _, _ := c.postForm("/incidents/"+id+"/records", url.Values{"csrf": {tok}, "kind": {"note"}, "text": {strings.Repeat("あ", 40_000)}})
	assert.Equal(t, http.StatusRequestEntityTooLarge, code)
	inc, _ := e.inc.Get(id)
	for _, en := range inc.Timeline {
		assert.NotEqual(t, incident.KindNote, en.Kind)
	}
	assert.True(t, e.auditHas("aoba-admin", "request", "denied", "/incidents/"+id+"/records"))
	// The lang switch never redirects off the site, tab tricks included.
	for _, back := range []string{"//evil.example/", "/\t/evil.example/", "https://evil.example/"} {
		res, err := c.http.Get(e.srv.URL + "/lang?to=en&back=" + url.QueryEscape(back))
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, "/dashboard", res.Header.Get("Location"), back)
	}
}

func TestEventSearchFilters(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	require.Equal(t, http.StatusSeeOther, c.loginForm("soc", testPassword))
	_, body := c.get("/events?terminal=127.0.1.6")
	assert.Contains(t, body, "127.0.1.6")
	assert.NotContains(t, body, "127.0.1.5")
	assert.NotContains(t, body, "secret-midori")
	_, body = c.get("/events?verdict=sinkhole&tenant=midori")
	assert.Contains(t, body, "secret-midori")
	assert.NotContains(t, body, "127.0.1.")
	_, body = c.get("/events?module=dns&since=2000-01-01&until=2000-01-02")
	assert.NotContains(t, body, "secret-midori", "outside the time range")
	code, _ := c.get("/events?since=yesterday")
	assert.Equal(t, http.StatusBadRequest, code)
}
