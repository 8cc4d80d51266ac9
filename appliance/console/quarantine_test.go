package console

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuarantineScopedAndEscaped(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	require.Equal(t, http.StatusSeeOther, c.loginForm("aoba-admin", testPassword))
	code, body := c.get("/quarantine")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "q-aoba-1")
	assert.NotContains(t, body, "q-midori-1")
	assert.NotContains(t, body, "midori secret subject")

	code, body = c.get("/quarantine/q-aoba-1")
	require.Equal(t, http.StatusOK, code)
	for _, raw := range []string{"<script>", "<img src=x", "<svg", "<html>", "<body onload", `href="javascript:`} {
		assert.NotContains(t, body, raw, "the mail's own markup is never rendered")
	}
	assert.Contains(t, body, "&lt;script&gt;alert(&#34;subj&#34;)&lt;/script&gt;")
	assert.Contains(t, body, "&lt;body onload=")
	assert.True(t, e.auditHas("aoba-admin", "quarantine.view", "success", "mail:q-aoba-1"))

	// Another tenant's mail: 404 on view, release, delete; nothing changes.
	tok := c.pageCSRF("/quarantine/q-aoba-1")
	code, _ = c.get("/quarantine/q-midori-1")
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = c.get("/quarantine?tenant=midori")
	assert.Equal(t, http.StatusNotFound, code)
	for _, act := range []string{"release", "delete"} {
		code, _, _ = c.postForm("/quarantine/q-midori-1/"+act, url.Values{"csrf": {tok}, "reason": {"x"}})
		assert.Equal(t, http.StatusNotFound, code, act)
	}
	_, err := e.quar.Get("q-midori-1")
	require.NoError(t, err)
	assert.Empty(t, e.quar.released)
	assert.True(t, e.auditHas("aoba-admin", "quarantine.release", "denied", "mail:q-midori-1"))

	// Without a reason, without the CSRF token: refused and audited.
	code, _, _ = c.postForm("/quarantine/q-aoba-1/release", url.Values{"csrf": {tok}})
	assert.Equal(t, http.StatusBadRequest, code)
	code, _, _ = c.postForm("/quarantine/q-aoba-1/release", url.Values{"reason": {"業務上必要"}})
	assert.Equal(t, http.StatusForbidden, code)
	assert.Empty(t, e.quar.released)
	assert.True(t, e.auditHas("aoba-admin", "csrf", "denied", "/quarantine/q-aoba-1/release"))

	// Release with a reason.
	code, _, _ = c.postForm("/quarantine/q-aoba-1/release", url.Values{"csrf": {tok}, "reason": {"取引先からの正規の請求書と確認"}})
	require.Equal(t, http.StatusSeeOther, code)
	assert.Equal(t, []string{"q-aoba-1"}, e.quar.released)
	list, err := e.audit.Entries(func(a *AuditEntry) bool { return a.Action == "quarantine.release" && a.Outcome == "success" })
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "取引先からの正規の請求書と確認", list[0].Detail)

	// A viewer cannot release; the API is scoped the same way.
	v := e.client()
	require.Equal(t, http.StatusOK, v.apiLogin("aoba-view", testPassword))
	code, _ = v.api("POST", "/api/v1/quarantine/q-aoba-1/delete", map[string]string{"reason": "x"})
	assert.Equal(t, http.StatusForbidden, code)
	code, b := v.api("GET", "/api/v1/quarantine", nil)
	require.Equal(t, http.StatusOK, code)
	assert.NotContains(t, string(b), "midori")
	code, _ = v.api("GET", "/api/v1/quarantine/q-midori-1", nil)
	assert.Equal(t, http.StatusNotFound, code)

	// The operator sees both tenants and deletes with a reason.
	op := e.client()
	require.Equal(t, http.StatusOK, op.apiLogin("soc", testPassword))
	_, b = op.api("GET", "/api/v1/quarantine", nil)
	assert.Contains(t, string(b), "q-midori-1")
	code, _ = op.api("POST", "/api/v1/quarantine/q-midori-1/delete", map[string]string{"reason": "迷惑メール"})
	assert.Equal(t, http.StatusOK, code)
	_, err = e.quar.Get("q-midori-1")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.True(t, e.auditHas("soc", "quarantine.delete", "success", "mail:q-midori-1"))
}
