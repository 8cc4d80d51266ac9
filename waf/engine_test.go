package waf_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf"
)

var siteEngines struct {
	once sync.Once
	e    *waf.CRSEngine
	err  error
}

const (
	detectHost = "bousai.aoba.example.jp"
	pl2Host    = "pl2.aoba.example.jp"
)

// siteEngine is one shared engine with three site profiles: the default,
// a detection-only site and a PL2 site with exclusions.
func siteEngine(t testing.TB) *waf.CRSEngine {
	siteEngines.once.Do(func() {
		siteEngines.e, siteEngines.err = waf.NewCRSEngine(waf.CRSConfig{
			Sites: map[string]waf.SiteRules{
				detectHost: {DetectOnly: true},
				pl2Host: {ParanoiaLevel: 2, Exclusions: []waf.Exclusion{
					{RuleID: 942200},                                        // coreruleset#4660: see README
					{RuleID: 942100, Target: "ARGS:sql"},                    // id + target
					{RuleID: 941100, RuleIDTo: 941399, PathPrefix: "/cms/"}, // range under a path
					{RuleID: 990121, PathPrefix: "/cms/"},                   // ours too
				}},
			},
		})
	})
	require.NoError(t, siteEngines.err)
	return siteEngines.e
}

func ids(d waf.Decision) []int {
	var out []int
	for _, m := range d.Matches {
		out = append(out, m.ID)
	}
	return out
}

func inspectURI(t *testing.T, e waf.Engine, site, method, uri string, h http.Header, body []byte) waf.Decision {
	t.Helper()
	if h == nil {
		h = http.Header{}
	}
	h.Set("User-Agent", "Mozilla/5.0")
	h.Set("Accept", "*/*")
	d, err := e.Inspect(context.Background(), &waf.Request{Site: site, Method: method, URI: uri, Proto: "HTTP/1.1", Host: site, Header: h, Body: body})
	require.NoError(t, err)
	return d
}

func TestEngineProfiles(t *testing.T) {
	e := siteEngine(t)
	sqli := "/?id=1%27%20OR%20%271%27%3D%271"
	t.Run("default blocks SQLi with CRS ids", func(t *testing.T) {
		d := inspectURI(t, e, siteHost, "GET", sqli, nil, nil)
		assert.Equal(t, waf.Block, d.Action)
		assert.Contains(t, ids(d), 942100)
		assert.GreaterOrEqual(t, d.Score, 5)
	})
	t.Run("detect-only site", func(t *testing.T) {
		d := inspectURI(t, e, detectHost, "GET", sqli, nil, nil)
		assert.Equal(t, waf.Detect, d.Action)
		assert.Contains(t, ids(d), 942100)
	})
	t.Run("benign passes", func(t *testing.T) {
		d := inspectURI(t, e, siteHost, "GET", "/index.html?id=123&q=%E9%98%B2%E7%81%BD&date=2026-01-05", nil, nil)
		assert.Equal(t, waf.Pass, d.Action, ids(d))
		assert.Empty(t, d.Matches)
	})
	t.Run("exclusion by id and target", func(t *testing.T) {
		d := inspectURI(t, e, pl2Host, "GET", "/?sql=1%27%20OR%20%271%27%3D%271", nil, nil)
		assert.NotContains(t, ids(d), 942100)
		d = inspectURI(t, e, pl2Host, "GET", "/?other=1%27%20OR%20%271%27%3D%271", nil, nil)
		assert.Contains(t, ids(d), 942100)
	})
	t.Run("exclusion by path", func(t *testing.T) {
		xss := "?body=%3Cscript%3Ealert(1)%3C/script%3E"
		d := inspectURI(t, e, pl2Host, "GET", "/cms/edit"+xss, nil, nil)
		for _, id := range ids(d) {
			assert.False(t, id >= 941100 && id <= 941399 || id == 990121, "excluded rule %d fired", id)
		}
		d = inspectURI(t, e, pl2Host, "GET", "/news"+xss, nil, nil)
		assert.Equal(t, waf.Block, d.Action)
		assert.Contains(t, ids(d), 941100)
	})
	t.Run("octet-stream is not parsed as a form", func(t *testing.T) {
		body := []byte("a=1&b=<script>alert(1)</script>&c=\x00\x01\x02")
		h := http.Header{"Content-Type": {"application/octet-stream"}, "Content-Length": {"31"}}
		d := inspectURI(t, e, siteHost, "POST", "/upload", h, body)
		for _, id := range ids(d) {
			// CRS's 920420 (content type not in allowed_request_content_type)
			// is policy; no rule may have seen the body as arguments.
			assert.True(t, id == 920420, "rule %d fired on a binary body", id)
		}
		h = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Content-Length": {"31"}}
		d = inspectURI(t, e, siteHost, "POST", "/upload", h, body)
		assert.Equal(t, waf.Block, d.Action)
	})
}

// TestRule942200PL2 records the CRS 4.25 rule 942200 behaviour at PL2
// (coreruleset#4660): ordinary comma-separated values match it.
func TestRule942200PL2(t *testing.T) {
	e, err := waf.NewCRSEngine(waf.CRSConfig{Plain: true, Default: waf.SiteRules{ParanoiaLevel: 2}})
	require.NoError(t, err)
	for _, v := range []string{"1,2", "tokyo,%20cafe", "red,green,blue"} {
		d := inspectURI(t, e, siteHost, "GET", "/?tags="+v, nil, nil)
		t.Logf("PL2 %q: %v score %d", v, ids(d), d.Score)
		assert.Contains(t, ids(d), 942200, v)
	}
}

// TestServerInspection drives the engine through a real Server: 403 page
// with a reference and the rule ids in the event, detection-only passes
// and logs, body limit 413, leak detection in the response.
func TestServerInspection(t *testing.T) {
	e := siteEngine(t)
	var leak bool
	var mu sync.Mutex
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		l := leak
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		if l {
			_, _ = io.WriteString(w, "<b>Warning</b>: You have an error in your SQL syntax; check the manual near ''1'' at line 1")
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(o.Close)
	rec := &recorder{}
	dir := directory(t, tenant.Site{Host: siteHost, Origins: []string{o.Listener.Addr().String()}},
		tenant.Site{Host: detectHost, Origins: []string{o.Listener.Addr().String()}})
	s := newServer(t, waf.Config{Directory: dir, Sink: rec, Engine: e, Inspection: waf.InspectionConfig{MaxBody: 1024},
		Origins: waf.OriginConfig{HealthInterval: -1}})
	addr := start(t, s, false)
	c := &http.Client{}

	resp, body := get(t, c, "GET", addr, siteHost, "/?id=1%27%20OR%20%271%27%3D%271")
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, body, "アクセスが拒否されました")
	assert.Contains(t, body, "Access denied")
	ev := rec.wait(t, 1)[0]
	assert.Contains(t, body, ev.ID)
	assert.Equal(t, detect.ActionBlock, ev.Verdict.Action)
	assert.Contains(t, ev.Verdict.Rule, "942100")
	assert.GreaterOrEqual(t, ev.Verdict.Score, 5)
	v, _ := ev.Label("origin_answered")
	assert.Equal(t, "false", v)

	mu.Lock()
	leak = true
	mu.Unlock()
	resp, body = get(t, c, "GET", addr, detectHost, "/?id=1%27%20OR%20%271%27%3D%271")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "SQL syntax")
	ev = rec.wait(t, 2)[1]
	assert.Equal(t, detect.ActionReport, ev.Verdict.Action)
	assert.Contains(t, ev.Verdict.Rule, "942100")
	assert.Contains(t, ev.Verdict.Rule, "990901", "database error in the response")
	v, _ = ev.Label("origin_answered")
	assert.Equal(t, "true", v)

	req, err := http.NewRequest("POST", "http://"+addr+"/form", bytes.NewReader(bytes.Repeat([]byte("a"), 2000)))
	require.NoError(t, err)
	req.Host = siteHost
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	ev = rec.wait(t, 3)[2]
	assert.Equal(t, "waf-body-limit", ev.Verdict.Rule)

	// Under the limit the body reaches the origin intact.
	req, err = http.NewRequest("POST", "http://"+addr+"/form", strings.NewReader("name=alice&city=aoba"))
	require.NoError(t, err)
	req.Host = siteHost
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestSiteKeysIDN: per-site engine settings are keyed by the IDNA-
// normalised host, so the Unicode and punycode forms of a name and any
// case give the same site.
func TestSiteKeysIDN(t *testing.T) {
	e, err := waf.NewCRSEngine(waf.CRSConfig{Sites: map[string]waf.SiteRules{
		"www.市役所.jp":  {DetectOnly: true},
		"*.ＢＯＵＳＡＩ.jp": {DetectOnly: true}, // full-width: folded by IDNA mapping
	}})
	require.NoError(t, err)
	sqli := "/?id=1%27%20OR%20%271%27%3D%271"
	for _, site := range []string{"www.市役所.jp", "www.xn--7sto6a74d.jp", "WWW.XN--7STO6A74D.JP", "WWW.市役所.JP", "www.市役所.jp.", "*.bousai.jp", "*.BOUSAI.jp"} {
		d := inspectURI(t, e, site, "GET", sqli, nil, nil)
		assert.Equal(t, waf.Detect, d.Action, site)
	}
	for _, site := range []string{"www2.市役所.jp", "www.xn--7sto6a74e.jp", "bousai.jp"} {
		d := inspectURI(t, e, site, "GET", sqli, nil, nil)
		assert.Equal(t, waf.Block, d.Action, site)
	}
	_, err = waf.NewCRSEngine(waf.CRSConfig{Sites: map[string]waf.SiteRules{"www.市役所.jp": {}, "www.xn--7sto6a74d.jp": {}}})
	assert.ErrorContains(t, err, "the same site as another key")
	_, err = waf.NewCRSEngine(waf.CRSConfig{Sites: map[string]waf.SiteRules{"bad host!": {}}})
	assert.Error(t, err)
}

// TestResponseRulesCRS: text responses go to CRS's response rules
// (RESPONSE-95x), so an origin that answers with a database error is
// reported with CRS ids even when the request looked clean; binary,
// cache hits and what lies past the inspected head are not scanned.
func TestResponseRulesCRS(t *testing.T) {
	e := siteEngine(t)
	sqlErr := "<html><body><h1>Error</h1><p>You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version for the right syntax to use near ''1'' at line 1</p></body></html>"
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/search":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
		case "/download":
			w.Header().Set("Content-Type", "application/octet-stream")
		case "/cached":
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Cache-Control", "public, max-age=600")
		case "/big":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, strings.Repeat("防災情報のお知らせ。\n", 4000)) // 120 KB before the error
		case "/ok":
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<p>避難所は開設されています。</p>")
			return
		}
		_, _ = io.WriteString(w, sqlErr)
	}))
	t.Cleanup(o.Close)
	rec := &recorder{}
	dir := directory(t, tenant.Site{Host: siteHost, Origins: []string{o.Listener.Addr().String()}})
	s := newServer(t, waf.Config{Directory: dir, Sink: rec, Engine: e, Origins: waf.OriginConfig{HealthInterval: -1}})
	addr := start(t, s, false)
	c := &http.Client{}
	responseIDs := func(ev detect.Event) (crs []string, ours bool) {
		for _, id := range strings.Split(ev.Verdict.Rule, ",") {
			if strings.HasPrefix(id, "95") && len(id) == 6 {
				crs = append(crs, id)
			}
			if id == "990901" {
				ours = true
			}
		}
		return crs, ours
	}

	resp, _ := get(t, c, "GET", addr, siteHost, "/search?q=tokyo")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	ev := rec.wait(t, 1)[0]
	crs, ours := responseIDs(ev)
	assert.NotEmpty(t, crs, "CRS response rule ids (951xxx) in %q", ev.Verdict.Rule)
	for _, id := range crs {
		assert.True(t, strings.HasPrefix(id, "951"), id)
	}
	assert.True(t, ours, "our leak pattern 990901")
	assert.Equal(t, detect.ActionReport, ev.Verdict.Action)
	v, _ := ev.Label("origin_answered")
	assert.Equal(t, "true", v)
	v, _ = ev.Label("waf_response_leak")
	assert.Equal(t, "true", v)

	get(t, c, "GET", addr, siteHost, "/download")
	ev = rec.wait(t, 2)[1]
	crs, ours = responseIDs(ev)
	assert.Empty(t, crs, "binary responses are not scanned")
	assert.False(t, ours)

	get(t, c, "GET", addr, siteHost, "/big")
	ev = rec.wait(t, 3)[2]
	crs, ours = responseIDs(ev)
	assert.Empty(t, crs, "only the head of a response is scanned")
	assert.False(t, ours)

	get(t, c, "GET", addr, siteHost, "/ok")
	ev = rec.wait(t, 4)[3]
	assert.Equal(t, detect.ActionAllow, ev.Verdict.Action)
	assert.Empty(t, ev.Verdict.Rule)

	get(t, c, "GET", addr, siteHost, "/cached")
	ev = rec.wait(t, 5)[4]
	crs, _ = responseIDs(ev)
	assert.NotEmpty(t, crs, "a miss is scanned")
	resp, _ = get(t, c, "GET", addr, siteHost, "/cached")
	require.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	ev = rec.wait(t, 6)[5]
	crs, ours = responseIDs(ev)
	assert.Empty(t, crs, "a cache hit is not scanned again")
	assert.False(t, ours)
}

// A request whose client has gone (context cancelled) gets no verdict:
// an error, which the server turns into 503, never a pass.
func TestInspectCancelled(t *testing.T) {
	e := siteEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := e.Inspect(ctx, &waf.Request{Site: siteHost, Method: "GET", URI: "/?q=1", Proto: "HTTP/1.1", Host: siteHost,
		Header: http.Header{"User-Agent": {"Mozilla/5.0"}, "Accept": {"*/*"}}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, d.Matches)
	assert.Zero(t, d.Score)
}

// CRS's @rx rules run through our operator in our engine and through
// Coraza's own in the plain one: both block the same attack with the
// same rule, and Japanese prose passes both.
func TestRxOperatorSameVerdicts(t *testing.T) {
	ours := siteEngine(t)
	plain, err := waf.NewCRSEngine(waf.CRSConfig{Plain: true})
	require.NoError(t, err)
	h := http.Header{"User-Agent": {"Mozilla/5.0"}, "Accept": {"*/*"}}
	for _, c := range []struct {
		uri   string
		block bool
	}{
		{"/?q=" + url.QueryEscape("; cat /etc/passwd"), true},
		{"/?q=" + url.QueryEscape("1' UNION SELECT password FROM users--"), true},
		{"/?q=" + url.QueryEscape("<script>alert(document.cookie)</script>"), true},
		{"/?q=" + url.QueryEscape(strings.Repeat("避難所（青葉小学校体育館）は何時から開設されますか？", 8)), false},
	} {
		do := inspectURI(t, ours, siteHost, "GET", c.uri, h, nil)
		dp := inspectURI(t, plain, siteHost, "GET", c.uri, h, nil)
		assert.Equal(t, c.block, do.Action == waf.Block, "ours %s: %v", c.uri, ids(do))
		assert.Equal(t, c.block, dp.Action == waf.Block, "plain %s: %v", c.uri, ids(dp))
		if c.block {
			// every CRS rule plain Coraza matched, ours matched too
			crs := []int{}
			for _, id := range ids(dp) {
				if id < 949000 {
					crs = append(crs, id)
				}
			}
			assert.Subset(t, ids(do), crs, c.uri)
		}
	}
}

// Mail header injection in a multipart form field (a contact form with
// an attachment) is blocked by the engine: our layer reads multipart
// fields (detector 990200); an ordinary multipart form passes.
func TestMultipartMailHeaderInjection(t *testing.T) {
	e := siteEngine(t)
	form := func(email string) (http.Header, []byte) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		require.NoError(t, mw.WriteField("name", "青葉 太郎"))
		require.NoError(t, mw.WriteField("email", email))
		require.NoError(t, mw.WriteField("message", "避難所の開設時間を教えてください。"))
		fw, err := mw.CreateFormFile("photo", "road.jpg")
		require.NoError(t, err)
		_, _ = fw.Write([]byte("\xff\xd8\xff\xe0 not really a jpeg"))
		require.NoError(t, mw.Close())
		return http.Header{"Content-Type": {mw.FormDataContentType()}, "Content-Length": {fmt.Sprint(b.Len())}}, b.Bytes()
	}
	h, body := form("taro@example.jp\r\nBcc: list@victim.example")
	d := inspectURI(t, e, siteHost, "POST", "/contact/send", h, body)
	assert.Equal(t, waf.Block, d.Action, "%v", ids(d))
	assert.Contains(t, ids(d), 990200)
	h, body = form("taro@example.jp")
	d = inspectURI(t, e, siteHost, "POST", "/contact/send", h, body)
	assert.Equal(t, waf.Pass, d.Action, "%v", ids(d))
}

// TestDeepArguments: a payload after more than 1,000 padding values (the
// argument limit of coraza.conf-recommended, beyond which Coraza drops
// values and plain Coraza passes the request) is not passed: our engine
// refuses a body with more new values than Coraza reads (413, rule
// 209001), in JSON and in a form.
func TestDeepArguments(t *testing.T) {
	e := siteEngine(t)
	var j strings.Builder
	j.WriteString(`{"items":[`)
	for i := 0; i < 1100; i++ {
		fmt.Fprintf(&j, `{"id":%d,"note":"避難所%d番の状況"},`, i, i)
	}
	j.WriteString(`{"q":"1' UNION SELECT password FROM users--"}]}`)
	var f strings.Builder
	for i := 0; i < 1100; i++ {
		fmt.Fprintf(&f, "f%d=%d&", i, i)
	}
	f.WriteString("q=" + url.QueryEscape("1' UNION SELECT password FROM users--"))
	for _, c := range []struct{ ct, body string }{{"application/json", j.String()}, {"application/x-www-form-urlencoded", f.String()}} {
		h := http.Header{"Content-Type": {c.ct}, "Content-Length": {fmt.Sprint(len(c.body))}}
		d := inspectURI(t, e, siteHost, "POST", "/api/report", h, []byte(c.body))
		assert.Equal(t, waf.Block, d.Action, "%s: %v", c.ct, ids(d))
		assert.Contains(t, ids(d), 209001, c.ct)
		assert.Equal(t, 413, d.Status, c.ct)
	}
}
