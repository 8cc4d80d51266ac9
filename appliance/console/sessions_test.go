package console

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// restart builds a new Console over the same files (accounts, audit log,
// sessions, requests) and points the env at it, as a restarted appliance.
func (e *env) restart(mod func(*Config)) {
	e.t.Helper()
	cfg := e.c.cfg
	cfg.Now = nil
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	require.NoError(e.t, err)
	e.c = c
	e.srv = httptest.NewServer(c.Handler())
	e.t.Cleanup(e.srv.Close)
}

// TestSessionsSurviveRestart: a logged-in browser and API client stay
// logged in across a restart; the file holds no usable cookie; a logout
// before the restart stays a logout after it.
func TestSessionsSurviveRestart(t *testing.T) {
	e := newEnv(t, nil)
	page := e.client()
	require.Equal(t, http.StatusSeeOther, page.loginForm("aoba-admin", testPassword))
	api := e.client()
	require.Equal(t, http.StatusOK, api.apiLogin("soc", testPassword))
	gone := e.client()
	require.Equal(t, http.StatusSeeOther, gone.loginForm("midori-admin", testPassword))
	tok := gone.pageCSRF("/dashboard")
	code, _, _ := gone.postForm("/logout", map[string][]string{"csrf": {tok}})
	require.Equal(t, http.StatusSeeOther, code)

	b, err := os.ReadFile(e.c.cfg.SessionsPath)
	require.NoError(t, err)
	st, err := os.Stat(e.c.cfg.SessionsPath)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	u, _ := url.Parse(e.srv.URL)
	for _, ck := range page.http.Jar.Cookies(u) {
		if ck.Name == cookieSession {
			assert.NotContains(t, string(b), ck.Value, "only the cookie's hash is stored")
		}
	}

	e.restart(nil)
	code, body := page.get("/dashboard")
	assert.Equal(t, http.StatusOK, code, "the browser session survived")
	assert.Contains(t, body, "aoba-admin")
	code, _ = api.api("GET", "/api/v1/me", nil)
	assert.Equal(t, http.StatusOK, code)
	// The CSRF token survived with it: an action works.
	code, _ = api.api("POST", "/api/v1/incidents/"+e.ids["aoba"][0]+"/records", map[string]string{"kind": "note", "text": "after restart"})
	assert.Equal(t, http.StatusOK, code)
	code, _ = gone.get("/dashboard")
	assert.Equal(t, http.StatusSeeOther, code, "logged out stays logged out")

	// A removed account's session does not come back.
	require.NoError(t, e.acc.Remove("aoba-admin"))
	e.restart(nil)
	code, _ = page.get("/dashboard")
	assert.Equal(t, http.StatusSeeOther, code)

	// Expired sessions are not restored.
	e.restart(func(c *Config) {
		c.Now = func() time.Time { return time.Now().Add(13 * time.Hour) }
	})
	code, _ = api.api("GET", "/api/v1/me", nil)
	assert.Equal(t, http.StatusUnauthorized, code)
}

// TestSessionsFileDamaged: a damaged file logs everyone out but the
// console starts.
func TestSessionsFileDamaged(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	require.Equal(t, http.StatusSeeOther, c.loginForm("aoba-admin", testPassword))
	require.NoError(t, os.WriteFile(e.c.cfg.SessionsPath, []byte(`[{"key":"zz"`), 0o600))
	e.restart(nil)
	code, _ := c.get("/dashboard")
	assert.Equal(t, http.StatusSeeOther, code)
	assert.Equal(t, http.StatusSeeOther, c.loginForm("aoba-admin", testPassword))
}

// TestLoginThrottledPerAddress: failures spread over many accounts from
// one address block that address, even for an account with the right
// password; another address (behind a trusted proxy, by X-Forwarded-For)
// is not affected.
func TestLoginThrottledPerAddress(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.AddrLockoutAfter = 4
		c.LockoutAfter = 10
		c.TrustProxy = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	users := []string{"nobody1", "nobody2", "aoba-view", "nobody3"}
	for i, u := range users {
		code := e.client().apiLoginFrom("192.0.2.7", u, "wrong password")
		assert.Equal(t, http.StatusUnauthorized, code, "attempt %d", i)
	}
	assert.Equal(t, http.StatusTooManyRequests, e.client().apiLoginFrom("192.0.2.7", "soc", testPassword), "the address is blocked")
	assert.Equal(t, http.StatusOK, e.client().apiLoginFrom("192.0.2.8", "soc", testPassword), "another address is not")
	// IPv6: the /64 is one client.
	for i := range 4 {
		e.client().apiLoginFrom(fmt.Sprintf("2001:db8:1:2::%x", i+1), "nobody", "wrong password")
	}
	assert.Equal(t, http.StatusTooManyRequests, e.client().apiLoginFrom("2001:db8:1:2::ff", "soc", testPassword))
	assert.Equal(t, http.StatusOK, e.client().apiLoginFrom("2001:db8:1:3::1", "soc", testPassword))
	blocked, err := e.audit.Entries(func(a *AuditEntry) bool {
		return a.Remote == "192.0.2.7" && strings.Contains(a.Detail, "address blocked")
	})
	require.NoError(t, err)
	assert.NotEmpty(t, blocked, "the audit log has the client address, not the proxy's")
}

// TestForwardedForOnlyFromTrustedProxy: without TrustProxy the header is
// ignored (a client cannot pick its own throttle key).
func TestForwardedForOnlyFromTrustedProxy(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AddrLockoutAfter = 2; c.LockoutAfter = 10 })
	e.client().apiLoginFrom("192.0.2.1", "x1", "wrong password")
	e.client().apiLoginFrom("192.0.2.2", "x2", "wrong password")
	assert.Equal(t, http.StatusTooManyRequests, e.client().apiLoginFrom("192.0.2.3", "soc", testPassword),
		"all three came from 127.0.0.1")
}

// apiLoginFrom logs in through the API with X-Forwarded-For: addr.
func (c *client) apiLoginFrom(addr, user, password string) int {
	c.t.Helper()
	req, err := http.NewRequest("POST", c.e.srv.URL+"/api/v1/session",
		strings.NewReader(fmt.Sprintf(`{"user":%q,"password":%q}`, user, password)))
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", "203.0.113.99, "+addr)
	res, err := c.http.Do(req)
	require.NoError(c.t, err)
	res.Body.Close()
	return res.StatusCode
}
