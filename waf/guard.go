package waf

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"

	"github.com/jichitai/seccloud/detect"
)

// Protections are the gateway protections that the rule engine does not
// give (issue 7 part 3), per site. The zero value turns every one on with
// the defaults documented on each field.
type Protections struct {
	// ReportOnly logs what the request checks below would refuse (event
	// action "report") and refuses nothing; the response hardening still
	// applies. For a safe roll-out on a site.
	ReportOnly bool

	// FrameOptions is the X-Frame-Options value added to responses that
	// carry neither X-Frame-Options nor a CSP frame-ancestors directive
	// (clickjacking); "" means "SAMEORIGIN", "off" adds none.
	FrameOptions string
	// FrameAncestors is the CSP frame-ancestors source list added (as its
	// own Content-Security-Policy header) under the same condition; ""
	// means "'self'", "off" adds none.
	FrameAncestors string

	// DisableCSRF turns the cross-site request check off. When on, a
	// request with an unsafe method (POST, PUT, PATCH, DELETE, ...) that
	// carries browser provenance must come from the site itself:
	// Sec-Fetch-Site same-origin or none, or an Origin (else Referer)
	// whose host is the request's Host or one of CSRFTrustedOrigins;
	// "Origin: null" and Sec-Fetch-Site cross-site are refused. A request
	// with none of these headers is not from a current browser (they all
	// send Origin on cross-site POSTs), so it cannot be a forged
	// cross-site request and passes, unless CSRFRequireOrigin.
	DisableCSRF bool
	// CSRFRequireOrigin also refuses unsafe requests that carry neither
	// Origin, Referer nor Sec-Fetch-Site (sites used only by browsers).
	CSRFRequireOrigin bool
	// CSRFExempt are path prefixes exempt from the CSRF check (e.g. an
	// API called by other servers: "/api/").
	CSRFExempt []string
	// CSRFTrustedOrigins are other origins allowed to post to the site,
	// as "https://host[:port]".
	CSRFTrustedOrigins []string

	// DisableCookieHardening leaves Set-Cookie headers as the origin sent
	// them. When on, session cookies (names in SessionCookies) get
	// HttpOnly, SameSite (when missing) and, over HTTPS, Secure.
	DisableCookieHardening bool
	// SessionCookies are the session cookie names (case-insensitive),
	// hardened in Set-Cookie and refused as URL parameters; nil means
	// DefaultSessionCookies for the hardening and DefaultSessionParams
	// for URLs. A name ending in "*" is a prefix.
	SessionCookies []string
	// SameSite is the SameSite attribute added to session cookies that
	// have none: "" means "Lax"; "Strict" or "None" are allowed.
	SameSite string
	// AllowSessionInURL lets requests carry a session id in the URL (a
	// query parameter named like a session cookie, or ";jsessionid=" in
	// the path); by default they are refused (session fixation, leaks in
	// Referer and logs).
	AllowSessionInURL bool

	// DisableMailHeaderCheck turns off the mail header injection check:
	// a query or form value holding CR or LF followed by a mail header
	// name (To:, Cc:, Bcc:, From:, Subject:, Reply-To:, Content-Type:,
	// MIME-Version:) is refused.
	DisableMailHeaderCheck bool
}

// DefaultSessionParams are the session id names refused in URLs when
// Protections.SessionCookies is nil: only names that are session ids in
// every framework, so that ordinary parameters ("sid" as a section id,
// "session" as a meeting) are not refused.
var DefaultSessionParams = []string{"PHPSESSID", "JSESSIONID", "ASP.NET_SessionId", "ASPSESSIONID*",
	"CFID", "CFTOKEN", "connect.sid", "sessionid", "session_id", "laravel_session", "_session_id"}

// DefaultSessionCookies are the session cookie names hardened when
// Protections.SessionCookies is nil.
var DefaultSessionCookies = []string{"PHPSESSID", "JSESSIONID", "ASP.NET_SessionId", "ASPSESSIONID*",
	"CFID", "CFTOKEN", "connect.sid", "sid", "session*", "sess*", "laravel_session", "wordpress_logged_in*", "_session_id"}

// Limits bound the size of requests (buffer overflow protection). A zero
// field means its default; in SiteOptions.Limits a zero field means the
// global value. Exceeding a limit gives a clear 4xx.
type Limits struct {
	// MaxURLBytes bounds the request target; default 8192 (414).
	MaxURLBytes int
	// MaxHeaders bounds the number of header lines; default 100 (431).
	MaxHeaders int
	// MaxHeaderBytes bounds one header value; default 8192 (431). (The
	// whole head is bounded by Timeouts.MaxHeaderBytes.)
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body; default 10 MiB (413).
	MaxBodyBytes int64
	// MaxParams bounds the query plus form parameters; default 256 (400).
	MaxParams int
	// MaxParamBytes bounds one parameter name or value; default 8192 (400).
	MaxParamBytes int
}

// Default limits.
const (
	DefaultMaxURLBytes    = 8192
	DefaultMaxHeaders     = 100
	DefaultMaxHeaderValue = 8192
	DefaultMaxBodyBytes   = 10 << 20
	DefaultMaxParams      = 256
	DefaultMaxParamBytes  = 8192
)

func (l *Limits) defaults(from Limits) {
	pick := func(v *int, g int) {
		if *v == 0 {
			*v = g
		}
	}
	pick(&l.MaxURLBytes, from.MaxURLBytes)
	pick(&l.MaxHeaders, from.MaxHeaders)
	pick(&l.MaxHeaderBytes, from.MaxHeaderBytes)
	pick(&l.MaxParams, from.MaxParams)
	pick(&l.MaxParamBytes, from.MaxParamBytes)
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = from.MaxBodyBytes
	}
}

func (l Limits) validate(where string) error {
	if l.MaxURLBytes < 0 || l.MaxHeaders < 0 || l.MaxHeaderBytes < 0 || l.MaxBodyBytes < 0 || l.MaxParams < 0 || l.MaxParamBytes < 0 {
		return fmt.Errorf("waf: %s: negative limit", where)
	}
	return nil
}

// AccessRule restricts a path to listed source networks (e.g. /admin
// only from the municipality's office).
type AccessRule struct {
	// Path is a path prefix, compared case-insensitively after the path
	// is cleaned ("//a/./b" is "/a/b", "\" counts as "/"), as a plain
	// string prefix: "/admin" also covers "/admin.php" and "/administrator".
	Path string
	// Allow are the networks that may reach Path; others get 403.
	Allow []netip.Prefix

	lower string // cleaned, lower-case Path
}

// IPLists are allow and deny lists of source networks. Deny wins; when
// Allow is not empty, only its networks are let in.
type IPLists struct {
	Allow, Deny []netip.Prefix
}

func (l IPLists) check(a netip.Addr) (ok bool, rule string) {
	for _, p := range l.Deny {
		if p.Contains(a) {
			return false, "deny"
		}
	}
	if len(l.Allow) == 0 {
		return true, ""
	}
	for _, p := range l.Allow {
		if p.Contains(a) {
			return true, ""
		}
	}
	return false, "allow"
}

// guardDecision is what the request checks decided.
type guardDecision struct {
	page   page
	rule   string
	reason string
	action detect.Action
}

var (
	pageGuardDenied = page{Status: http.StatusForbidden,
		TitleJA: "アクセスが許可されていません", TitleEN: "Access not allowed",
		ReasonJA: "このアドレスからは、このページにアクセスできません。",
		ReasonEN: "This page cannot be reached from your address."}
	pageGuardCSRF = page{Status: http.StatusForbidden,
		TitleJA: "外部からの送信は受け付けられません", TitleEN: "Cross-site request refused",
		ReasonJA: "このサイト以外のページからの送信は受け付けられません。サイトのページから操作し直してください。",
		ReasonEN: "Requests sent from other sites are not accepted. Please use the site's own pages."}
	pageGuardBad = page{Status: http.StatusBadRequest,
		TitleJA: "不正なリクエストです", TitleEN: "Bad request",
		ReasonJA: "リクエストに受け付けられない内容が含まれていたため、拒否しました。",
		ReasonEN: "The request holds content that is not accepted."}
	pageGuardURITooLong = page{Status: http.StatusRequestURITooLong,
		TitleJA: "URL が長すぎます", TitleEN: "URL too long",
		ReasonJA: "URL が上限を超えたため、受け付けられませんでした。",
		ReasonEN: "The URL is longer than this site accepts."}
	pageGuardHeaders = page{Status: http.StatusRequestHeaderFieldsTooLarge,
		TitleJA: "ヘッダーが大きすぎます", TitleEN: "Request headers too large",
		ReasonJA: "リクエストのヘッダーが上限を超えたため、受け付けられませんでした。",
		ReasonEN: "The request headers are larger than this site accepts."}
	pageGuardBody = page{Status: http.StatusRequestEntityTooLarge,
		TitleJA: "送信データが大きすぎます", TitleEN: "Request too large",
		ReasonJA: "送信されたデータが上限を超えたため、受け付けられませんでした。",
		ReasonEN: "The data sent is larger than this site accepts."}
	pageGuardParams = page{Status: http.StatusBadRequest,
		TitleJA: "パラメータが多すぎます", TitleEN: "Too many or too long parameters",
		ReasonJA: "パラメータの数または長さが上限を超えたため、受け付けられませんでした。",
		ReasonEN: "The request has more or longer parameters than this site accepts."}
)

func deny(p page, rule, reason string) *guardDecision {
	return &guardDecision{page: p, rule: rule, reason: reason, action: detect.ActionBlock}
}

// checkAccess applies the global and per-site IP lists, the country rules
// and the path access rules.
func (s *Server) checkAccess(r *http.Request, so *siteConfig, client netip.Addr) *guardDecision {
	if ok, why := s.cfg.Access.check(client); !ok {
		return deny(pageGuardDenied, "waf-ip-"+why, "source address refused by the global "+why+" list")
	}
	if ok, why := so.opts.Access.check(client); !ok {
		return deny(pageGuardDenied, "waf-site-ip-"+why, "source address refused by the site's "+why+" list")
	}
	if d := s.checkCountry(so, client); d != nil {
		return d
	}
	if len(so.opts.PathAccess) > 0 {
		p := cleanPath(r.URL.Path)
		var best *AccessRule
		for i := range so.opts.PathAccess {
			ar := &so.opts.PathAccess[i]
			if strings.HasPrefix(p, ar.lower) && (best == nil || len(ar.lower) > len(best.lower)) {
				best = ar
			}
		}
		if best != nil && !prefixesContain(best.Allow, client) {
			return deny(pageGuardDenied, "waf-path-acl", "path "+best.Path+" is not open to this source address")
		}
	}
	return nil
}

func prefixesContain(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// cleanPath normalises a decoded path for access rules: "\" as "/",
// cleaned, lower-case.
func cleanPath(p string) string {
	p = strings.ReplaceAll(p, "\\", "/")
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return strings.ToLower(c)
}

// checkRequest runs the limit, injection, CSRF and session checks. It may
// replace r.Body with a buffered copy (form bodies are read to count and
// check their parameters).
func (s *Server) checkRequest(r *http.Request, so *siteConfig) *guardDecision {
	lim := &so.limits
	if len(r.RequestURI) > lim.MaxURLBytes || len(r.URL.RawQuery)+len(r.URL.Path) > lim.MaxURLBytes {
		return deny(pageGuardURITooLong, "waf-limit-url", fmt.Sprintf("request target longer than %d bytes", lim.MaxURLBytes))
	}
	n := 0
	for k, vs := range r.Header {
		n += len(vs)
		for _, v := range vs {
			if len(v) > lim.MaxHeaderBytes {
				return deny(pageGuardHeaders, "waf-limit-header-size", fmt.Sprintf("header %s longer than %d bytes", k, lim.MaxHeaderBytes))
			}
			if strings.ContainsAny(v, "\r\n\x00") {
				return deny(pageGuardBad, "waf-header-injection", "CR, LF or NUL in header "+k)
			}
		}
	}
	if n > lim.MaxHeaders {
		return deny(pageGuardHeaders, "waf-limit-headers", fmt.Sprintf("%d header lines, limit %d", n, lim.MaxHeaders))
	}
	if r.ContentLength > lim.MaxBodyBytes {
		return deny(pageGuardBody, "waf-limit-body", fmt.Sprintf("body of %d bytes, limit %d", r.ContentLength, lim.MaxBodyBytes))
	}
	// CR/LF in the path or query can reach a response header (a redirect's
	// Location, a reflected header): response splitting.
	if strings.ContainsAny(r.URL.Path, "\r\n") {
		return deny(pageGuardBad, "waf-response-splitting", "CR or LF in the request path")
	}
	if headerLikeLine(r.URL.RawQuery) {
		return deny(pageGuardBad, "waf-response-splitting", "CR or LF followed by a header line in the query")
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil && len(q) == 0 && r.URL.RawQuery != "" {
		return deny(pageGuardBad, "waf-bad-query", "query string does not parse: "+err.Error())
	}
	params := q
	form, d := s.readForm(r, lim)
	if d != nil {
		return d
	}
	if form != nil {
		params = url.Values{}
		for k, v := range q {
			params[k] = v
		}
		for k, v := range form {
			params[k] = append(params[k], v...)
		}
	}
	if d := checkParams(params, lim); d != nil {
		return d
	}
	p := &so.opts.Protect
	if !p.DisableMailHeaderCheck {
		for k, vs := range params {
			for _, v := range vs {
				if mailHeaderInjection(v) {
					return deny(pageGuardBad, "waf-mail-header-injection", "mail header injection in parameter "+k)
				}
			}
		}
	}
	if !p.AllowSessionInURL {
		for k := range q {
			if matchName(so.urlSessionNames, k) {
				return deny(pageGuardBad, "waf-session-in-url", "session id in URL parameter "+k)
			}
		}
		if strings.Contains(strings.ToLower(r.URL.Path), ";jsessionid=") || strings.Contains(strings.ToLower(r.URL.Path), ";sessionid=") {
			return deny(pageGuardBad, "waf-session-in-url", "session id in URL path")
		}
	}
	if !p.DisableCSRF && unsafeMethod(r.Method) && !so.csrfExempt(r.URL.Path) {
		if ok, why := so.sameSite(r); !ok {
			return deny(pageGuardCSRF, "waf-csrf", why)
		}
	}
	return nil
}

// headerLikeLine reports whether a raw query, once decoded, holds CR or
// LF followed by a header-like line "Name:" (response splitting through a
// reflected value). Multi-line text without such a line (a textarea sent
// by GET) passes.
func headerLikeLine(raw string) bool {
	l := strings.ToLower(raw)
	if !strings.Contains(l, "%0a") && !strings.Contains(l, "%0d") && !strings.ContainsAny(raw, "\r\n") {
		return false
	}
	v, err := url.QueryUnescape(raw)
	if err != nil {
		v = raw
	}
	for _, line := range strings.Split(strings.ReplaceAll(v, "\r", "\n"), "\n")[1:] {
		if looksLikeHeader(strings.TrimLeft(line, " \t")) {
			return true
		}
	}
	return false
}

func looksLikeHeader(line string) bool {
	name, _, ok := strings.Cut(line, ":")
	if !ok || name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isTchar(name[i]) {
			return false
		}
	}
	return true
}

var mailHeaders = []string{"to:", "cc:", "bcc:", "from:", "subject:", "reply-to:", "content-type:", "mime-version:", "sender:", "return-path:"}

// mailHeaderInjection reports whether v holds CR or LF followed (after
// optional whitespace) by a mail header name.
func mailHeaderInjection(v string) bool {
	for {
		i := strings.IndexAny(v, "\r\n")
		if i < 0 {
			return false
		}
		v = strings.TrimLeft(v[i+1:], "\r\n \t")
		for _, h := range mailHeaders {
			if len(v) >= len(h) && strings.EqualFold(v[:len(h)], h) {
				return true
			}
		}
	}
}

func checkParams(params url.Values, lim *Limits) *guardDecision {
	n := 0
	for k, vs := range params {
		n += len(vs)
		if len(k) > lim.MaxParamBytes {
			return deny(pageGuardParams, "waf-limit-param-size", fmt.Sprintf("parameter name longer than %d bytes", lim.MaxParamBytes))
		}
		for _, v := range vs {
			if len(v) > lim.MaxParamBytes {
				return deny(pageGuardParams, "waf-limit-param-size", fmt.Sprintf("parameter %.64s longer than %d bytes", k, lim.MaxParamBytes))
			}
		}
	}
	if n > lim.MaxParams {
		return deny(pageGuardParams, "waf-limit-params", fmt.Sprintf("%d parameters, limit %d", n, lim.MaxParams))
	}
	return nil
}

// readForm reads an application/x-www-form-urlencoded body (bounded by
// the body limit), parses it and puts the bytes back as r.Body. Other
// bodies are left alone (the body limit is enforced while they stream).
func (s *Server) readForm(r *http.Request, lim *Limits) (url.Values, *guardDecision) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" {
		r.Body = &limitedBody{rc: r.Body, left: lim.MaxBodyBytes}
		return nil, nil
	}
	b, err := readBody(r.Body, r.ContentLength, lim.MaxBodyBytes)
	r.Body.Close()
	if err != nil {
		return nil, deny(pageGuardBad, "waf-bad-body", "reading the body: "+err.Error())
	}
	if int64(len(b)) > lim.MaxBodyBytes {
		return nil, deny(pageGuardBody, "waf-limit-body", fmt.Sprintf("body longer than %d bytes", lim.MaxBodyBytes))
	}
	r.Body = newBufferedBody(b)
	r.ContentLength = int64(len(b))
	r.GetBody = func() (io.ReadCloser, error) { return newBufferedBody(b), nil }
	v, err := url.ParseQuery(string(b))
	if err != nil && len(v) == 0 && len(b) > 0 {
		return nil, deny(pageGuardBad, "waf-bad-body", "form body does not parse: "+err.Error())
	}
	return v, nil
}

// limitedBody fails a streamed body that grows past the limit, so the
// origin sees an aborted request, never a truncated-but-complete one.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

var errBodyTooLarge = errors.New("waf: request body exceeds the limit")

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errBodyTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

func (so *siteConfig) csrfExempt(p string) bool {
	for _, e := range so.opts.Protect.CSRFExempt {
		if strings.HasPrefix(p, e) {
			return true
		}
	}
	return false
}

// sameSite reports whether an unsafe request comes from the site itself.
func (so *siteConfig) sameSite(r *http.Request) (bool, string) {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true, ""
	case "cross-site":
		return false, "cross-site request (Sec-Fetch-Site: cross-site)"
	}
	src, what := r.Header.Get("Origin"), "Origin"
	if src == "" || src == "null" {
		if ref := r.Header.Get("Referer"); ref != "" {
			src, what = ref, "Referer"
		} else if src == "null" {
			return false, "Origin: null"
		}
	}
	if src == "" {
		if so.opts.Protect.CSRFRequireOrigin {
			return false, "unsafe method without Origin or Referer"
		}
		return true, "" // not a browser: no cross-site forgery possible
	}
	u, err := url.Parse(src)
	if err != nil || u.Host == "" {
		return false, what + " does not parse"
	}
	if sameHost(u.Host, r.Host) || equalFoldDot(u.Host, r.Host) {
		return true, ""
	}
	origin := strings.ToLower(u.Scheme + "://" + u.Host)
	for _, t := range so.opts.Protect.CSRFTrustedOrigins {
		if strings.EqualFold(strings.TrimSuffix(t, "/"), origin) {
			return true, ""
		}
	}
	return false, what + " " + u.Scheme + "://" + u.Host + " is another site"
}

func (so *siteConfig) isSessionName(n string) bool { return matchName(so.sessionNames, n) }

// matchName reports whether n is one of names (case-insensitive; a name
// ending in "*" is a prefix).
func matchName(names []string, n string) bool {
	for _, s := range names {
		if strings.HasSuffix(s, "*") {
			if len(n) >= len(s)-1 && strings.EqualFold(n[:len(s)-1], s[:len(s)-1]) {
				return true
			}
		} else if strings.EqualFold(n, s) {
			return true
		}
	}
	return false
}

// hardenWriter adds the clickjacking headers and hardens session cookies
// on the way to the client (also for answers from the cache).
type hardenWriter struct {
	http.ResponseWriter
	so    *siteConfig
	https bool
	done  bool
}

func (w *hardenWriter) WriteHeader(code int) {
	if !w.done && code >= 200 {
		w.done = true
		w.harden()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *hardenWriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *hardenWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *hardenWriter) harden() {
	h := w.Header()
	p := &w.so.opts.Protect
	hasFA := false
	for _, v := range h.Values("Content-Security-Policy") {
		if strings.Contains(strings.ToLower(v), "frame-ancestors") {
			hasFA = true
		}
	}
	if h.Get("X-Frame-Options") == "" && !hasFA {
		if w.so.frameOptions != "" {
			h.Set("X-Frame-Options", w.so.frameOptions)
		}
		if w.so.frameAncestors != "" {
			h.Add("Content-Security-Policy", "frame-ancestors "+w.so.frameAncestors)
		}
	}
	if p.DisableCookieHardening {
		return
	}
	cs := h["Set-Cookie"]
	copied := false
	for i, c := range cs {
		name, _, _ := strings.Cut(c, "=")
		if !w.so.isSessionName(strings.TrimSpace(name)) {
			continue
		}
		if cs2 := hardenCookie(c, w.https, w.so.sameSiteAttr); cs2 != c {
			if !copied {
				cs = append([]string(nil), cs...) // never write into a shared slice
				h["Set-Cookie"] = cs
				copied = true
			}
			cs[i] = cs2
		}
	}
}

// hardenCookie adds HttpOnly, SameSite (when missing) and Secure (over
// HTTPS) to one Set-Cookie value.
func hardenCookie(c string, https bool, sameSite string) string {
	var has [3]bool // httponly, samesite, secure
	for _, a := range strings.Split(c, ";")[1:] {
		k, _, _ := strings.Cut(strings.TrimSpace(a), "=")
		switch strings.ToLower(k) {
		case "httponly":
			has[0] = true
		case "samesite":
			has[1] = true
		case "secure":
			has[2] = true
		}
	}
	if !has[0] {
		c += "; HttpOnly"
	}
	if !has[1] && sameSite != "" {
		c += "; SameSite=" + sameSite
	}
	if !has[2] && https {
		c += "; Secure"
	}
	return c
}
