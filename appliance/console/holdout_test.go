package console

import (
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// holdoutPayloads loads attack payloads of the gotestwaf corpus in
// ../shared/testdata (the WAF's held-out set): XSS, SQL injection, path
// traversal, CRLF, template, shell, mail, NoSQL, LDAP, XML and SSI
// injection, RCE. Padded 8-128 KB cases
// are left out (the forms cap fields well below).
func holdoutPayloads(t *testing.T) []string {
	var root string
	for _, d := range []string{"../../../shared/testdata", "../../../../shared/testdata", "/work/shared/testdata"} {
		if st, err := os.Stat(filepath.Join(d, "gotestwaf", "testcases")); err == nil && st.IsDir() {
			root = filepath.Join(d, "gotestwaf", "testcases")
			break
		}
	}
	if root == "" {
		t.Skip("shared testdata (gotestwaf corpus) not found")
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range []string{"owasp/xss-scripting", "owasp/sql-injection", "owasp/path-traversal", "owasp/crlf",
		"owasp/sst-injection", "owasp/shell-injection", "community/community-xss", "community/community-sqli",
		"community/community-lfi", "owasp/rce", "owasp/mail-injection", "owasp/nosql-injection", "owasp/ldap-injection",
		"owasp/xml-injection", "owasp/ss-include", "community/community-rce"} {
		b, err := os.ReadFile(filepath.Join(root, f+".yml"))
		require.NoError(t, err)
		var tc struct {
			Payload []string `yaml:"payload"`
		}
		require.NoError(t, yaml.Unmarshal(b, &tc), f)
		for _, p := range tc.Payload {
			if p != "" && len(p) <= 4000 && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	require.Greater(t, len(out), 100)
	return out
}

// markup reports whether s holds characters that would matter unescaped
// in HTML.
func markup(s string) bool { return strings.ContainsAny(s, `<>"'&`) }

// TestHoldoutPayloadsOnForms runs the held-out attack payloads through
// every form and search field of the requests and sites pages, and the
// search fields of the other pages: no answer is a 5xx; what is
// accepted is shown as text (present once unescaped, never raw); what is
// refused is refused with a 4xx.
func TestHoldoutPayloadsOnForms(t *testing.T) {
	payloads := holdoutPayloads(t)
	e := newEnv(t, func(c *Config) { c.Mailer = nil }) // hundreds of requests: mail is tested elsewhere
	ta := e.client()
	require.Equal(t, http.StatusSeeOther, ta.loginForm("aoba-admin", testPassword))
	tok := ta.pageCSRF("/requests")
	id := ta.fileRequest(url.Values{"kind": {"inquiry"}, "subject": {"holdout"}}, nil)

	no5xx := func(code int, what, p string) {
		t.Helper()
		assert.Less(t, code, 500, "%s: %q", what, p)
	}
	shownAsText := func(body, p, where string) {
		t.Helper()
		if markup(p) {
			assert.NotContains(t, body, p, "%s shows %q raw", where, p)
		}
	}
	accepted := 0
	var files string
	for i, p := range payloads {
		// A request with the payload as subject and body.
		code, body, h := ta.postMultipart("/requests", url.Values{"csrf": {tok}, "kind": {"inquiry"}, "subject": {p}, "body": {p}}, nil)
		no5xx(code, "new request", p)
		if code == http.StatusSeeOther {
			accepted++
			loc := h.Get("Location")
			require.True(t, strings.HasPrefix(loc, "/requests/R"), loc)
			code, body = ta.get(strings.TrimSuffix(loc, "?done=new"))
			require.Equal(t, http.StatusOK, code)
			shownAsText(body, p, "request page")
			if shown := strings.TrimSpace(strings.ReplaceAll(p, "\r\n", "\n")); shown != "" {
				assert.Contains(t, html.UnescapeString(body), shown, "the body is shown")
			}
		} else {
			assert.Equal(t, http.StatusBadRequest, code, p)
			assert.Contains(t, body, "入力内容を確認してください")
		}
		// A comment, and the payload as a file name.
		code, _, _ = ta.postMultipart("/requests/"+id+"/comments", url.Values{"csrf": {tok}, "text": {p}}, nil)
		no5xx(code, "comment", p)
		if i%40 == 0 { // at most MaxAttachments files per request
			files = ta.fileRequest(url.Values{"kind": {"inquiry"}, "subject": {"file names"}}, nil)
		}
		code, body, _ = ta.postMultipart("/requests/"+files+"/comments", url.Values{"csrf": {tok}}, []upFile{{p, []byte("x")}})
		no5xx(code, "file name", p)
		if code != http.StatusSeeOther {
			assert.Equal(t, http.StatusBadRequest, code, "file name %q", p)
		}
		// Search fields.
		q := url.QueryEscape(p)
		for _, path := range []string{"/requests?q=" + q, "/requests?status=" + q, "/events?terminal=" + q + "&module=" + q + "&verdict=" + q,
			"/incidents?state=" + q + "&severity=" + q, "/sites?days=" + q, "/reports/monthly?month=" + q + "&format=" + q} {
			code, body := ta.get(path)
			no5xx(code, path, p)
			shownAsText(body, p, path)
		}
		code, _, _ = ta.postForm("/sites/purge", url.Values{"csrf": {tok}, "url": {p}})
		no5xx(code, "purge", p)
	}
	assert.Greater(t, accepted, len(payloads)/2, "most payloads are plain text to a request form")
	assert.Empty(t, e.purge.got(), "no payload reached the cache purge")

	// The thread and the lists, with everything in them.
	for _, path := range []string{"/requests/" + id, "/requests", "/dashboard"} {
		code, body := ta.get(path)
		require.Equal(t, http.StatusOK, code, path)
		for _, p := range payloads {
			shownAsText(body, p, path)
		}
		assert.NotContains(t, body, "<script")
		assert.NotContains(t, body, "<svg")
		assert.NotContains(t, body, "<img")
	}
	// The operator's view of the same.
	op := e.client()
	require.Equal(t, http.StatusSeeOther, op.loginForm("soc", testPassword))
	for _, path := range []string{"/requests/" + id, "/requests"} {
		code, body := op.get(path)
		require.Equal(t, http.StatusOK, code, path)
		for _, p := range payloads {
			shownAsText(body, p, path)
		}
	}
	// Login fields.
	for _, p := range payloads[:20] {
		code := e.client().loginForm(p, p)
		no5xx(code, "login", p)
	}
}
