package waf

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf/cache"
)

// Server is the multi-site reverse proxy. It is an http.Handler (the
// proxy itself) and runs its own listeners with Serve / ServeTLS. All
// methods are safe for concurrent use. Close or Shutdown stops the
// listeners and the health-check loop.
type Server struct {
	cfg   Config
	log   *slog.Logger
	rp    *httputil.ReverseProxy
	tr    *http.Transport
	pools pools
	certs certs
	tlsc  *tls.Config

	mu      sync.Mutex
	servers []*http.Server
	closed  bool

	// gateway protections, DDoS limits and the CDN cache (gate.go)
	sites        map[string]*siteConfig
	defSite      *siteConfig
	ddos         *ddos
	chal         *challenger // nil: DDoS.NoChallenge
	geo          CountryLookup
	geoClose     func() error
	cache        *cache.Cache
	droppedConns atomic.Int64
	inflight     atomic.Int64 // requests past the gate (DDoS.GlobalInFlight)

	stop chan struct{}
	done chan struct{}
}

var _ http.Handler = (*Server)(nil)

// New validates cfg, fills in its defaults and returns a Server with its
// health-check loop running.
func New(cfg Config) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	s.certs.s = s
	d := &net.Dialer{Timeout: cfg.Timeouts.OriginDial, KeepAlive: 30 * time.Second}
	sourceDialer(d, cfg.Origins.SourceAddr)
	s.tr = &http.Transport{
		DialContext:           d.DialContext,
		TLSClientConfig:       cfg.Origins.TLS,
		TLSHandshakeTimeout:   cfg.Timeouts.OriginDial,
		ResponseHeaderTimeout: cfg.Timeouts.OriginResponse,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
	}
	s.rp = &httputil.ReverseProxy{
		Rewrite:       s.rewrite,
		Transport:     &retryTransport{s: s, base: s.tr},
		FlushInterval: -1, // stream: a CDN cache (later) buffers, not the proxy
		ErrorHandler:  s.originError,
		ErrorLog:      slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		BufferPool:    &bufPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}},
	}
	s.tlsc = &tls.Config{
		GetCertificate: s.certs.getCertificate,
		MinVersion:     cfg.TLS.MinVersion,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if err := s.setupProtections(); err != nil { // gate.go
		return nil, err
	}
	go s.healthLoop()
	return s, nil
}

// TLSConfig returns a copy of the TLS configuration of the HTTPS listener
// (per-site certificates by SNI, ALPN h2 and http/1.1), for integrators
// running their own TLS listener in front of ServeHTTP.
func (s *Server) TLSConfig() *tls.Config { return s.tlsc.Clone() }

// ListenAndServe listens on the TCP address addr and serves plain HTTP
// (with the per-site HTTPS redirect). It returns http.ErrServerClosed
// after Shutdown or Close.
func (s *Server) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// ListenAndServeTLS listens on the TCP address addr and serves HTTPS with
// the sites' certificates, HTTP/2 and HTTP/1.1.
func (s *Server) ListenAndServeTLS(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.ServeTLS(l)
}

// Serve serves plain HTTP on l: sites with SiteOptions.RedirectHTTPS get a
// 308 to https, the others are proxied.
func (s *Server) Serve(l net.Listener) error {
	hs := s.httpServer(http.HandlerFunc(s.servePlain))
	if hs == nil {
		l.Close()
		return http.ErrServerClosed
	}
	return hs.Serve(s.limitConns(l))
}

// ServeTLS serves HTTPS on l (a plain TCP listener: TLS is done here).
func (s *Server) ServeTLS(l net.Listener) error {
	hs := s.httpServer(s)
	if hs == nil {
		l.Close()
		return http.ErrServerClosed
	}
	hs.TLSConfig = s.tlsc.Clone()
	// TLSNextProto is left nil so net/http configures HTTP/2 itself, with
	// the limits of h2Config (rapid reset, CVE-2023-44487).
	hs.HTTP2 = h2Config()
	return hs.ServeTLS(s.limitConns(l), "", "")
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	t := s.cfg.Timeouts
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeaderTimeout,
		ReadTimeout:       t.ReadTimeout,
		IdleTimeout:       t.IdleTimeout,
		MaxHeaderBytes:    t.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.servers = append(s.servers, hs)
	return hs
}

// Shutdown stops the listeners, waits for requests in flight to finish (or
// ctx to end) and stops the health checks.
func (s *Server) Shutdown(ctx context.Context) error {
	hs := s.markClosed()
	var errs []error
	for _, h := range hs {
		errs = append(errs, h.Shutdown(ctx))
	}
	<-s.done
	s.tr.CloseIdleConnections()
	return errors.Join(append(errs, s.closeProtections())...)
}

// Close stops the listeners and closes all connections at once.
func (s *Server) Close() error {
	hs := s.markClosed()
	var errs []error
	for _, h := range hs {
		errs = append(errs, h.Close())
	}
	<-s.done
	s.tr.CloseIdleConnections()
	return errors.Join(append(errs, s.closeProtections())...)
}

func (s *Server) markClosed() []*http.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	return s.servers
}

// servePlain is the handler of plain-HTTP listeners.
func (s *Server) servePlain(w http.ResponseWriter, r *http.Request) {
	if site, t, ok := s.cfg.Directory.BySite(r.Host); ok {
		if o := s.cfg.Sites[site.Host]; o.RedirectHTTPS {
			s.redirect(w, r, site, t, o)
			return
		}
	}
	s.ServeHTTP(w, r)
}

func (s *Server) redirect(w http.ResponseWriter, r *http.Request, site *tenant.Site, t *tenant.Tenant, o SiteOptions) {
	start := s.cfg.Now()
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if o.HTTPSPort != 0 && o.HTTPSPort != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(o.HTTPSPort))
	}
	target := "https://" + host + r.URL.RequestURI()
	http.Redirect(w, r, target, http.StatusPermanentRedirect)
	ev := s.event(r, site, t, start)
	ev.HTTP.Status = http.StatusPermanentRedirect
	ev.Type, ev.Outcome = "access", "success"
	ev.Verdict = detect.Verdict{Action: detect.ActionRedirect, Rule: "waf-https-redirect", Reason: "plain HTTP redirected to HTTPS"}
	ev.Message = "redirect to " + target
	s.cfg.Sink.Emit(ev)
}

// ServeHTTP serves r for the site named by r.Host and emits one event.
// The steps, in order:
//
//  1. site: Directory.BySite (unknown host → 404 / 421);
//  2. gate (gate.go): address lists, country and path rules, DDoS limits
//     (ddos.go), size limits and the CSRF / injection / session checks
//     (guard.go) — a refusal is answered here;
//  3. inspection by the Engine (engine.go) — a block is answered here;
//  4. the CDN cache (waf/cache), which calls the origin path (balancing,
//     retry, ejection: transport.go) on a miss; responses on the way out
//     get the clickjacking headers and cookie hardening (guard.go);
//  5. the event: site, origin, cache status, action, bytes, duration and
//     whether the origin answered.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.cfg.Now()
	site, t, ok := s.cfg.Directory.BySite(r.Host)
	if !ok {
		s.unknownSite(w, r, start)
		return
	}
	sc := s.siteConf(site.Host)
	g := s.gate(w, r, site, t, sc, start)
	if g.answered {
		return
	}
	defer g.release()
	r, insp := s.inspect(w, r, site.Host) // engine.go; nil without an Engine
	if insp != nil && insp.stopped {
		ev := s.event(r, site, t, start)
		insp.annotate(&ev)
		s.cfg.Sink.Emit(ev)
		return
	}
	p, err := s.pools.forSite(site)
	if err != nil {
		s.log.Error("waf: site misconfigured", "site", site.Host, "err", err)
		ref := newRef()
		writePage(w, pageBadGateway, ref)
		ev := s.event(r, site, t, start)
		ev.ID, ev.HTTP.Status, ev.Outcome = ref, http.StatusBadGateway, "failure"
		ev.Message = err.Error()
		s.cfg.Sink.Emit(ev)
		return
	}
	p.lastUse.Store(start.UnixNano())

	hw := &hardenWriter{ResponseWriter: w, so: sc, https: r.TLS != nil}
	pw, inspectResponse := s.responseWriter(hw, insp)
	rw := &respWriter{ResponseWriter: pw}
	oi := &originInfo{}
	body := &countBody{rc: r.Body}
	r2 := r.WithContext(context.WithValue(r.Context(), originInfoKey{}, oi))
	if r.Body != nil && r.Body != http.NoBody {
		r2.Body = body
	}
	next := &originHandler{s: s, pool: p, site: sc}
	var res cache.Result
	if s.cache != nil {
		res = s.cache.Serve(rw, r2, next, cachePolicy(sc, site))
	} else {
		next.ServeHTTP(rw, r2)
		res = cache.Result{Status: cache.Bypass, Forwarded: true}
	}
	// our own error page (no origin answered) is not the origin's
	// response: not shown to the ResponseInspector
	inspectResponse(oi.st != nil && oi.st.ref != "")

	ev := s.event(r, site, t, start)
	ev.HTTP.Status = rw.status()
	ev.BytesIn, ev.BytesOut = body.n.Load(), rw.n
	ev.Verdict = detect.Verdict{Action: detect.ActionAllow}
	ev.Outcome = "success"
	g.annotate(&ev)
	answered := false
	if st := oi.st; st != nil {
		answered = st.ref == ""
		if st.ref != "" { // our error page: the origin did not answer
			ev.ID = st.ref
			ev.Outcome, ev.Message = "failure", st.errMsg
			if res.Status == cache.Stale {
				ev.Outcome, ev.Message = "success", "origin failed ("+st.errMsg+"); stored copy served"
			} else if r.Context().Err() != nil {
				ev.Outcome, ev.Message = "unknown", "client closed the request: "+st.errMsg
			}
		}
		if st.origin != nil {
			ev.Labels = append(ev.Labels, detect.Label{Key: "origin", Value: st.origin.name},
				detect.Label{Key: "attempts", Value: strconv.Itoa(st.attempts)})
			if ap, err := netip.ParseAddrPort(st.origin.url.Host); err == nil {
				ev.Dest = ap
			}
		}
	}
	ev.Labels = append(ev.Labels, detect.Label{Key: "cache", Value: res.Status.String()})
	if res.Detail != "" {
		ev.Labels = append(ev.Labels, detect.Label{Key: "cache_detail", Value: res.Detail})
	}
	insp.annotate(&ev)
	setLabel(&ev, "origin_answered", strconv.FormatBool(answered))
	s.cfg.Sink.Emit(ev)
}

// originInfo carries the origin path's state of a client request back to
// ServeHTTP (not set by the cache's own background revalidations).
type originInfo struct{ st *reqState }

type originInfoKey struct{}

// originHandler is the origin path behind the cache: the reverse proxy
// over the site's pool.
type originHandler struct {
	s    *Server
	pool *pool
	site *siteConfig
}

func (h *originHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &reqState{pool: h.pool, site: h.site}
	if oi, ok := r.Context().Value(originInfoKey{}).(*originInfo); ok && !cache.Background(r.Context()) {
		oi.st = st
	}
	h.s.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
}

// setLabel sets a label, replacing an earlier one of the same key.
func setLabel(ev *detect.Event, k, v string) {
	for i := range ev.Labels {
		if ev.Labels[i].Key == k {
			ev.Labels[i].Value = v
			return
		}
	}
	ev.Labels = append(ev.Labels, detect.Label{Key: k, Value: v})
}

// rewrite builds the origin request. ReverseProxy has already removed the
// hop-by-hop headers (Connection and the headers it names, Keep-Alive,
// Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade unless the request is an
// upgrade) and the incoming Forwarded / X-Forwarded-* headers from Out.
// The origin URL is set by the transport, which chooses the origin. The
// Host header is the client's (origins serve by virtual host).
func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	in := pr.In
	client := clientAddr(in).Addr()
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	h := pr.Out.Header
	if client.IsValid() {
		h.Set("X-Forwarded-For", appendXFF(in.Header.Values("X-Forwarded-For"), client))
		h.Set("Forwarded", appendForwarded(in.Header.Values("Forwarded"), client, in.Host, proto))
	}
	h.Set("X-Forwarded-Host", in.Host)
	h.Set("X-Forwarded-Proto", proto)
	pr.Out.Host = in.Host
	if st, _ := in.Context().Value(stateKey{}).(*reqState); st != nil && st.site != nil {
		if a := st.site.opts.OriginAuth; a.Header != "" {
			h.Set(a.Header, a.Value) // replaces any client-sent copy
		}
	}
}

// originError writes 502 or 504 when no origin answered.
func (s *Server) originError(w http.ResponseWriter, r *http.Request, err error) {
	p := pageBadGateway
	if isTimeout(err) {
		p = pageGatewayTimeout
	}
	ref := newRef()
	if st, _ := r.Context().Value(stateKey{}).(*reqState); st != nil {
		st.ref, st.errMsg = ref, err.Error()
	}
	if r.Context().Err() == nil {
		s.log.Debug("waf: origin failed", "host", r.Host, "err", err)
	}
	writePage(w, p, ref)
}

func (s *Server) unknownSite(w http.ResponseWriter, r *http.Request, start time.Time) {
	p := pageUnknownSite
	if r.TLS != nil && r.TLS.ServerName != "" && !sameHost(r.TLS.ServerName, r.Host) {
		p = pageMisdirected // HTTP/2 coalescing or a forged Host: retry on a fresh connection
	}
	ref := newRef()
	writePage(w, p, ref)
	ev := s.event(r, nil, nil, start)
	ev.ID, ev.HTTP.Status, ev.Outcome, ev.Type = ref, p.Status, "failure", "denied"
	ev.Verdict = detect.Verdict{Action: detect.ActionBlock, Rule: "waf-unknown-site", Reason: "no site is served for this host"}
	s.cfg.Sink.Emit(ev)
}

func sameHost(sni, host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return equalFoldDot(sni, host)
}

func equalFoldDot(a, b string) bool {
	trim := func(s string) string {
		if len(s) > 0 && s[len(s)-1] == '.' {
			return s[:len(s)-1]
		}
		return s
	}
	a, b = trim(a), trim(b)
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// event returns the common part of a request's event.
func (s *Server) event(r *http.Request, site *tenant.Site, t *tenant.Tenant, start time.Time) detect.Event {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	ev := detect.Event{
		Time: start, Module: "waf", Dataset: "waf.access", Category: "web", Type: "access",
		Action: "http_request", Duration: s.cfg.Now().Sub(start),
		Client: clientAddr(r), DestDomain: r.Host,
		URL:  scheme + "://" + r.Host + r.URL.RequestURI(),
		HTTP: detect.HTTPInfo{Method: r.Method, UserAgent: r.UserAgent(), Referrer: r.Referer()},
	}
	if t != nil {
		ev.Tenant = t.ID
	}
	if site != nil {
		ev.Labels = append(ev.Labels, detect.Label{Key: "site", Value: site.Host})
	}
	return ev
}

func clientAddr(r *http.Request) netip.AddrPort {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// respWriter counts the status and bytes sent to the client. Unwrap lets
// http.ResponseController (used by ReverseProxy to flush) reach the
// underlying writer.
type respWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (w *respWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *respWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// countBody counts the request body bytes read.
type countBody struct {
	rc io.ReadCloser
	n  atomic.Int64 // the transport may still be reading when the event is built
}

func (b *countBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countBody) Close() error { return b.rc.Close() }

// bufPool recycles the 32 KiB copy buffers of the reverse proxy (otherwise
// one per request).
type bufPool struct{ p sync.Pool }

func (bp *bufPool) Get() []byte  { return *bp.p.Get().(*[]byte) }
func (bp *bufPool) Put(b []byte) { bp.p.Put(&b) }
