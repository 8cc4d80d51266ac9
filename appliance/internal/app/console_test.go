package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/appliance/console"
	"github.com/jichitai/seccloud/detect/report"
	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
)

const consoleYAML = `version: 1
data_dir: data
listen: {console: "127.0.0.1:0"}
functions: {proxy: false, dns: false, mail: false, waf: false}
tenants:
  - id: aoba
    name: あおば市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    accounts:
      - {name: aoba-admin, role: admin}
  - id: midori
    name: みどり町
    networks: [127.0.2.0/24]
    egress_addr: 127.0.0.1
`

// TestConsoleServedOnConsoleListener: an account made with the account
// command logs in on the appliance's console listener and reads its
// tenant's settings, not the other tenant's; /healthz and the loopback
// /api/incidents still answer.
func TestConsoleServedOnConsoleListener(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(consoleYAML), 0o600))
	var out bytes.Buffer
	ad := &Admin{ConfigPath: cfgPath, Out: &out}
	require.ErrorContains(t, ad.AccountAdd("aoba-admin", "midori", console.RoleAdmin, false, strings.NewReader("long password 1\n")),
		"declared in the configuration")
	require.ErrorContains(t, ad.AccountAdd("x", "nowhere", console.RoleAdmin, false, strings.NewReader("long password 1\n")),
		"not in the configuration")
	require.NoError(t, ad.AccountAdd("aoba-admin", "aoba", console.RoleAdmin, false, strings.NewReader("long password 1\n")))
	require.NoError(t, ad.AccountAdd("soc", "", console.RoleOperator, true, strings.NewReader("long password 2\n")))
	assert.Contains(t, out.String(), "otpauth://totp/seccloud:soc?")
	out.Reset()
	require.NoError(t, ad.AccountList())
	assert.Regexp(t, regexp.MustCompile(`aoba-admin\s+admin\s+aoba`), out.String())

	a, err := New(Options{ConfigPath: cfgPath, Log: io.Discard})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, 10*time.Second) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	base := "http://" + a.ConsoleAddr()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	res, err := hc.Post(base+"/api/v1/session", "application/json", strings.NewReader(`{"user":"aoba-admin","password":"long password 1"}`))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	get := func(path string) (int, string) {
		res, err := hc.Get(base + path)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	code, body := get("/api/v1/tenants")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "あおば市")
	assert.NotContains(t, body, "midori")
	code, _ = get("/api/v1/tenants/midori")
	assert.Equal(t, http.StatusNotFound, code)
	code, body = get("/dashboard")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "incidents: up")
	// The monthly report, scoped to the own tenant, from detect/report.
	month := time.Now().In(report.JST).Format("2006-01")
	code, body = get("/reports/monthly?format=csv&month=" + month)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "section,tenant,key,item,value")
	assert.NotContains(t, body, "midori")
	code, _ = get("/reports/monthly?format=csv&tenant=midori&month=" + month)
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = get("/healthz")
	assert.Equal(t, http.StatusOK, code)
	code, _ = get("/api/incidents")
	assert.Equal(t, http.StatusOK, code)

	b, err := os.ReadFile(filepath.Join(dir, "data", "console", console.AuditFile))
	require.NoError(t, err)
	assert.Contains(t, string(b), `"action":"account.add"`)
	assert.Contains(t, string(b), `"action":"login"`)
	assert.Contains(t, string(b), `"action":"tenant.view","target":"tenant:midori","outcome":"denied"`)
}

// TestDemoBootstrapAccounts: the embedded demo's first start creates the
// operator and the demo's declared accounts and logs their passwords once.
func TestDemoBootstrapAccounts(t *testing.T) {
	cfg, err := config.LoadDemo()
	require.NoError(t, err)
	var logBuf bytes.Buffer
	a := &App{log: slog.New(slog.NewJSONHandler(&logBuf, nil))}
	accts, err := console.OpenAccounts(console.AccountsConfig{Path: filepath.Join(t.TempDir(), console.AccountsFile)})
	require.NoError(t, err)
	require.NoError(t, a.bootstrapAccounts(cfg, accts))
	pw := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(logBuf.String()), "\n") {
		var rec struct{ User, Password string }
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		pw[rec.User] = rec.Password
	}
	require.Contains(t, pw, "operator")
	require.Contains(t, pw, "aoba-admin")
	acc, ok := accts.Verify("operator", pw["operator"])
	require.True(t, ok)
	assert.Equal(t, console.RoleOperator, acc.Role)
	acc, ok = accts.Verify("aoba-admin", pw["aoba-admin"])
	require.True(t, ok)
	assert.Equal(t, "aoba", acc.Tenant)
	assert.Equal(t, console.RoleAdmin, acc.Role)
}

// TestConsoleQuarantineRelease: an ad quarantined by the running relay is
// listed for its tenant's admin on the console (not for the other
// tenant), viewed as text, and released with a reason; the original then
// reaches the tenant's mail server.
func TestConsoleQuarantineRelease(t *testing.T) {
	mx, err := mailrelaytest.NewSink()
	require.NoError(t, err)
	t.Cleanup(func() { mx.Close() })
	a, ctx := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0", smtp: "127.0.0.1:0"}
functions: {proxy: false, dns: false, waf: false}
mail:
  hostname: relay.test
  spam: true
  policy: {spam_reject: 100}
  tenant_policies:
    - tenant: tsu
      policy: {ads: quarantine}
tenants:
  - id: tsu
    name: 津市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    mail_domains: [city.tsu.example.jp]
    mail_servers: ["`+mx.Addr+`"]
  - id: ise
    name: 伊勢市
    networks: [127.0.2.0/24]
    egress_addr: 127.0.0.1
`)
	ad := &Admin{ConfigPath: a.opts.ConfigPath, Out: io.Discard}
	require.NoError(t, ad.AccountAdd("tsu-admin", "tsu", console.RoleAdmin, false, strings.NewReader("tsu password 123\n")))
	require.NoError(t, ad.AccountAdd("ise-admin", "ise", console.RoleAdmin, false, strings.NewReader("ise password 123\n")))

	addr := startedService[*mailService](t, a).addr
	msg := "From: shop@store.example\r\nTo: yamada@city.tsu.example.jp\r\nSubject: =?UTF-8?B?44CQ5bqD5ZGK44CRPHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0PiBzYWxl?=\r\n" +
		"Date: Mon, 2 Nov 2026 10:00:00 +0900\r\nMessage-ID: <ad2@store.example>\r\nList-Unsubscribe: <mailto:u@store.example>\r\n" +
		"Content-Type: text/html\r\n\r\n<html><body onload=alert(2)><b>sale</b></body></html>\r\n"
	require.NoError(t, smtp.SendMail(addr, nil, "shop@store.example", []string{"yamada@city.tsu.example.jp"}, []byte(msg)))

	login := func(user, pw string) (*http.Client, string) {
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar}
		res, err := hc.Post("http://"+a.ConsoleAddr()+"/api/v1/session", "application/json",
			strings.NewReader(`{"user":"`+user+`","password":"`+pw+`"}`))
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		var me console.Me
		require.NoError(t, json.NewDecoder(res.Body).Decode(&me))
		return hc, me.CSRF
	}
	get := func(hc *http.Client, path string) (int, string) {
		res, err := hc.Get("http://" + a.ConsoleAddr() + path)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	tsu, csrf := login("tsu-admin", "tsu password 123")
	var list []console.QuarantinedMail
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, last = get(tsu, "/api/v1/quarantine")
		if json.Unmarshal([]byte(last), &list) == nil && len(list) == 1 {
			break
		}
	}
	require.Len(t, list, 1, "last answer: %s; mx got %d", last, len(mx.Messages()))
	id := list[0].ID
	assert.Equal(t, "ad", list[0].Reason)
	code, page := get(tsu, "/quarantine/"+id)
	require.Equal(t, http.StatusOK, code)
	assert.NotContains(t, page, "<script>alert(1)")
	assert.NotContains(t, page, "<body onload")
	assert.Contains(t, page, "【広告】&lt;script&gt;alert(1)&lt;/script&gt; sale")

	ise, _ := login("ise-admin", "ise password 123")
	code, _ = get(ise, "/api/v1/quarantine/"+id)
	assert.Equal(t, http.StatusNotFound, code)
	_, body := get(ise, "/api/v1/quarantine")
	assert.NotContains(t, body, id)

	req, _ := http.NewRequest("POST", "http://"+a.ConsoleAddr()+"/api/v1/quarantine/"+id+"/release",
		strings.NewReader(`{"reason":"正規の案内メールと確認"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	res, err := tsu.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	got := mx.Wait(wctx, 1)
	require.Len(t, got, 1)
	assert.Contains(t, string(got[0].Data), "ad2@store.example")
}
