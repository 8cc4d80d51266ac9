package mailrelay_test

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/internal/clamd"
	"github.com/jichitai/seccloud/internal/clamd/clamdtest"
	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
	"github.com/jichitai/seccloud/mailrelay/spam"
)

func scorer(t testing.TB, cfg spam.Config) *spam.Scorer {
	t.Helper()
	s, err := spam.New(cfg)
	require.NoError(t, err)
	return s
}

// contentFixture: a relay with spam scoring, a quarantine and the given
// policy changes.
func contentFixture(t testing.TB, mod func(*mailrelay.Config)) *fixture {
	t.Helper()
	return newFixture(t, func(c *mailrelay.Config) {
		c.Content.Spam = scorer(t, spam.Config{})
		c.Quarantine.Dir = t.TempDir()
		c.Content.Default.Spam.Reject = 50
		if mod != nil {
			mod(c)
		}
	})
}

const phish = "From: =?UTF-8?B?" + "5qW95aSp44Kr44O844OJ" + "?= <info@secure-notice.example>\r\nTo: user@a.example.jp\r\n" +
	"Subject: =?UTF-8?B?44CQ6YeN6KaB44CR44Ki44Kr44Km44Oz44OI44Gu5Yip55So44KS5LiA5pmC5YGc5q2i44GX44G+44GX44Gf?=\r\n" +
	"Content-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"

func phishBody() string {
	html := "<html><body><p>いつもご利用いただきありがとうございます。お客様のアカウントで異常なログインが検出されたため、ご利用を一時的に制限しております。</p>" +
		"<p>以下のリンクから24時間以内にご本人確認を行ってください。期限内にご確認いただけない場合、アカウントは永久に停止されます。</p>" +
		"<p><a href=\"http://bit.ly/3xYzAb\">ログインして確認する</a></p><p>カード番号、有効期限、セキュリティコードの再登録をお願いいたします。</p></body></html>"
	return phish + base64.StdEncoding.EncodeToString([]byte(html)) + "\r\n"
}

func hamBody(subject string) string {
	return "From: Tanaka <tanaka@partner.example>\r\nTo: user@a.example.jp\r\nSubject: " + mime.BEncoding.Encode("UTF-8", subject) +
		"\r\nDate: Mon, 2 Nov 2026 10:00:00 +0900\r\nMessage-ID: <ham1@partner.example>\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n" +
		"お世話になっております。来週の打合せの資料を共有フォルダに置きました。ご確認のほどよろしくお願いいたします。\r\n"
}

func TestSpamQuarantineReleaseAndHTTP(t *testing.T) {
	f := contentFixture(t, nil)
	cl := dial(t, f.addr, "")
	cl.expect("EHLO mx.example.net", 250)
	code, text := cl.sendMail("info@secure-notice.example", []string{"user@a.example.jp"}, phishBody())
	require.Equal(t, 250, code, text)
	assert.Contains(t, text, "quarantined")
	code, text = cl.sendMail("tanaka@partner.example", []string{"user@a.example.jp"}, hamBody("打合せ資料"))
	require.Equal(t, 250, code, text)
	assert.NotContains(t, text, "quarantined")

	got := f.sinkA.Wait(waitCtx(t), 1)
	require.Len(t, got, 1)
	assert.Contains(t, string(got[0].Data), "X-Spam-Status: No")
	assert.Contains(t, string(got[0].Data), "お世話になって"[:6])

	q := f.srv.Quarantine()
	items := q.List(mailrelay.QuarantineFilter{Tenant: "a"})
	require.Len(t, items, 1)
	it := items[0]
	assert.Equal(t, "spam", it.Reason)
	assert.Equal(t, "mail-spam", it.Rule)
	assert.GreaterOrEqual(t, it.Score, 8.0)
	assert.Equal(t, []string{"user@a.example.jp"}, it.To)

	// HTTP API: list, view, raw, release, delete; tenant scoping.
	h := q.Handler("/api/mail/quarantine", func(r *http.Request) (string, bool) { return r.Header.Get("X-Tenant"), true })
	do := func(method, path, tenant string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		r.Header.Set("X-Tenant", tenant)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := do("GET", "/api/mail/quarantine", "a")
	require.Equal(t, 200, w.Code)
	var list struct{ Items []mailrelay.QuarantineItem }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list))
	require.Len(t, list.Items, 1)
	assert.Equal(t, 403, do("GET", "/api/mail/quarantine?tenant=a", "b").Code)
	assert.Equal(t, 404, do("GET", "/api/mail/quarantine/"+it.ID, "b").Code)
	w = do("GET", "/api/mail/quarantine/"+it.ID, "a")
	require.Equal(t, 200, w.Code)
	var view mailrelay.QuarantineView
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &view))
	assert.Contains(t, view.Text, "異常なログイン")
	assert.NotEmpty(t, view.Headers)
	w = do("GET", "/api/mail/quarantine/"+it.ID+"/raw", "a")
	assert.Equal(t, "message/rfc822", w.Header().Get("Content-Type"))
	assert.Contains(t, w.Body.String(), "Received: from mx.example.net")
	w = do("POST", "/api/mail/quarantine/"+it.ID+"/release", "a")
	require.Equal(t, 200, w.Code, w.Body.String())
	got = f.sinkA.Wait(waitCtx(t), 2)
	require.Len(t, got, 2)
	assert.Equal(t, "info@secure-notice.example", got[1].From)
	assert.Contains(t, string(got[1].Data), "Content-Transfer-Encoding: base64")
	it2, _, err := q.Get(it.ID)
	require.NoError(t, err)
	assert.NotNil(t, it2.Released)
	assert.Equal(t, 200, do("DELETE", "/api/mail/quarantine/"+it.ID, "a").Code)
	assert.Equal(t, 404, do("GET", "/api/mail/quarantine/"+it.ID, "a").Code)
	assert.Equal(t, 400, do("GET", "/api/mail/quarantine/..%2fx", "a").Code)
}

func TestQuarantineDurableAndExpiry(t *testing.T) {
	qdir := t.TempDir()
	now := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	f := contentFixture(t, func(c *mailrelay.Config) {
		c.Quarantine.Dir = qdir
		c.Now = func() time.Time { return now }
	})
	cl := dial(t, f.addr, "")
	cl.expect("EHLO mx.example.net", 250)
	code, _ := cl.sendMail("info@secure-notice.example", []string{"user@a.example.jp"}, phishBody())
	require.Equal(t, 250, code)
	require.NoError(t, f.srv.Close())
	// Reopen on the same directory: the item is still there.
	f.start(t)
	q := f.srv.Quarantine()
	require.Len(t, q.List(mailrelay.QuarantineFilter{}), 1)
	assert.Equal(t, 0, q.Expire(now.Add(29*24*time.Hour)))
	assert.Equal(t, 1, q.Expire(now.Add(31*24*time.Hour)))
	assert.Empty(t, q.List(mailrelay.QuarantineFilter{}))
}

func TestAdsAttachmentsLists(t *testing.T) {
	yes := true
	f := contentFixture(t, func(c *mailrelay.Config) {
		c.Content.Default.Lists.BlockSenders = []string{"spammer.example"}
		c.Content.Tenants = map[string]mailrelay.Policy{
			"a": {Ads: mailrelay.PolicyTag, Lists: mailrelay.Lists{AllowSenders: []string{"friend@secure-notice.example"}}},
			"b": {Ads: mailrelay.PolicyQuarantine, Attachments: mailrelay.PolicyReject, Sanitize: &yes,
				Lists: mailrelay.Lists{BlockClients: []netip.Prefix{netip.MustParsePrefix("127.0.0.9/32")}}},
		}
	})
	ad := "From: shop@store.example\r\nTo: user@a.example.jp\r\nSubject: " + mime.BEncoding.Encode("UTF-8", "【広告】秋のセール") +
		"\r\nDate: Mon, 2 Nov 2026 10:00:00 +0900\r\nMessage-ID: <ad@store.example>\r\nList-Unsubscribe: <mailto:u@store.example>\r\n\r\nセール開催中です。\r\n"
	exe := "From: x@partner.example\r\nTo: user@a.example.jp\r\nSubject: invoice\r\nDate: Mon, 2 Nov 2026 10:00:00 +0900\r\nMessage-ID: <e@p>\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n" +
		"Content-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n"
	cl := dial(t, f.addr, "")
	cl.expect("EHLO mx.example.net", 250)

	// Tenant a tags ads.
	code, text := cl.sendMail("shop@store.example", []string{"user@a.example.jp"}, ad)
	require.Equal(t, 250, code)
	require.NotContains(t, text, "quarantined")
	got := f.sinkA.Wait(waitCtx(t), 1)
	require.Len(t, got, 1)
	assert.Contains(t, string(got[0].Data), "Subject: =?UTF-8?b?W+W6g+WRil0=?= =?UTF-8?b?44CQ5bqD5ZGK44CR56eL44Gu44K744O844Or?=")
	assert.Contains(t, string(got[0].Data), "X-Seccloud-Ad: ")

	// Tenant b quarantines ads.
	code, text = cl.sendMail("shop@store.example", []string{"user@b.example.jp"}, strings.Replace(ad, "a.example.jp", "b.example.jp", 1))
	require.Equal(t, 250, code)
	assert.Contains(t, text, "quarantined")
	items := f.srv.Quarantine().List(mailrelay.QuarantineFilter{Tenant: "b"})
	require.Len(t, items, 1)
	assert.Equal(t, "ad", items[0].Reason)

	// Executable: a quarantines (default), b rejects.
	code, text = cl.sendMail("x@partner.example", []string{"user@a.example.jp"}, exe)
	require.Equal(t, 250, code)
	assert.Contains(t, text, "quarantined")
	code, text = cl.sendMail("x@partner.example", []string{"user@b.example.jp"}, exe)
	assert.Equal(t, 550, code, text)
	assert.Contains(t, text, "invoice.pdf.exe")

	// Global block list; a's allow list skips spam scoring.
	cl.expect("MAIL FROM:<bad@spammer.example>", 250)
	cl.expect("RCPT TO:<user@a.example.jp>", 250)
	cl.expect("DATA", 354)
	cl.write(hamBody("hi") + ".\r\n")
	code, text = cl.read()
	assert.Equal(t, 550, code, text)
	assert.Contains(t, text, "block-listed")
	code, text = cl.sendMail("friend@secure-notice.example", []string{"user@a.example.jp"}, phishBody())
	require.Equal(t, 250, code)
	assert.NotContains(t, text, "quarantined")

	// Sanitisation for b: text only, URL defanged, original kept.
	html := "From: t@partner.example\r\nTo: user@b.example.jp\r\nSubject: report\r\nDate: Mon, 2 Nov 2026 10:00:00 +0900\r\nMessage-ID: <s@p>\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Minutes are at <a href=\"https://docs.partner.example/m\">https://docs.partner.example/m</a></p>\r\n" +
		"--b\r\nContent-Type: application/pdf; name=\"m.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
	code, text = cl.sendMail("t@partner.example", []string{"user@b.example.jp"}, html)
	require.Equal(t, 250, code, text)
	require.NotContains(t, text, "quarantined", f.srv.Quarantine().List(mailrelay.QuarantineFilter{}))
	gotB := f.sinkB.Wait(waitCtx(t), 1)
	require.Len(t, gotB, 1)
	d := string(gotB[0].Data)
	assert.Contains(t, d, "X-Seccloud-Sanitized: yes")
	assert.Contains(t, d, "Content-Type: text/plain; charset=UTF-8")
	assert.NotContains(t, d, "multipart")
	body := d[strings.Index(d, "\r\n\r\n")+4:]
	dec, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(strings.TrimSpace(body), "\r\n", ""))
	require.NoError(t, err)
	assert.Contains(t, string(dec), "hxxps://docs[.]partner[.]example/m")
	assert.Contains(t, string(dec), "m.pdf")
	assert.Contains(t, string(dec), "無害化")
	san := f.srv.Quarantine().List(mailrelay.QuarantineFilter{Reason: "sanitized"})
	require.Len(t, san, 1)
	_, orig, err := f.srv.Quarantine().Get(san[0].ID)
	require.NoError(t, err)
	assert.Contains(t, string(orig), "JVBERi0xLjQK")

	// Client block list for b.
	cl2 := dial(t, f.addr, "127.0.0.9")
	cl2.expect("EHLO mx.example.net", 250)
	code, text = cl2.sendMail("t@partner.example", []string{"user@b.example.jp"}, hamBody("x"))
	assert.Equal(t, 550, code, text)
}

func TestAttachmentTypes(t *testing.T) {
	zipWith := func(name string, encrypted bool) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Flags: map[bool]uint16{true: 1}[encrypted]})
		require.NoError(t, err)
		w.Write([]byte("data"))
		require.NoError(t, zw.Close())
		return b.Bytes()
	}
	cases := []struct {
		name, file string
		body       []byte
		bad        bool
	}{
		{"pdf", "a.pdf", []byte("%PDF-1.4"), false},
		{"docx", "a.docx", zipWith("word/document.xml", false), false},
		{"docm ext", "a.docm", []byte("x"), true},
		{"macro in docx", "a.docx", zipWith("word/vbaProject.bin", false), true},
		{"encrypted zip", "a.zip", zipWith("a.txt", true), true},
		{"exe in zip", "a.zip", zipWith("setup.exe", false), true},
		{"js", "run.js", []byte("x"), true},
		{"lnk", "doc.lnk", []byte("x"), true},
		{"MZ renamed", "photo.jpg", append([]byte("MZ"), make([]byte, 100)...), true},
		{"pdf plain", "b.pdf", []byte("%PDF-1.7\n1 0 obj\n<< /Type /Catalog /OpenAction [2 0 R /Fit] >>\nendobj\n%%EOF\n"), false},
		{"pdf JavaScript", "c.pdf", []byte("%PDF-1.7\n1 0 obj\n<< /Type /Catalog /OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >> >>\nendobj\n%%EOF\n"), true},
		{"pdf Launch renamed", "d.txt", []byte("%PDF-1.4\n1 0 obj\n<< /OpenAction 2 0 R >>\nendobj\n2 0 obj\n<< /S /Launch /F (cmd.exe) >>\nendobj\n"), true},
		{"rar5 headers encrypted", "e.rar", []byte("Rar!\x1a\x07\x01\x00\x00\x00\x00\x00\x03\x04\x00\x00"), true},
		{"exe in rar4", "f.rar", rar4Exe(), true},
		{"zip with a harmless pdf", "g.zip", zipWith("h.pdf", false), false},
	}
	if b, ok := sevenZipFile(t, "-pSecret"); ok {
		cases = append(cases, struct {
			name, file string
			body       []byte
			bad        bool
		}{"encrypted 7z", "i.7z", b, true})
	}
	if b, ok := sevenZipFile(t); ok {
		cases = append(cases, struct {
			name, file string
			body       []byte
			bad        bool
		}{"exe in 7z", "j.7z", b, true})
	}
	f := contentFixture(t, func(c *mailrelay.Config) { c.Content.Default.Attachments = mailrelay.PolicyReject })
	cl := dial(t, f.addr, "")
	cl.expect("EHLO mx.example.net", 250)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := "From: x@partner.example\r\nTo: user@a.example.jp\r\nSubject: file\r\nDate: Mon, 2 Nov 2026 10:00:00 +0900\r\nMessage-ID: <f@p>\r\n" +
				"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfile attached\r\n--b\r\n" +
				"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"" + tc.file + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
				base64.StdEncoding.EncodeToString(tc.body) + "\r\n--b--\r\n"
			code, text := cl.sendMail("x@partner.example", []string{"user@a.example.jp"}, m)
			if tc.bad {
				assert.Equal(t, 550, code, text)
			} else {
				assert.Equal(t, 250, code, text)
			}
		})
	}
}

func TestSpamDNSBLThroughRelay(t *testing.T) {
	bl := mailrelaytest.NewDNSBL(t)
	bl.List("1.0.0.127.bl.test", "")
	f := contentFixture(t, func(c *mailrelay.Config) {
		c.Content.Spam = scorer(t, spam.Config{Zones: []spam.Zone{{Name: "bl.test", Points: 20}}, Resolver: bl.Resolver()})
		c.Content.Default.Spam.Reject = 15
	})
	cl := dial(t, f.addr, "")
	cl.expect("EHLO mx.example.net", 250)
	code, text := cl.sendMail("tanaka@partner.example", []string{"user@a.example.jp"}, hamBody("打合せ資料"))
	assert.Equal(t, 550, code, text)
	assert.Contains(t, text, "DNSBL")
	var found bool
	for _, e := range f.events.dataset("mail.message") {
		for _, l := range e.Labels {
			if l.Key == "spam_rules" && strings.Contains(l.Value, "DNSBL") {
				found = true
			}
		}
	}
	assert.True(t, found, "spam_rules label with DNSBL")
}

func TestVirusQuarantineForwardAndTempfail(t *testing.T) {
	if clamdtest.Binary() == "" {
		t.Skip("clamd not installed (Debian clamav-daemon)")
	}
	d := clamdtest.Start(t, clamdtest.Options{})
	av, err := clamd.New(clamd.Config{Address: d.Addr})
	require.NoError(t, err)
	t.Cleanup(func() { av.Close() })
	isolated, err := mailrelaytest.NewSink()
	require.NoError(t, err)
	t.Cleanup(func() { isolated.Close() })
	f := contentFixture(t, func(c *mailrelay.Config) {
		c.Content.AV = av
		c.Content.Default.Lists.AllowSenders = []string{"partner.example"} // allow never overrides virus
		c.Quarantine.Forward = &mailrelay.ForwardConfig{Addr: isolated.Addr, To: "quarantine@isolated.example.jp"}
	})
	eicar := "From: x@partner.example\r\nTo: user@a.example.jp\r\nSubject: test\r\nDate: Mon, 2 Nov 2026 10:00:00 +0900\r\nMessage-ID: <v@p>\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\n" +
		"Content-Type: application/octet-stream; name=\"eicar.com.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte(clamdtest.EICAR)) + "\r\n--b--\r\n"
	cl := dial(t, f.addr, "")
	cl.expect("EHLO mx.example.net", 250)
	code, text := cl.sendMail("x@partner.example", []string{"user@a.example.jp"}, eicar)
	require.Equal(t, 250, code, text)
	assert.Contains(t, text, "quarantined")
	items := f.srv.Quarantine().List(mailrelay.QuarantineFilter{})
	require.Len(t, items, 1)
	assert.Equal(t, "virus", items[0].Reason)
	assert.Equal(t, clamdtest.EICARName, items[0].Virus)
	fw := isolated.Wait(waitCtx(t), 1)
	require.Len(t, fw, 1)
	assert.Equal(t, []string{"quarantine@isolated.example.jp"}, fw[0].To)
	assert.Contains(t, string(fw[0].Data), "X-Seccloud-Quarantine: id="+items[0].ID)
	assert.Contains(t, string(fw[0].Data), base64.StdEncoding.EncodeToString([]byte(clamdtest.EICAR))[:40])
	require.Eventually(t, func() bool {
		it, _, _ := f.srv.Quarantine().Get(items[0].ID)
		return it.Forwarded != nil
	}, waitDur, pollDur)

	// A clean message passes; with the scanner down, 451.
	code, text = cl.sendMail("x@partner.example", []string{"user@a.example.jp"}, hamBody("clean"))
	require.Equal(t, 250, code, text)
	d.Stop()
	code, text = cl.sendMail("x@partner.example", []string{"user@a.example.jp"}, hamBody("clean"))
	assert.Equal(t, 451, code, text)
}

func TestPolicyValidation(t *testing.T) {
	_, err := mailrelay.New(mailrelay.Config{Hostname: "h", Directory: directory(t, "127.0.0.1:1", "127.0.0.1:2"),
		Queue: mailrelay.QueueConfig{Dir: t.TempDir()}, Content: mailrelay.ContentConfig{Default: mailrelay.Policy{Virus: mailrelay.PolicyAllow}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Content.Default.Virus")
}

func TestForgedVerdictHeadersRemoved(t *testing.T) {
	f := contentFixture(t, nil)
	cl := dial(t, f.addr, "")
	cl.expect("EHLO mx.example.net", 250)
	m := strings.Replace(hamBody("資料"), "Subject:", "X-Spam-Status: No, forged\r\nX-Seccloud-Sanitized: yes\r\n\tfolded\r\nSubject:", 1)
	code, text := cl.sendMail("tanaka@partner.example", []string{"user@a.example.jp"}, m)
	require.Equal(t, 250, code, text)
	got := f.sinkA.Wait(waitCtx(t), 1)
	require.Len(t, got, 1)
	d := string(got[0].Data)
	assert.NotContains(t, d, "forged")
	assert.NotContains(t, d, "X-Seccloud-Sanitized")
	assert.NotContains(t, d, "folded")
	assert.Equal(t, 1, strings.Count(d, "X-Spam-Status:"))
}

// rar4Exe is a RAR 4 archive holding a stored "setup.exe" (header CRCs
// are not checked by the relay, so they are left zero).
func rar4Exe() []byte {
	b := []byte("Rar!\x1a\x07\x00")
	b = append(b, 0, 0, 0x73, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0)
	name := "setup.exe"
	h := []byte{0, 0, 0x74, 0, 0x80, byte(32 + len(name)), 0}
	h = append(h, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 29, 0x30, byte(len(name)), 0, 0, 0, 0, 0)
	h = append(h, name...)
	b = append(b, h...)
	b = append(b, 'M', 'Z')
	return append(b, 0, 0, 0x7b, 0, 0x40, 7, 0)
}

// sevenZipFile builds a 7z archive holding setup.exe with Debian's 7-Zip,
// or reports false when it is not installed.
func sevenZipFile(t *testing.T, args ...string) ([]byte, bool) {
	bin, err := exec.LookPath("7zz")
	if err != nil {
		if bin, err = exec.LookPath("7z"); err != nil {
			t.Log("7-Zip not installed (Debian package 7zip): 7z cases skipped")
			return nil, false
		}
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "setup.exe"), []byte("MZ"), 0o600))
	cmd := exec.Command(bin, append(append([]string{"a", "-bd", "x.7z"}, args...), "setup.exe")...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := os.ReadFile(filepath.Join(dir, "x.7z"))
	require.NoError(t, err)
	return b, true
}
