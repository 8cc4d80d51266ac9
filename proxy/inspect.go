package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/proxy/internal/hostport"
	"github.com/jichitai/seccloud/tenant"
)

// InspectConfig turns on TLS inspection of CONNECT tunnels: the proxy
// answers the terminal's TLS handshake with a certificate minted by CA for
// the requested host, verifies the origin's certificate itself, and passes
// every decrypted request through the Decider (at URL level), the tenant
// restrictions and the Scanner. Tunnels that are not inspected are spliced
// untouched (the terminal sees the origin's own certificate).
type InspectConfig struct {
	// CA mints the leaf certificates. Required.
	CA *CA
	// All inspects every tunnel that is not bypassed. False inspects only
	// Hosts and the login hosts of Config.TenantRestrictions.
	All bool
	// Hosts are domains (with subdomains; "=host" for one host) inspected
	// even when All is false.
	Hosts []string
	// Bypass are domains never inspected (banking, pinned apps): spliced.
	// Bypass wins over All and Hosts, but not over tenant restrictions'
	// login hosts, which must be inspected to do their job.
	Bypass []string
	// BypassCategories are categories (looked up in Categories) never
	// inspected, e.g. "banking", "health".
	BypassCategories []string
	// Categories maps domains to categories (see ParseCategories).
	Categories map[string]string
	// RootCAs verifies origin certificates. Nil: the system roots.
	RootCAs *x509.CertPool
}

// Rule id of a failed origin certificate check.
const RuleUpstreamTLS = "proxy-upstream-tls"

// inspector serves decrypted connections with one net/http server.
type inspector struct {
	s         *Server
	cfg       InspectConfig
	hosts     patterns
	bypass    patterns
	bypassCat map[string]bool
	tlsConf   *tls.Config
	srv       *http.Server
	ln        *chanListener
	rp        *httputil.ReverseProxy

	mu         sync.Mutex
	transports map[string]*http.Transport
}

func newInspector(s *Server, cfg InspectConfig) (*inspector, error) {
	if cfg.CA == nil {
		return nil, errors.New("proxy: Config.Inspect.CA is required")
	}
	in := &inspector{s: s, cfg: cfg, transports: make(map[string]*http.Transport), bypassCat: make(map[string]bool)}
	if err := in.hosts.add(cfg.Hosts, "Config.Inspect.Hosts"); err != nil {
		return nil, err
	}
	if err := in.bypass.add(cfg.Bypass, "Config.Inspect.Bypass"); err != nil {
		return nil, err
	}
	for _, c := range cfg.BypassCategories {
		in.bypassCat[c] = true
	}
	in.tlsConf = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: in.getCertificate,
	}
	in.ln = newChanListener()
	in.rp = &httputil.ReverseProxy{
		Rewrite:        in.rewrite,
		Transport:      roundTripperFunc(in.roundTrip),
		ModifyResponse: in.modifyResponse,
		ErrorHandler:   in.errorHandler,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		FlushInterval:  -1,
	}
	in.srv = &http.Server{
		Handler:           in,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tls.Conn); ok {
				if ic, ok := tc.NetConn().(*inspectConn); ok {
					return context.WithValue(ctx, connKey{}, ic.st)
				}
			}
			return ctx
		},
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	in.srv.Protocols = &protos
	go func() { _ = in.srv.Serve(in.ln) }()
	return in, nil
}

// intercepts reports whether the tunnel of t to host is inspected.
func (in *inspector) intercepts(t *tenant.Tenant, host string) bool {
	if in.s.restrictionFor(t, host) != nil {
		return true
	}
	if t.Policy.NoTLSInspect {
		return false
	}
	r := Request{Host: host}
	if _, ok := in.bypass.match(&r); ok {
		return false
	}
	if c, ok := lookupSuffix(in.cfg.Categories, host); ok && in.bypassCat[c] {
		return false
	}
	if in.cfg.All {
		return true
	}
	_, ok := in.hosts.match(&r)
	return ok
}

func (in *inspector) close() {
	_ = in.srv.Close()
	in.ln.Close()
	in.mu.Lock()
	for _, tr := range in.transports {
		tr.CloseIdleConnections()
	}
	in.mu.Unlock()
}

func (in *inspector) shutdown(ctx context.Context) error {
	in.ln.Close()
	err := in.srv.Shutdown(ctx)
	in.mu.Lock()
	for _, tr := range in.transports {
		tr.CloseIdleConnections()
	}
	in.mu.Unlock()
	return err
}

// connState is one inspected tunnel.
type connState struct {
	cc       *clientConn
	t        *tenant.Tenant
	terminal netip.Addr
	host     string // CONNECT host, normalised
	port     uint16
}

type connKey struct{}
type reqKey struct{}

// reqState is one decrypted request.
type reqState struct {
	st   *connState
	ev   *detect.Event
	t    *tenant.Tenant
	host string
	port uint16
	url  string
	path string // "main", "breakout", "fallback"
	app  string
}

// inspectConn is the client side of an inspected tunnel: reads come from
// the client connection's buffer first, writes are counted. Close ends the
// tunnel (the clientConn goroutine waits for it).
type inspectConn struct {
	net.Conn
	r    io.Reader // bytes the client sent early, then the connection
	st   *connState
	once sync.Once
	done chan struct{}
	in   atomic.Int64
	out  atomic.Int64
}

func (c *inspectConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *inspectConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}
func (c *inspectConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.done) })
	return err
}

// intercept answers the CONNECT and hands the connection to the
// inspecting HTTP server; it returns when the terminal or the server ends
// the connection.
func (cc *clientConn) intercept(req *http.Request, t *tenant.Tenant, terminal netip.Addr, host string, port uint16, ev *detect.Event) bool {
	s := cc.s
	ev.Labels = append(ev.Labels, detect.Label{Key: "tls", Value: "inspected"})
	ev.HTTP.Status = 200
	head := "HTTP/1.1 200 Connection established\r\n\r\n"
	if s.cfg.Via != "" {
		head = "HTTP/1.1 200 Connection established\r\nVia: 1.1 " + s.cfg.Via + "\r\n\r\n"
	}
	_ = cc.cnt.Conn.SetWriteDeadline(s.now().Add(s.cfg.IdleTimeout))
	cc.bw.WriteString(head)
	if err := cc.flush(); err != nil {
		ev.Outcome = "failure"
		return false
	}
	_ = cc.cnt.Conn.SetDeadline(time.Time{})
	// The inspecting server owns the connection from here on; bytes
	// already buffered (an early ClientHello) are handed over first.
	var early []byte
	if k := cc.br.Buffered(); k > 0 {
		b, _ := cc.br.Peek(k)
		early = append(early, b...)
		_, _ = cc.br.Discard(k)
	}
	cc.releaseBufio()
	ic := &inspectConn{Conn: cc.cnt.Conn, r: io.MultiReader(bytes.NewReader(early), cc.cnt.Conn), done: make(chan struct{}),
		st: &connState{cc: cc, t: t, terminal: terminal, host: host, port: port}}
	if !s.insp.ln.push(tls.Server(ic, s.insp.tlsConf)) {
		ic.Close()
		ev.Outcome = "failure"
		return false
	}
	<-ic.done
	// Counted apart (reads may still be ending on the server's goroutine).
	cc.cnt.r += ic.in.Load()
	cc.cnt.w += ic.out.Load()
	ev.Outcome = "success"
	return false
}

func (in *inspector) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	host := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if host == "" {
		if ic, ok := hello.Conn.(*inspectConn); ok {
			host = ic.st.host
		}
	}
	return in.cfg.CA.Leaf(host)
}

// ServeHTTP handles one decrypted request.
func (in *inspector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := in.s
	st, _ := r.Context().Value(connKey{}).(*connState)
	if st == nil {
		http.Error(w, "no tunnel", http.StatusInternalServerError)
		return
	}
	cc := st.cc
	start := s.now()
	terminal := st.terminal.String()
	ev := &detect.Event{Time: start, Module: "proxy", Dataset: "proxy.access", Kind: "event", Category: "web",
		Type: "access", Action: "http_request", Client: cc.client, Terminal: terminal, Tenant: st.t.ID,
		Labels: []detect.Label{{Key: "tls", Value: "inspected"}}}
	ev.HTTP.Method = r.Method
	ev.HTTP.UserAgent = r.UserAgent()
	ev.HTTP.Referrer = r.Referer()
	cw := &countWriter{ResponseWriter: w}
	defer func() {
		ev.Duration = s.now().Sub(start)
		ev.HTTP.Status = cw.status
		ev.BytesOut = cw.n
		if r.ContentLength > 0 {
			ev.BytesIn = r.ContentLength
		}
		if ev.Outcome == "" {
			ev.Outcome = "success"
			if cw.status >= 400 && ev.Type == "denied" {
				ev.Outcome = "failure"
			}
		}
		s.sink.Emit(*ev)
	}()

	h, port, err := hostport.Split(r.Host, st.port)
	var name string
	var ip netip.Addr
	if err == nil {
		name, ip, err = hostport.Normalize(h)
	}
	url := "https://" + r.Host + r.URL.RequestURI()
	ev.URL = url
	if err != nil {
		in.page(cw, errorPage(400, "接続先のホスト名が正しくありません。", "Invalid destination host.", url, ref(ev)), ev)
		return
	}
	if !ip.IsValid() {
		ev.DestDomain = name
	}
	rt := s.routeFor(st.t, name)
	rt.label(ev)
	rs := &reqState{st: st, ev: ev, t: st.t, host: name, port: port, url: url, path: rt.path, app: rt.app}
	if s.cfg.Decider != nil {
		v, err := s.cfg.Decider.Decide(r.Context(), Request{Tenant: st.t, Client: cc.client, Terminal: st.terminal,
			Method: r.Method, Host: name, Port: port, Path: r.URL.RequestURI(), URL: url})
		if err != nil {
			s.log.Error("proxy: decider failed; request refused", "err", err, "url", url)
			v = detect.Verdict{Action: detect.ActionBlock, Rule: RulePolicyError, Reason: "policy error"}
		}
		ev.Verdict = v
		if v.Action == detect.ActionBlock {
			in.blockPage(cw, v, url, ev)
			return
		}
	}
	if rr := s.restrictionFor(st.t, name); rr != nil {
		rr.apply(r.Header)
		ev.Labels = append(ev.Labels, detect.Label{Key: "tenant_restrictions", Value: rr.vendor})
	}
	ctx := context.WithValue(r.Context(), reqKey{}, rs)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if ta, ok := i.Conn.RemoteAddr().(*net.TCPAddr); ok {
			ev.Dest = ta.AddrPort()
		}
	}})
	in.rp.ServeHTTP(cw, r.WithContext(ctx))
}

func ref(ev *detect.Event) string {
	if ev.ID == "" {
		ev.ID = newRef()
	}
	return ev.ID
}

func (in *inspector) page(w http.ResponseWriter, p page, ev *detect.Event) {
	body := p.render()
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if in.s.cfg.Via != "" {
		h.Set("Via", "1.1 "+in.s.cfg.Via)
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
	if ev.Outcome == "" {
		ev.Outcome = "failure"
	}
}

func (in *inspector) blockPage(w http.ResponseWriter, v detect.Verdict, url string, ev *detect.Event) {
	ev.Verdict = v
	ev.Type = "denied"
	in.page(w, blockPage(v, url, ref(ev)), ev)
}

func (in *inspector) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "https"
	pr.Out.URL.Host = pr.In.Host
	pr.Out.Host = pr.In.Host
	if in.s.cfg.Via != "" {
		pr.Out.Header.Add("Via", "1.1 "+in.s.cfg.Via)
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTrip sends the request with the tenant's transport (its egress).
func (in *inspector) roundTrip(r *http.Request) (*http.Response, error) {
	rs, _ := r.Context().Value(reqKey{}).(*reqState)
	if rs == nil {
		return nil, errors.New("proxy: request without state")
	}
	return in.transport(rs.t, rs.path == PathBreakout).RoundTrip(r)
}

// transport returns the tenant's upstream transport; transports are keyed
// by tenant, egress addresses and line (main or breakout), so connections
// of one tenant never carry another's requests, and breakout requests
// never ride a main-line connection (nor the reverse).
func (in *inspector) transport(t *tenant.Tenant, brk bool) *http.Transport {
	key := t.ID + "|" + fmt.Sprint(t.EgressAddr, brk)
	in.mu.Lock()
	defer in.mu.Unlock()
	if tr, ok := in.transports[key]; ok {
		return tr
	}
	s := in.s
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			tt := t
			if rs, ok := ctx.Value(reqKey{}).(*reqState); ok {
				tt = rs.t
			}
			return s.safeDial(ctx, tt, addr, brk)
		},
		TLSClientConfig:       &tls.Config{RootCAs: in.cfg.RootCAs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   max(s.cfg.MaxIdlePerHost, 0),
		IdleConnTimeout:       s.cfg.UpstreamIdleTimeout,
		TLSHandshakeTimeout:   s.cfg.DialTimeout,
		ResponseHeaderTimeout: s.cfg.ResponseHeaderTimeout,
		DisableCompression:    true,
	}
	in.transports[key] = tr
	return tr
}

// destError is a destination refused by the structural checks.
type destError struct{ v detect.Verdict }

func (e *destError) Error() string { return "proxy: destination refused: " + e.v.Reason }

// verdictError carries a blocking verdict out of ModifyResponse.
type verdictError struct{ v detect.Verdict }

func (e *verdictError) Error() string { return "proxy: blocked: " + e.v.Reason }

// safeDial resolves addr, checks every answer for tenant t and dials a
// checked address from t's egress.
func (s *Server) safeDial(ctx context.Context, t *tenant.Tenant, addr string, brk bool) (net.Conn, error) {
	h, port, err := hostport.Split(addr, 443)
	var name string
	var ip netip.Addr
	if err == nil {
		name, ip, err = hostport.Normalize(h)
	}
	if err != nil {
		return nil, err
	}
	var buf [1]netip.Addr
	addrs, v, err := s.resolve(ctx, t, name, ip, buf[:])
	if err != nil {
		return nil, err
	}
	if v.Action == detect.ActionBlock {
		return nil, &destError{v}
	}
	rt := route{path: PathMain}
	if brk {
		rt.path = PathBreakout
	}
	c, _, _, err := s.dialRoute(ctx, t, &rt, addrs, port)
	return c, err
}

// modifyResponse scans the body of a decrypted response.
func (in *inspector) modifyResponse(resp *http.Response) error {
	s := in.s
	rs, _ := resp.Request.Context().Value(reqKey{}).(*reqState)
	if s.cfg.Scanner == nil || rs == nil || resp.Request.Method == http.MethodHead ||
		resp.StatusCode < 200 || resp.StatusCode == 204 || resp.StatusCode == 304 {
		return nil
	}
	if resp.ContentLength > s.cfg.ScanMaxBytes {
		s.scanCnt.skipped.Add(1)
		rs.ev.Labels = append(rs.ev.Labels, detect.Label{Key: "scan", Value: "skipped-too-large"})
		return nil
	}
	buf, err := readForScan(resp.Body, s.cfg.ScanMaxBytes)
	if errors.Is(err, errTooBigToScan) {
		s.scanCnt.skipped.Add(1)
		rs.ev.Labels = append(rs.ev.Labels, detect.Label{Key: "scan", Value: "skipped-too-large"})
		resp.Body = readCloser{io.MultiReader(strings.NewReader(string(buf)), resp.Body), resp.Body}
		return nil
	}
	resp.Body.Close()
	if err != nil {
		return err
	}
	if v := s.scanBody(buf, rs.url, rs.ev); v.Action == detect.ActionBlock {
		return &verdictError{v}
	}
	resp.Body = io.NopCloser(strings.NewReader(string(buf)))
	resp.ContentLength = int64(len(buf))
	resp.TransferEncoding = nil
	resp.Header.Set("Content-Length", strconv.Itoa(len(buf)))
	return nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

func (in *inspector) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	rs, _ := r.Context().Value(reqKey{}).(*reqState)
	if rs == nil {
		http.Error(w, "proxy error", http.StatusBadGateway)
		return
	}
	var ve *verdictError
	var de *destError
	var cve *tls.CertificateVerificationError
	var he x509.HostnameError
	var ue x509.UnknownAuthorityError
	var ie x509.CertificateInvalidError
	switch {
	case errors.As(err, &ve):
		in.blockPage(w, ve.v, rs.url, rs.ev)
	case errors.As(err, &de):
		in.blockPage(w, de.v, rs.url, rs.ev)
	case errors.As(err, &cve) || errors.As(err, &he) || errors.As(err, &ue) || errors.As(err, &ie):
		rs.ev.Verdict = detect.Verdict{Action: detect.ActionBlock, Rule: RuleUpstreamTLS, Reason: err.Error()}
		rs.ev.Type = "denied"
		in.page(w, errorPage(502, "接続先サーバーの証明書を検証できなかったため、接続を中止しました（なりすましの恐れがあります）。",
			"The destination server's certificate could not be verified, so the connection was stopped: "+err.Error(),
			rs.url, ref(rs.ev)), rs.ev)
	case errors.Is(err, context.DeadlineExceeded):
		in.page(w, errorPage(504, "接続先のサーバーの応答がタイムアウトしました。", "The destination server timed out.", rs.url, ref(rs.ev)), rs.ev)
	case errors.As(err, new(errResolve)):
		in.page(w, errorPage(502, "接続先のホスト名を解決できませんでした。", "The destination host name could not be resolved.", rs.url, ref(rs.ev)), rs.ev)
	default:
		in.s.log.Debug("proxy: inspected request failed", "url", rs.url, "err", err)
		in.page(w, errorPage(502, "接続先のサーバーに接続できませんでした。", "The destination server could not be reached.", rs.url, ref(rs.ev)), rs.ev)
	}
}

// countWriter records the status and counts body bytes.
type countWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countWriter) WriteHeader(code int) {
	if w.status == 0 || w.status < 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (w *countWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// chanListener hands connections accepted elsewhere to an http.Server.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// Paths on the proxy port (origin-form requests from a tenant's
// terminals) where the inspection CA certificate can be downloaded, for
// installing it in the terminals' trust stores: PEM and DER.
const (
	CAPath    = "/seccloud-ca.pem"
	CAPathDER = "/seccloud-ca.crt"
)

// serveCA answers a terminal's download of the inspection CA certificate.
func (cc *clientConn) serveCA(req *http.Request, ev *detect.Event) bool {
	ca := cc.s.insp.cfg.CA
	body, ctype := ca.CertPEM(), "application/x-pem-file"
	if req.URL.Path == CAPathDER {
		body, ctype = ca.Certificate().Raw, "application/x-x509-ca-cert"
	}
	ev.HTTP.Status = 200
	ev.Outcome = "success"
	bw := cc.bw
	bw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: " + ctype + "\r\nCache-Control: no-store\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n")
	if req.Method != http.MethodHead {
		bw.Write(body)
	}
	return cc.flush() == nil && !req.Close
}
