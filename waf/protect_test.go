package waf_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf"
)

// clientFrom returns an HTTP client whose connections come from the
// loopback address src (a terminal of a tenant, or "the internet").
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// do sends one request and returns status, body and header.
func do(t testing.TB, c *http.Client, method, url string, body string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	req.Host = siteHost
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// siteServer starts a WAF with one site on the given origin handler.
func siteServer(t *testing.T, h http.HandlerFunc, cfg waf.Config, so waf.SiteOptions) (string, *recorder) {
	t.Helper()
	o := &http.Server{Handler: h}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go o.Serve(l)
	t.Cleanup(func() { o.Close() })
	rec := &recorder{}
	cfg.Directory = directory(t, tenant.Site{Host: siteHost, Origins: []string{l.Addr().String()}})
	cfg.Sink = rec
	cfg.Origins.HealthInterval = -1
	cfg.Sites = map[string]waf.SiteOptions{siteHost: so}
	s := newServer(t, cfg)
	return "http://" + start(t, s, false), rec
}

func lastEvent(t *testing.T, rec *recorder, n int) detect.Event {
	t.Helper()
	evs := rec.wait(t, n)
	return evs[n-1]
}

func TestClickjackingAndCookies(t *testing.T) {
	origin := func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/own":
			w.Header().Set("X-Frame-Options", "DENY")
		case "/csp":
			w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors https://portal.example.jp")
		case "/login":
			http.SetCookie(w, &http.Cookie{Name: "PHPSESSID", Value: "abc", Path: "/"})
			http.SetCookie(w, &http.Cookie{Name: "theme", Value: "dark"})
			http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: "x", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		}
		fmt.Fprint(w, "ok")
	}
	url, _ := siteServer(t, origin, waf.Config{}, waf.SiteOptions{})
	c := clientFrom("127.0.0.1")
	_, _, h := do(t, c, "GET", url+"/", "")
	assert.Equal(t, "SAMEORIGIN", h.Get("X-Frame-Options"))
	assert.Equal(t, "frame-ancestors 'self'", h.Get("Content-Security-Policy"))
	_, _, h = do(t, c, "GET", url+"/own", "")
	assert.Equal(t, []string{"DENY"}, h.Values("X-Frame-Options"))
	assert.Empty(t, h.Values("Content-Security-Policy"), "the origin's own choice is kept")
	_, _, h = do(t, c, "GET", url+"/csp", "")
	assert.Empty(t, h.Get("X-Frame-Options"))
	assert.Len(t, h.Values("Content-Security-Policy"), 1)
	_, _, h = do(t, c, "GET", url+"/login", "")
	cookies := h.Values("Set-Cookie")
	require.Len(t, cookies, 3)
	assert.Equal(t, "PHPSESSID=abc; Path=/; HttpOnly; SameSite=Lax", cookies[0], "no Secure over plain HTTP")
	assert.Equal(t, "theme=dark", cookies[1], "not a session cookie")
	assert.Equal(t, "JSESSIONID=x; HttpOnly; SameSite=Strict", cookies[2])

	// per-site override
	url2, _ := siteServer(t, origin, waf.Config{}, waf.SiteOptions{Protect: waf.Protections{
		FrameOptions: "off", FrameAncestors: "https://portal.example.jp", DisableCookieHardening: true}})
	_, _, h = do(t, c, "GET", url2+"/login", "")
	assert.Empty(t, h.Get("X-Frame-Options"))
	assert.Equal(t, "frame-ancestors https://portal.example.jp", h.Get("Content-Security-Policy"))
	assert.Equal(t, "PHPSESSID=abc; Path=/", h.Values("Set-Cookie")[0])
}

func TestSecureCookieOverHTTPS(t *testing.T) {
	o := newOrigin(t, "a")
	_ = o
	dir := t.TempDir()
	cp, kp, cert := writeCert(t, dir, 1, siteHost)
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "sessionid=1; Path=/")
	})}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go origin.Serve(l)
	defer origin.Close()
	s := newServer(t, waf.Config{
		Directory: directory(t, tenant.Site{Host: siteHost, Origins: []string{l.Addr().String()}, TLSCert: cp, TLSKey: kp}),
		Origins:   waf.OriginConfig{HealthInterval: -1},
	})
	addr := start(t, s, true)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsClient(cert), ForceAttemptHTTP2: true}}
	resp, err := c.Get("https://" + siteHost + ":" + strings.Split(addr, ":")[1] + "/")
	if err != nil { // the name does not resolve: dial the address with the SNI
		tr := &http.Transport{TLSClientConfig: tlsClient(cert), ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, n, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, n, addr)
			}}
		c = &http.Client{Transport: tr}
		resp, err = c.Get("https://" + siteHost + "/")
	}
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "HTTP/2.0", resp.Proto)
	assert.Equal(t, "sessionid=1; Path=/; HttpOnly; SameSite=Lax; Secure", resp.Header.Get("Set-Cookie"))
}

func TestCSRF(t *testing.T) {
	origin := func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "done") }
	url, rec := siteServer(t, origin, waf.Config{}, waf.SiteOptions{Protect: waf.Protections{
		CSRFExempt: []string{"/api/"}, CSRFTrustedOrigins: []string{"https://forms.example.jp"}}})
	c := clientFrom("127.0.0.1")
	n := 0
	for name, tc := range map[string]struct {
		path string
		hdr  []string
		want int
	}{
		"no origin":            {"/form", nil, 200},
		"same origin":          {"/form", []string{"Origin", "http://" + siteHost}, 200},
		"same origin port":     {"/form", []string{"Origin", "https://" + siteHost + ":443"}, 403},
		"cross origin":         {"/form", []string{"Origin", "https://evil.example"}, 403},
		"null origin":          {"/form", []string{"Origin", "null"}, 403},
		"referer same":         {"/form", []string{"Referer", "http://" + siteHost + "/page"}, 200},
		"referer cross":        {"/form", []string{"Referer", "http://evil.example/x"}, 403},
		"fetch same-origin":    {"/form", []string{"Sec-Fetch-Site", "same-origin"}, 200},
		"fetch cross-site":     {"/form", []string{"Sec-Fetch-Site", "cross-site", "Origin", "http://" + siteHost}, 403},
		"exempt path":          {"/api/x", nil, 200},
		"trusted origin":       {"/form", []string{"Origin", "https://forms.example.jp"}, 200},
		"trusted origin other": {"/form", []string{"Origin", "https://forms.example.jp.evil"}, 403},
	} {
		code, _, _ := do(t, c, "POST", url+tc.path, "a=1", append([]string{"Content-Type", "application/x-www-form-urlencoded"}, tc.hdr...)...)
		assert.Equal(t, tc.want, code, name)
		n++
		ev := lastEvent(t, rec, n)
		if tc.want == 403 {
			assert.Equal(t, "waf-csrf", ev.Verdict.Rule, name)
			assert.Equal(t, detect.ActionBlock, ev.Verdict.Action, name)
		}
	}
	// strict: browsers only
	url3, _ := siteServer(t, origin, waf.Config{}, waf.SiteOptions{Protect: waf.Protections{CSRFRequireOrigin: true}})
	code, _, _ := do(t, c, "POST", url3+"/form", "a=1")
	assert.Equal(t, 403, code)
	code, _, _ = do(t, c, "POST", url3+"/form", "a=1", "Origin", "http://"+siteHost)
	assert.Equal(t, 200, code)
	// report-only: passes and says so
	url2, rec2 := siteServer(t, origin, waf.Config{}, waf.SiteOptions{Protect: waf.Protections{ReportOnly: true}})
	code, _, _ = do(t, c, "POST", url2+"/form", "a=1", "Origin", "https://evil.example")
	assert.Equal(t, 200, code)
	ev := lastEvent(t, rec2, 1)
	assert.Equal(t, detect.ActionReport, ev.Verdict.Action)
	assert.Equal(t, "waf-csrf", ev.Verdict.Rule)
	v, _ := ev.Label("origin_answered")
	assert.Equal(t, "true", v)
}

func TestInjectionAndLimits(t *testing.T) {
	origin := func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }
	url, rec := siteServer(t, origin, waf.Config{Limits: waf.Limits{MaxBodyBytes: 1 << 10}},
		waf.SiteOptions{Limits: waf.Limits{MaxParams: 20}})
	c := clientFrom("127.0.0.1")
	form := []string{"Content-Type", "application/x-www-form-urlencoded", "Origin", "http://" + siteHost}
	manyHeaders := []string{}
	for i := range 120 {
		manyHeaders = append(manyHeaders, fmt.Sprintf("X-H%d", i), "v")
	}
	n := 0
	for name, tc := range map[string]struct {
		method, path, body string
		hdr                []string
		want               int
		rule               string
	}{
		"plain":                {"GET", "/?q=%E9%98%B2%E7%81%BD", "", nil, 200, ""},
		"multi-line text":      {"GET", "/?msg=line1%0D%0Aline2", "", nil, 200, ""},
		"splitting in path":    {"GET", "/a%0d%0aSet-Cookie:%20x=1", "", nil, 400, "waf-response-splitting"},
		"splitting in query":   {"GET", "/r?to=%0d%0aLocation:%20http://evil", "", nil, 400, "waf-response-splitting"},
		"mail header in form":  {"POST", "/contact", "email=a%40b.jp%0D%0ABcc%3A+victim%40example.jp&msg=hi", form, 400, "waf-mail-header-injection"},
		"mail header in query": {"GET", "/contact?subject=hi%0ACc:x@y.jp", "", nil, 400, "waf-response-splitting"},
		"mail plain form":      {"POST", "/contact", "email=a%40b.jp&msg=hello%0D%0Aworld", form, 200, ""},
		"session in query":     {"GET", "/page?PHPSESSID=abc", "", nil, 400, "waf-session-in-url"},
		"sid is a parameter":   {"GET", "/page?sid=12&session=am", "", nil, 200, ""},
		"session in path":      {"GET", "/page;jsessionid=abc", "", nil, 400, "waf-session-in-url"},
		"url too long":         {"GET", "/?q=" + strings.Repeat("a", 9000), "", nil, 414, "waf-limit-url"},
		"too many headers":     {"GET", "/", "", manyHeaders, 431, "waf-limit-headers"},
		"header too long":      {"GET", "/", "", []string{"X-Big", strings.Repeat("b", 9000)}, 431, "waf-limit-header-size"},
		"body too large":       {"POST", "/upload", strings.Repeat("x", 2000), []string{"Origin", "http://" + siteHost}, 413, "waf-limit-body"},
		"too many params":      {"GET", "/?" + strings.Repeat("a=1&", 25), "", nil, 400, "waf-limit-params"},
		"param too long":       {"POST", "/f", "a=" + strings.Repeat("x", 900) + strings.Repeat("y", 8000), form, 413, "waf-limit-body"},
	} {
		code, body, _ := do(t, c, tc.method, url+tc.path, tc.body, tc.hdr...)
		assert.Equal(t, tc.want, code, name)
		n++
		ev := lastEvent(t, rec, n)
		assert.Equal(t, tc.rule, ev.Verdict.Rule, name)
		if tc.want >= 400 {
			assert.Contains(t, body, "参照番号", name)
			assert.Equal(t, ev.ID, body[strings.Index(body, "参照番号: ")+len("参照番号: "):][:16], name)
		}
	}
}

func TestAccessControl(t *testing.T) {
	origin := func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }
	office := netip.MustParsePrefix("127.0.1.0/24")
	url, rec := siteServer(t, origin, waf.Config{Access: waf.IPLists{Deny: []netip.Prefix{netip.MustParsePrefix("127.0.9.0/24")}}},
		waf.SiteOptions{
			Access:     waf.IPLists{Deny: []netip.Prefix{netip.MustParsePrefix("127.0.8.8/32")}},
			PathAccess: []waf.AccessRule{{Path: "/admin", Allow: []netip.Prefix{office}}, {Path: "/admin/public/", Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}},
		})
	n := 0
	for _, tc := range []struct {
		src, path string
		want      int
		rule      string
	}{
		{"127.0.1.5", "/admin/", 200, ""},
		{"127.0.0.1", "/admin/", 403, "waf-path-acl"},
		{"127.0.0.1", "/ADMIN/users", 403, "waf-path-acl"},
		{"127.0.0.1", "/.//admin/./x", 403, "waf-path-acl"},
		{"127.0.0.1", "/x/../admin", 403, "waf-path-acl"},
		{"127.0.0.1", "/admin.php", 403, "waf-path-acl"},
		{"127.0.0.1", "/admin/public/notice", 200, ""},
		{"127.0.0.1", "/news", 200, ""},
		{"127.0.9.1", "/news", 403, "waf-ip-deny"},
		{"127.0.8.8", "/news", 403, "waf-site-ip-deny"},
	} {
		req, err := http.NewRequest("GET", url+"/", nil)
		require.NoError(t, err)
		req.URL.Opaque = tc.path // sent as written (no client-side cleaning)
		req.Host = siteHost
		resp, err := clientFrom(tc.src).Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, tc.want, resp.StatusCode, tc.src+" "+tc.path)
		n++
		assert.Equal(t, tc.rule, lastEvent(t, rec, n).Verdict.Rule, tc.src+" "+tc.path)
	}
}

func TestCountryRules(t *testing.T) {
	origin := func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }
	geo := fakeGeo{"127.0.5.1": "CN", "127.0.5.2": "JP", "127.0.5.3": "US"}
	url, _ := siteServer(t, origin, waf.Config{GeoIP: waf.GeoIPConfig{Lookup: geo}},
		waf.SiteOptions{Countries: waf.CountryRules{Allow: []string{"JP", "US"}, Deny: []string{"US"}}})
	for src, want := range map[string]int{"127.0.5.1": 403, "127.0.5.2": 200, "127.0.5.3": 403, "127.0.0.1": 200} {
		code, _, _ := do(t, clientFrom(src), "GET", url+"/", "")
		assert.Equal(t, want, code, src)
	}
	_, err := waf.New(waf.Config{Directory: directory(t), Sites: map[string]waf.SiteOptions{siteHost: {Countries: waf.CountryRules{Deny: []string{"CN"}}}}})
	assert.ErrorContains(t, err, "GeoIP")
}

type fakeGeo map[string]string

func (g fakeGeo) Country(a netip.Addr) (string, bool) { c, ok := g[a.String()]; return c, ok }

func TestNewRejectsBadProtections(t *testing.T) {
	for name, so := range map[string]waf.SiteOptions{
		"path":       {PathAccess: []waf.AccessRule{{Path: "admin"}}},
		"samesite":   {Protect: waf.Protections{SameSite: "sometimes"}},
		"frame":      {Protect: waf.Protections{FrameOptions: "DENY\r\nX: y"}},
		"origin hdr": {OriginAuth: waf.OriginAuth{Header: "X-Secret"}},
		"limits":     {Limits: waf.Limits{MaxParams: -1}},
		"cache":      {Cache: waf.SiteCache{Grace: -time.Second}},
		"mtls":       {OriginAuth: waf.OriginAuth{ClientCert: "/nonexistent.crt", ClientKey: "/nonexistent.key"}},
	} {
		_, err := waf.New(waf.Config{Directory: directory(t), Sites: map[string]waf.SiteOptions{siteHost: so}})
		assert.Error(t, err, name)
	}
}
