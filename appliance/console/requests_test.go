package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type upFile struct {
	name string
	body []byte
}

// multipartBody builds a multipart/form-data body. File names are
// written raw into the part header (as a hostile client could), not
// escaped the way mime/multipart's CreateFormFile would.
func multipartBody(t testing.TB, fields url.Values, files []upFile) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, vs := range fields {
		for _, v := range vs {
			require.NoError(t, mw.WriteField(k, v))
		}
	}
	for _, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="`+strings.NewReplacer(`"`, `\"`, `\`, `\\`).Replace(f.name)+`"`)
		h.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(h)
		require.NoError(t, err)
		_, err = w.Write(f.body)
		require.NoError(t, err)
	}
	require.NoError(t, mw.Close())
	return mw.FormDataContentType(), buf.Bytes()
}

// postMultipart posts a multipart form; extra headers (X-CSRF-Token for
// the API) are set when given.
func (c *client) postMultipart(path string, fields url.Values, files []upFile, hdr ...string) (int, string, http.Header) {
	c.t.Helper()
	ct, body := multipartBody(c.t, fields, files)
	req, err := http.NewRequest("POST", c.e.srv.URL+path, bytes.NewReader(body))
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", ct)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

var requestLoc = regexp.MustCompile(`^/requests/(R[0-9]{8}-[0-9a-f]{8})\?done=new$`)

// fileRequest files a request through the page as the logged-in user and
// returns its id.
func (c *client) fileRequest(fields url.Values, files []upFile) string {
	c.t.Helper()
	fields.Set("csrf", c.pageCSRF("/requests"))
	code, body, h := c.postMultipart("/requests", fields, files)
	require.Equal(c.t, http.StatusSeeOther, code, body)
	m := requestLoc.FindStringSubmatch(h.Get("Location"))
	require.NotNil(c.t, m, h.Get("Location"))
	return m[1]
}

// waitMails waits until addr has received n mails and returns them.
func (e *env) waitMails(addr string, n int) {
	e.t.Helper()
	require.Eventually(e.t, func() bool { return len(e.mailsTo(addr)) >= n }, 10*time.Second, 20*time.Millisecond,
		"%d mail(s) to %s", n, addr)
}

// TestRequestFlow: a tenant admin files a settings-change request with an
// attachment; the operators' address gets a mail; an operator comments
// and moves it to in_progress; the tenant's contact gets a mail and the
// tenant sees the comment and downloads the file as an attachment.
func TestRequestFlow(t *testing.T) {
	e := newEnv(t, nil)
	ta := e.client()
	require.Equal(t, http.StatusSeeOther, ta.loginForm("aoba-admin", testPassword))
	pdf := bytes.Repeat([]byte("%PDF-1.4 fake pdf\n"), 500)
	id := ta.fileRequest(url.Values{"kind": {"change"}, "subject": {"WAFの除外ルール追加のお願い"}, "body": {"/form/post で誤検知があります。"}},
		[]upFile{{"申請書.pdf", pdf}})

	got, err := e.reqs.Get(id)
	require.NoError(t, err)
	assert.Equal(t, "aoba", got.Tenant)
	assert.Equal(t, KindChange, got.Kind)
	assert.Equal(t, StatusReceived, got.Status)
	require.NotNil(t, got.Due, "a settings change is due by the next business day")
	assert.True(t, got.Due.After(got.Created))
	assert.Contains(t, []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}, got.Due.In(time.Local).Weekday())
	require.Len(t, got.Attachments, 1)
	assert.Equal(t, "申請書.pdf", got.Attachments[0].Name)
	assert.Equal(t, int64(len(pdf)), got.Attachments[0].Size)
	blob, err := os.ReadFile(filepath.Join(e.dir, "requests", id, "1"))
	require.NoError(t, err)
	assert.Equal(t, pdf, blob, "stored under its number, not its name")

	e.waitMails("soc-desk@cloud.example.jp", 1)
	m := e.mailsTo("soc-desk@cloud.example.jp")[0]
	assert.Contains(t, m.Subject(), id)
	assert.Contains(t, m.Subject(), "設定変更依頼")
	assert.Contains(t, m.Text(), "WAFの除外ルール追加のお願い")
	assert.Contains(t, m.Text(), "https://console.example.jp/requests/"+id)
	assert.Empty(t, e.mailsTo("security@aoba.example.jp"), "the tenant's own update is not mailed back to it")

	// The operator sees it among all tenants, comments and changes the status.
	op := e.client()
	require.Equal(t, http.StatusSeeOther, op.loginForm("soc", testPassword))
	_, list := op.get("/requests")
	assert.Contains(t, list, id)
	assert.Contains(t, list, "あおば市")
	tok := op.pageCSRF("/requests/" + id)
	code, body, _ := op.postMultipart("/requests/"+id+"/comments",
		url.Values{"csrf": {tok}, "text": {"承知しました。本日中に設定します。"}, "status": {"in_progress"}}, nil)
	require.Equal(t, http.StatusSeeOther, code, body)
	e.waitMails("security@aoba.example.jp", 1)
	tm := e.mailsTo("security@aoba.example.jp")[0]
	assert.Contains(t, tm.Text(), "承知しました。本日中に設定します。")
	assert.Contains(t, tm.Text(), "対応中")

	// The tenant sees the comment and the new status.
	_, page := ta.get("/requests/" + id)
	assert.Contains(t, page, "承知しました。本日中に設定します。")
	assert.Contains(t, page, "対応中")
	assert.Contains(t, page, `href="/requests/`+id+`/files/1"`)

	// And in English.
	code, _ = ta.get("/lang?to=en&back=/requests")
	require.Equal(t, http.StatusSeeOther, code)
	_, page = ta.get("/requests/" + id)
	assert.Contains(t, page, "In progress")
	assert.Contains(t, page, "Settings-change request")
	assert.NotContains(t, page, "status.", "no message key shown raw")
	assert.NotContains(t, page, "side.")

	// Download: an attachment, never rendered.
	res, err := ta.http.Get(e.srv.URL + "/requests/" + id + "/files/1")
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, pdf, b)
	assert.Equal(t, "application/octet-stream", res.Header.Get("Content-Type"))
	assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	disp, params, err := mime.ParseMediaType(res.Header.Get("Content-Disposition"))
	require.NoError(t, err)
	assert.Equal(t, "attachment", disp)
	assert.Equal(t, "申請書.pdf", params["filename"])

	// The same through the API: the tenant replies with a file.
	api := e.client()
	require.Equal(t, http.StatusOK, api.apiLogin("aoba-admin", testPassword))
	code, body, _ = api.postMultipart("/api/v1/requests/"+id+"/attachments", url.Values{"text": {"設定値の一覧です"}},
		[]upFile{{"list.csv", []byte("a,b\n")}}, "X-CSRF-Token", api.csrf)
	require.Equal(t, http.StatusOK, code, body)
	var after Request
	require.NoError(t, json.Unmarshal([]byte(body), &after))
	require.Len(t, after.Attachments, 2)
	assert.Equal(t, StatusInProgress, after.Status)
	e.waitMails("soc-desk@cloud.example.jp", 2)

	for _, a := range []string{"request.create", "request.comment", "request.download", "request.notify"} {
		assert.True(t, e.auditHas("", a, "success", ""), a)
	}
	assert.True(t, e.auditHas("soc", "request.comment", "success", "request:"+id))
}

// TestRequestIsolation tries every request page and API endpoint with the
// other tenant's request: 404 like an unknown id, audited; a viewer
// cannot comment, a tenant admin cannot change the status.
func TestRequestIsolation(t *testing.T) {
	e := newEnv(t, nil)
	ta := e.client()
	require.Equal(t, http.StatusSeeOther, ta.loginForm("aoba-admin", testPassword))
	id := ta.fileRequest(url.Values{"kind": {"inquiry"}, "subject": {"aoba secret subject"}}, []upFile{{"secret.txt", []byte("aoba secret file")}})
	before, _ := e.reqs.Get(id)

	mp := e.client()
	require.Equal(t, http.StatusSeeOther, mp.loginForm("midori-admin", testPassword))
	ma := e.client()
	require.Equal(t, http.StatusOK, ma.apiLogin("midori-admin", testPassword))
	for _, p := range []string{"/requests/" + id, "/requests/" + id + "/files/1", "/requests?tenant=aoba",
		"/api/v1/requests/" + id, "/api/v1/requests/" + id + "/files/1", "/api/v1/requests?tenant=aoba"} {
		cl := mp
		if strings.HasPrefix(p, "/api/") {
			cl = ma
		}
		code, body := cl.get(p)
		assert.Equal(t, http.StatusNotFound, code, p)
		assert.NotContains(t, body, "aoba secret", p)
	}
	_, list := mp.get("/requests")
	assert.NotContains(t, list, id)
	_, list = ma.get("/api/v1/requests")
	assert.NotContains(t, list, id)
	tok := mp.pageCSRF("/requests")
	code, _, _ := mp.postMultipart("/requests/"+id+"/comments", url.Values{"csrf": {tok}, "text": {"x"}}, []upFile{{"x.txt", []byte("x")}})
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = ma.api("POST", "/api/v1/requests/"+id+"/comments", map[string]string{"text": "x"})
	assert.Equal(t, http.StatusNotFound, code)
	code, _, _ = ma.postMultipart("/api/v1/requests/"+id+"/attachments", nil, []upFile{{"x.txt", []byte("x")}}, "X-CSRF-Token", ma.csrf)
	assert.Equal(t, http.StatusNotFound, code)
	// Filing for another tenant.
	code, _, _ = mp.postMultipart("/requests", url.Values{"csrf": {tok}, "tenant": {"aoba"}, "kind": {"inquiry"}, "subject": {"x"}}, nil)
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = ma.api("POST", "/api/v1/requests", RequestInput{Tenant: "aoba", Kind: KindInquiry, Subject: "x"})
	assert.Equal(t, http.StatusNotFound, code)

	after, _ := e.reqs.Get(id)
	assert.Equal(t, len(before.Comments), len(after.Comments))
	assert.Len(t, e.reqs.List("aoba"), 1, "nothing filed for aoba by midori")
	for _, a := range []string{"request.view", "request.download", "request.list", "request.comment", "tenant.view"} {
		assert.True(t, e.auditHas("midori-admin", a, "denied", ""), a)
	}

	// A viewer reads its tenant's request but cannot comment.
	v := e.client()
	require.Equal(t, http.StatusSeeOther, v.loginForm("aoba-view", testPassword))
	code, page := v.get("/requests/" + id)
	require.Equal(t, http.StatusOK, code)
	assert.NotContains(t, page, `id="comment-form"`)
	code, _, _ = v.postMultipart("/requests/"+id+"/comments", url.Values{"csrf": {v.pageCSRF("/requests")}, "text": {"x"}}, nil)
	assert.Equal(t, http.StatusForbidden, code)
	assert.True(t, e.auditHas("aoba-view", "request.comment", "denied", "request:"+id))
	// A tenant admin cannot change the status.
	code, _, _ = ta.postMultipart("/requests/"+id+"/comments", url.Values{"csrf": {ta.pageCSRF("/requests")}, "status": {"done"}}, nil)
	assert.Equal(t, http.StatusForbidden, code)
	assert.True(t, e.auditHas("aoba-admin", "request.status", "denied", "request:"+id))
	// CSRF: a multipart post without the token.
	code, _, _ = ta.postMultipart("/requests/"+id+"/comments", url.Values{"text": {"x"}}, nil)
	assert.Equal(t, http.StatusForbidden, code)
	assert.True(t, e.auditHas("aoba-admin", "csrf", "denied", "/requests/"+id+"/comments"))
}

// TestUploadRefusals: an oversized upload is refused with a clear message
// and an audit entry; names with a path or control characters are
// refused; a name with markup is kept, escaped on the page and encoded in
// Content-Disposition.
func TestUploadRefusals(t *testing.T) {
	e := newEnv(t, nil) // MaxUpload 1 MiB
	ta := e.client()
	require.Equal(t, http.StatusSeeOther, ta.loginForm("aoba-admin", testPassword))
	id := ta.fileRequest(url.Values{"kind": {"inquiry"}, "subject": {"files"}}, nil)
	tok := ta.pageCSRF("/requests/" + id)

	big := bytes.Repeat([]byte("x"), 3<<20)
	code, body, _ := ta.postMultipart("/requests/"+id+"/comments", url.Values{"csrf": {tok}}, []upFile{{"big.bin", big}})
	assert.Equal(t, http.StatusRequestEntityTooLarge, code)
	assert.Contains(t, body, "ファイルが大きすぎます。添付ファイルは合計 1 MB までです。")
	assert.True(t, e.auditHas("aoba-admin", "request.upload", "denied", "/requests/"+id+"/comments"))
	// Just over the limit, inside the body slack: refused by the file check.
	code, _, _ = ta.postMultipart("/requests/"+id+"/comments", url.Values{"csrf": {tok}}, []upFile{{"a.bin", big[:600<<10]}, {"b.bin", big[:600<<10]}})
	assert.Equal(t, http.StatusRequestEntityTooLarge, code)
	api := e.client()
	require.Equal(t, http.StatusOK, api.apiLogin("aoba-admin", testPassword))
	code, body, _ = api.postMultipart("/api/v1/requests/"+id+"/attachments", nil, []upFile{{"big.bin", big}}, "X-CSRF-Token", api.csrf)
	assert.Equal(t, http.StatusRequestEntityTooLarge, code, body)

	for _, name := range []string{"../../etc/passwd", `..\..\windows\win.ini`, "a/b.txt", "/etc/shadow", "rtl\u202egnp.exe", "tab\tname",
		"..", strings.Repeat("長", 100) + ".txt"} {
		code, body, _ := ta.postMultipart("/requests/"+id+"/comments", url.Values{"csrf": {tok}}, []upFile{{name, []byte("x")}})
		assert.Equal(t, http.StatusBadRequest, code, "%q", name)
		assert.Contains(t, body, "このファイル名は使えません", "%q", name)
	}
	// NUL and CR LF break the part header itself: the form is refused.
	for _, name := range []string{"evil\x00.txt", "line\r\nX-Evil: 1.txt"} {
		code, body, _ := ta.postMultipart("/requests/"+id+"/comments", url.Values{"csrf": {tok}}, []upFile{{name, []byte("x")}})
		assert.Equal(t, http.StatusBadRequest, code, "%q", name)
		assert.Contains(t, body, "入力内容を確認してください", "%q", name)
	}
	assert.True(t, e.auditHas("aoba-admin", "request.upload", "denied", "file:../../etc/passwd"))
	r, _ := e.reqs.Get(id)
	assert.Empty(t, r.Attachments, "nothing kept from refused uploads")
	entries, err := os.ReadDir(filepath.Join(e.dir, "requests"))
	require.NoError(t, err)
	for _, en := range entries {
		assert.True(t, strings.HasPrefix(en.Name(), "R"), "only request files and folders: %s", en.Name())
	}
	xss := `"><img src=x onerror=alert(1)>.html`
	code, _, _ = ta.postMultipart("/requests/"+id+"/comments", url.Values{"csrf": {tok}}, []upFile{{xss, []byte("<script>alert(1)</script>")}})
	require.Equal(t, http.StatusSeeOther, code)
	_, page := ta.get("/requests/" + id)
	assert.NotContains(t, page, "<img src=x")
	assert.Contains(t, page, html.EscapeString(xss))
	res, err := ta.http.Get(e.srv.URL + "/requests/" + id + "/files/1")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, "application/octet-stream", res.Header.Get("Content-Type"))
	assert.Contains(t, res.Header.Get("Content-Security-Policy"), "sandbox")
	_, params, err := mime.ParseMediaType(res.Header.Get("Content-Disposition"))
	require.NoError(t, err)
	assert.Equal(t, xss, params["filename"], "the header round-trips the name; nothing breaks out")

	// Download names are numbers: traversal and junk are 404.
	for _, n := range []string{"0", "2", "01", "-1", "..%2F..%2Faccounts.json", "1.", "%2e%2e"} {
		code, _ := ta.get("/requests/" + id + "/files/" + n)
		assert.Equal(t, http.StatusNotFound, code, n)
	}
	assert.True(t, e.auditHas("aoba-admin", "request.download", "denied", ""))
}

// TestRequestsSurviveRestart: requests, threads and attachments are on
// disk and load again.
func TestRequestsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	rs, err := OpenRequests(RequestsConfig{Dir: dir})
	require.NoError(t, err)
	r, err := rs.Create(NewRequest{Tenant: "aoba", Kind: KindInquiry, Subject: "s", Body: "b", By: "u", Side: "tenant"})
	require.NoError(t, err)
	_, err = rs.Update(r.ID, "soc", "operator", "ok", StatusDone, []Upload{{Name: "a.txt", Body: strings.NewReader("hello")}}, 1<<20)
	require.NoError(t, err)
	// A failed update keeps nothing.
	_, err = rs.Update(r.ID, "soc", "operator", "big", "", []Upload{{Name: "b.txt", Body: strings.NewReader("0123456789")}}, 5)
	require.ErrorIs(t, err, ErrTooLarge)

	again, err := OpenRequests(RequestsConfig{Dir: dir})
	require.NoError(t, err)
	got, err := again.Get(r.ID)
	require.NoError(t, err)
	assert.Equal(t, StatusDone, got.Status)
	require.Len(t, got.Comments, 1)
	assert.Equal(t, "ok", got.Comments[0].Text)
	require.Len(t, got.Attachments, 1)
	f, a, err := again.Open(r.ID, 1)
	require.NoError(t, err)
	b, _ := io.ReadAll(f)
	f.Close()
	assert.Equal(t, "hello", string(b))
	assert.Equal(t, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", a.SHA256)
	_, err = os.Stat(filepath.Join(dir, r.ID, "2"))
	assert.True(t, os.IsNotExist(err), "the refused file was removed")
}

func TestNextBusinessDay(t *testing.T) {
	jst := time.FixedZone("JST", 9*3600)
	for _, c := range []struct{ at, want string }{
		{"2026-11-20 10:00", "2026-11-23"}, // Friday → Monday
		{"2026-11-21 10:00", "2026-11-23"}, // Saturday → Monday
		{"2026-11-23 23:00", "2026-11-24"}, // Monday → Tuesday
	} {
		at, _ := time.ParseInLocation("2006-01-02 15:04", c.at, jst)
		got := nextBusinessDayEnd(at, jst)
		assert.Equal(t, c.want+" 23:59:59", got.Format("2006-01-02 15:04:05"), c.at)
	}
}

func TestMailHeaderInjection(t *testing.T) {
	m := &SMTPMailer{Addr: "127.0.0.1:1", From: "soc@cloud.example.jp"}
	b := string(m.compose([]string{"a@example.jp"}, "件名\r\nBcc: victim@example.com", "text"))
	head, _, _ := strings.Cut(b, "\r\n\r\n")
	assert.NotContains(t, head, "\r\nBcc:")
	for _, line := range strings.Split(head, "\r\n") {
		assert.Regexp(t, `^[A-Za-z-]+: `, line, "every header line is a field of its own")
	}
	require.Error(t, m.Mail(t.Context(), []string{"a@example.jp>\r\nRCPT TO:<x@example.com"}, "s", "t"))
	fmt.Fprint(io.Discard, b)
}
