package console

import (
	"io"
	"io/fs"
	"net/http"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReportsScoped(t *testing.T) {
	e := newEnv(t, nil)
	ta := e.client()
	require.Equal(t, http.StatusSeeOther, ta.loginForm("aoba-admin", testPassword))
	code, body := ta.get("/reports")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "月次報告書")
	assert.NotContains(t, body, "クラウド全体", "a tenant cannot pick the whole cloud")

	// No tenant asked: the own tenant's report, never the cloud's.
	res, err := ta.http.Get(e.srv.URL + "/reports/monthly?month=2026-10&format=csv")
	require.NoError(t, err)
	b := readAll(t, res)
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "report month=2026-10 tenant=aoba format=csv", b)
	assert.Equal(t, `attachment; filename="report-aoba-2026-10.csv"`, res.Header.Get("Content-Disposition"))
	assert.True(t, e.auditHas("aoba-admin", "report.download", "success", "report:aoba:2026-10"))

	// Another tenant's: 404, audited. Bad month or format, and path
	// traversal in the month: 400, audited.
	code, body = ta.get("/reports/monthly?month=2026-10&tenant=midori")
	assert.Equal(t, http.StatusNotFound, code)
	assert.NotContains(t, body, "report month")
	assert.True(t, e.auditHas("aoba-admin", "report.download", "denied", "tenant:midori"))
	for _, q := range []string{"month=../../etc/passwd", "month=2026-13", "month=2026-10&format=exe", "month=2026-10%0d%0aX:y"} {
		code, _ = ta.get("/reports/monthly?" + q)
		assert.Equal(t, http.StatusBadRequest, code, q)
	}
	assert.True(t, e.auditHas("aoba-admin", "report.download", "denied", "report:../../etc/passwd"))

	// The API: same scope.
	api := e.client()
	require.Equal(t, http.StatusOK, api.apiLogin("aoba-view", testPassword))
	code, bb := api.api("GET", "/api/v1/reports/monthly?month=2026-10&tenant=midori", nil)
	assert.Equal(t, http.StatusNotFound, code)
	code, bb = api.api("GET", "/api/v1/reports/monthly?month=2026-10", nil)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "report month=2026-10 tenant=aoba format=html", string(bb))

	// The operator gets the whole cloud, or any tenant.
	op := e.client()
	require.Equal(t, http.StatusOK, op.apiLogin("soc", testPassword))
	_, bb = op.api("GET", "/api/v1/reports/monthly?month=2026-10&format=csv", nil)
	assert.Equal(t, "report month=2026-10 tenant=CLOUD format=csv", string(bb))
	_, bb = op.api("GET", "/api/v1/reports/monthly?month=2026-10&tenant=midori", nil)
	assert.Equal(t, "report month=2026-10 tenant=midori format=html", string(bb))
}

func TestReportsAbsentWithoutReports(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Reports = nil })
	c := e.client()
	require.Equal(t, http.StatusSeeOther, c.loginForm("soc", testPassword))
	_, body := c.get("/dashboard")
	assert.NotContains(t, body, `href="/reports"`)
	code, _ := c.get("/reports")
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = c.get("/api/v1/reports/monthly?month=2026-10")
	assert.Equal(t, http.StatusNotFound, code)
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

// TestEveryMessageKeyExists: every {{.T "key"}} of the templates has a
// Japanese and an English text.
func TestEveryMessageKeyExists(t *testing.T) {
	names, err := fs.Glob(assets, "templates/*.html")
	require.NoError(t, err)
	re := regexp.MustCompile(`\.T "([^"]+)"`)
	n := 0
	for _, name := range names {
		b, err := fs.ReadFile(assets, name)
		require.NoError(t, err)
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			n++
			msg, ok := messages[m[1]]
			if assert.True(t, ok, "%s: key %q", name, m[1]) {
				assert.NotEmpty(t, msg[0])
				assert.NotEmpty(t, msg[1])
			}
		}
	}
	assert.Greater(t, n, 50)
}
