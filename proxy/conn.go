package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/proxy/internal/hostport"
	"github.com/jichitai/seccloud/tenant"
)

// Connection states, for Shutdown: only idle connections (between two
// requests) are closed at once; a new connection gets ReadHeaderTimeout to
// start its first request.
const (
	stateNew int32 = iota
	stateIdle
	stateActive
)

// countConn counts the bytes read from and written to a client connection.
// Reads and writes each happen on one goroutine at a time.
type countConn struct {
	net.Conn
	r, w int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.r += int64(n)
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.w += int64(n)
	return n, err
}

// clientConn is one client connection and its keep-alive loop.
type clientConn struct {
	s      *Server
	cnt    countConn
	lr     io.LimitedReader
	br     *bufio.Reader
	bw     *bufio.Writer
	client netip.AddrPort
	cstr   string // client address text, the default terminal
	state  atomic.Int32
	slot   string // tenant id holding a TenantConns slot
	held   bool
	ev     detect.Event
	abuf   [1]netip.Addr
	fh     fastHead

	// A CONNECT tunnel handed to the Server's loop (tunnel_linux.go):
	// the serving goroutine returns and the tunnel ends the connection.
	detached  bool
	start     time.Time // of the current request
	in0, out0 int64     // byte counters at its start

	mu  sync.Mutex
	up  net.Conn // upstream in use, closed by forceClose
	tun *tunnel  // detached tunnel, aborted by forceClose
}

func (s *Server) newClientConn(c net.Conn) *clientConn {
	cc := &clientConn{s: s}
	cc.cnt.Conn = c
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		cc.client = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	cc.cstr = cc.client.Addr().String()
	if !s.trackConn(cc, true) {
		c.Close()
		return nil
	}
	return cc
}

var bufioPool = struct{ r, w sync.Pool }{}

func getBufio(r io.Reader, w io.Writer) (*bufio.Reader, *bufio.Writer) {
	br, _ := bufioPool.r.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReaderSize(r, 4096)
	} else {
		br.Reset(r)
	}
	bw, _ := bufioPool.w.Get().(*bufio.Writer)
	if bw == nil {
		bw = bufio.NewWriterSize(w, 4096)
	} else {
		bw.Reset(w)
	}
	return br, bw
}

func putBufio(br *bufio.Reader, bw *bufio.Writer) {
	if br != nil {
		br.Reset(nil)
		bufioPool.r.Put(br)
	}
	if bw != nil {
		bw.Reset(nil)
		bufioPool.w.Put(bw)
	}
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// releaseBufio gives the client connection's buffers back to the pool
// for a tunnel, which no longer uses them (the connection ends with it).
func (cc *clientConn) releaseBufio() {
	putBufio(cc.br, cc.bw)
	cc.br, cc.bw = nil, nil
}

func (cc *clientConn) closeIfIdle() {
	if cc.state.Load() == stateIdle {
		cc.cnt.Conn.Close()
	}
}

func (cc *clientConn) forceClose() {
	cc.cnt.Conn.Close()
	cc.mu.Lock()
	if cc.up != nil {
		cc.up.Close()
	}
	tun := cc.tun
	cc.mu.Unlock()
	if tun != nil {
		tun.abort() // the loop would not notice the closed sockets
	}
}

func (cc *clientConn) setUp(c net.Conn) {
	cc.mu.Lock()
	cc.up = c
	cc.mu.Unlock()
}

func (cc *clientConn) serve() {
	s := cc.s
	cc.lr.R = &cc.cnt
	cc.br, cc.bw = getBufio(&cc.lr, &cc.cnt)
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("proxy: panic serving a connection", "client", cc.client, "panic", r, "stack", string(debug.Stack()))
		}
		if !cc.detached { // a detached tunnel ends the connection itself
			cc.end()
		}
	}()
	for cc.next() {
	}
}

// end closes the client connection and gives back what it held.
func (cc *clientConn) end() {
	s := cc.s
	cc.cnt.Conn.Close()
	putBufio(cc.br, cc.bw)
	cc.br, cc.bw = nil, nil
	if cc.held {
		s.cfg.TenantConns.Release(cc.slot)
	}
	s.trackConn(cc, false)
}

// next serves one request; it reports whether the connection stays open.
func (cc *clientConn) next() bool {
	s := cc.s
	c := cc.cnt.Conn
	wait := s.cfg.IdleTimeout
	if cc.state.Load() == stateNew {
		wait = min(wait, s.cfg.ReadHeaderTimeout)
	} else {
		cc.state.Store(stateIdle)
	}
	if s.shutdown.Load() {
		return false
	}
	cc.lr.N = int64(s.cfg.MaxHeaderBytes) + 4096
	_ = c.SetReadDeadline(s.now().Add(wait))
	if _, err := cc.br.Peek(1); err != nil {
		return false
	}
	cc.state.Store(stateActive)
	start := s.now()
	_ = c.SetReadDeadline(start.Add(s.cfg.ReadHeaderTimeout))
	in0, out0 := cc.cnt.r-int64(cc.br.Buffered()), cc.cnt.w
	cc.start, cc.in0, cc.out0 = start, in0, out0

	ev := &cc.ev
	*ev = detect.Event{Time: start, Module: "proxy", Dataset: "proxy.access", Kind: "event", Category: "web",
		Type: "access", Action: "http_request", Client: cc.client, Terminal: cc.cstr}
	req, err := http.ReadRequest(cc.br)
	keep := false
	if err != nil {
		cc.badRequest(err, ev)
	} else {
		cc.lr.N = math.MaxInt64
		_ = c.SetReadDeadline(time.Time{})
		keep = cc.handle(req, ev)
		if cc.detached {
			return false // the tunnel owns ev now and emits it at its end
		}
	}
	if ev.HTTP.Status == 0 && ev.Outcome == "" {
		return false // nothing worth an event (client went away between requests)
	}
	ev.Duration = s.now().Sub(start)
	ev.BytesIn = cc.cnt.r - in0
	if cc.br != nil {
		ev.BytesIn -= int64(cc.br.Buffered())
	}
	ev.BytesOut = cc.cnt.w - out0
	s.sink.Emit(*ev)
	return keep && !s.shutdown.Load()
}

// badRequest answers a request that could not be read.
func (cc *clientConn) badRequest(err error, ev *detect.Event) {
	var ne net.Error
	switch {
	case cc.lr.N <= 0:
		cc.tenantOf(ev)
		cc.writePage(errorPage(431, "リクエストヘッダーが大きすぎます。", "The request header is too large.", "", cc.ref(ev)), false, ev)
	case errors.As(err, &ne) && ne.Timeout():
		cc.tenantOf(ev)
		ev.Outcome = "failure"
		ev.HTTP.Status = 408
		_, _ = cc.bw.WriteString("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		_ = cc.bw.Flush()
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		// The client went away mid-header: nothing to answer.
	default:
		cc.tenantOf(ev)
		cc.writePage(errorPage(400, "リクエストの形式が正しくありません。", "Malformed request.", "", cc.ref(ev)), false, ev)
	}
}

// tenantOf fills the event's tenant from the client address.
func (cc *clientConn) tenantOf(ev *detect.Event) *tenant.Tenant {
	t, ok := cc.s.cfg.Directory.ByAddr(cc.client.Addr())
	if !ok {
		return nil
	}
	ev.Tenant = t.ID
	return t
}

func (cc *clientConn) ref(ev *detect.Event) string {
	if ev.ID == "" {
		ev.ID = newRef()
	}
	return ev.ID
}

// writePage writes an HTML page response and records it in ev.
func (cc *clientConn) writePage(p page, keep bool, ev *detect.Event) {
	body := p.render()
	ev.HTTP.Status = p.Status
	if ev.Outcome == "" {
		ev.Outcome = "failure"
	}
	bw := cc.bw
	_, _ = bw.WriteString(statusLine(p.Status))
	_, _ = bw.WriteString("Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: ")
	_, _ = bw.WriteString(strconv.Itoa(len(body)))
	if !keep {
		_, _ = bw.WriteString("\r\nConnection: close")
	}
	if cc.s.cfg.Via != "" {
		_, _ = bw.WriteString("\r\nVia: 1.1 " + cc.s.cfg.Via)
	}
	_, _ = bw.WriteString("\r\n\r\n")
	_, _ = bw.Write(body)
	_ = bw.Flush()
}

// block answers a blocking verdict with the block page.
func (cc *clientConn) block(v detect.Verdict, url string, keep bool, ev *detect.Event) bool {
	ev.Verdict = v
	ev.Type = "denied"
	p := blockPage(v, url, cc.ref(ev))
	cc.writePage(p, keep, ev)
	return keep
}

// bodyless reports whether the request has no body to read.
func bodyless(req *http.Request) bool {
	return req.ContentLength == 0 && len(req.TransferEncoding) == 0
}

// handle serves a parsed request; it reports whether the connection stays
// open.
func (cc *clientConn) handle(req *http.Request, ev *detect.Event) bool {
	s := cc.s
	ev.HTTP.Method = req.Method
	ev.HTTP.UserAgent = req.UserAgent()
	ev.HTTP.Referrer = req.Referer()
	ev.URL = req.RequestURI
	keep := !req.Close && bodyless(req)

	if req.ProtoMajor != 1 {
		// "PRI * HTTP/2.0" (h2c prior knowledge) or any other version:
		// refused deliberately; the proxy listener speaks HTTP/1.x.
		cc.writePage(errorPage(505, "HTTP/2 はこのプロキシでは使用できません。HTTP/1.1 で接続してください。",
			"HTTP/2 is not supported on the proxy port; use HTTP/1.1.", "", cc.ref(ev)), false, ev)
		return false
	}
	t := cc.tenantOf(ev)
	if t == nil {
		cc.block(detect.Verdict{Action: detect.ActionBlock, Rule: RuleNoTenant,
			Reason: "source " + cc.cstr + " belongs to no tenant"}, req.RequestURI, false, ev)
		return false
	}
	if s.cfg.TenantConns != nil && !cc.held {
		if !s.cfg.TenantConns.TryAcquire(t.ID) {
			cc.block(detect.Verdict{Action: detect.ActionBlock, Rule: RuleTooMany, RuleName: t.ID,
				Reason: "tenant " + t.ID + " holds too many connections"}, req.RequestURI, false, ev)
			return false
		}
		cc.held, cc.slot = true, t.ID
	}
	terminal := cc.client.Addr()
	if len(s.cfg.TrustedProxies) > 0 && s.trusted(terminal) {
		if a, ok := terminalFromXFF(req.Header["X-Forwarded-For"], s.trusted); ok {
			terminal = a
			ev.Terminal = a.String()
		}
	}
	if req.Method == http.MethodConnect {
		return cc.tunnel(req, t, terminal, ev)
	}
	if s.insp != nil && req.URL.Scheme == "" && (req.Method == http.MethodGet || req.Method == http.MethodHead) &&
		(req.URL.Path == CAPath || req.URL.Path == CAPathDER) {
		return cc.serveCA(req, ev)
	}
	if req.URL.Scheme != "http" || req.URL.Host == "" {
		ja, en := "このポートはプロキシです。http:// で始まる URL を指定してください。", "This port is a proxy: send absolute http:// URLs."
		if req.URL.Scheme != "" {
			ja, en = "http:// 以外の URL はプロキシで直接扱えません（https は CONNECT を使用）。", "Only http:// URLs are proxied directly (https uses CONNECT)."
		}
		cc.writePage(errorPage(400, ja, en, req.RequestURI, cc.ref(ev)), false, ev)
		return false
	}
	h, port, err := hostport.Split(req.URL.Host, 80)
	var name string
	var ip netip.Addr
	if err == nil {
		name, ip, err = hostport.Normalize(h)
	}
	if err != nil {
		cc.writePage(errorPage(400, "接続先のホスト名が正しくありません。", "Invalid destination host.", req.RequestURI, cc.ref(ev)), false, ev)
		return false
	}
	path, _ := originForm(req.RequestURI)
	if !ip.IsValid() {
		ev.DestDomain = name
	} else {
		ev.Dest = netip.AddrPortFrom(ip, port) // kept when the request is refused before dialing
	}
	addrs, ok, keepOpen := cc.decideAndResolve(Request{Tenant: t, Client: cc.client, Terminal: terminal,
		Method: req.Method, Host: name, Port: port, Path: path, URL: req.RequestURI}, ip, keep, ev)
	if !ok {
		return keepOpen
	}
	return cc.forward(req, t, s.routeFor(t, name), addrs, port, path, ev)
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// getUpstream returns a pooled connection to one of addrs, or dials one,
// on the route's egress path.
func (cc *clientConn) getUpstream(t *tenant.Tenant, rt *route, addrs []netip.Addr, port uint16) (*upConn, error) {
	s := cc.s
	brk := rt.path == PathBreakout
	for _, a := range addrs {
		eg, ok := t.EgressFor(a)
		if brk {
			eg, ok = s.brk.local(a), true
		}
		if !ok {
			continue
		}
		if u := s.pool.get(poolKey{eg, netip.AddrPortFrom(a, port), brk}); u != nil {
			return u, nil
		}
	}
	c, dst, eg, err := s.dialRoute(context.Background(), t, rt, addrs, port)
	if err != nil {
		return nil, err
	}
	u := &upConn{c: c, key: poolKey{eg, dst, rt.path == PathBreakout}}
	u.br, u.bw = getBufio(c, c)
	return u, nil
}

// forward relays an HTTP request upstream and the response back; it
// reports whether the client connection stays open.
func (cc *clientConn) forward(req *http.Request, t *tenant.Tenant, rt route, addrs []netip.Addr, port uint16, path string, ev *detect.Event) bool {
	s := cc.s
	if req.Header.Get("Expect") != "" && !bodyless(req) {
		// Answer 100-continue ourselves: the upstream gets the body at once.
		if hasToken(req.Header["Expect"], "100-continue") {
			_, _ = cc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if cc.bw.Flush() != nil {
				return false
			}
		}
	}
	var u *upConn
	var resp *http.Response
	var fast *fastHead
	tryFast := s.cfg.Scanner == nil && !s.noFastHead && !isWebSocket(req)
	for attempt := 0; ; attempt++ {
		var err error
		u, err = cc.getUpstream(t, &rt, addrs, port)
		if err != nil {
			s.log.Debug("proxy: upstream dial failed", "url", req.RequestURI, "err", err)
			cc.writePage(errorPage(502, "接続先のサーバーに接続できませんでした。", "The destination server could not be reached.",
				req.RequestURI, cc.ref(ev)), bodyless(req) && !req.Close, ev)
			return bodyless(req) && !req.Close
		}
		ev.Dest = u.key.dest
		if attempt == 0 {
			rt.label(ev)
		}
		cc.setUp(u.c)
		err = cc.writeRequest(u, req, path)
		if err == nil && tryFast {
			var ok bool
			if fast, ok, err = cc.peekHead(u, req); !ok {
				fast = nil
			}
		}
		if err == nil && fast == nil {
			resp, err = cc.readResponse(u, req)
		}
		if err == nil {
			break
		}
		cc.setUp(nil)
		u.close()
		if u.reused && attempt == 0 && bodyless(req) && !errors.Is(err, errClientWrite) {
			continue // a pooled connection the origin had closed: retry once on a fresh one
		}
		if errors.Is(err, errClientWrite) {
			ev.Outcome = "failure"
			return false
		}
		status, ja, en := 502, "接続先のサーバーから正しい応答がありませんでした。", "The destination server sent no valid response."
		if errors.Is(err, os.ErrDeadlineExceeded) {
			status, ja, en = 504, "接続先のサーバーの応答がタイムアウトしました。", "The destination server timed out."
		}
		cc.writePage(errorPage(status, ja, en, req.RequestURI, cc.ref(ev)), false, ev)
		return false
	}
	var reusable, keep bool
	var err error
	if fast != nil {
		ev.HTTP.Status = fast.status
		reusable, keep, err = cc.writeFast(u, req, fast)
	} else {
		ev.HTTP.Status = resp.StatusCode
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return cc.relayUpgrade(u, req, resp, ev)
		}
		reusable, keep, err = cc.writeResponse(u, req, resp)
	}
	cc.setUp(nil)
	if err != nil {
		ev.Outcome = "failure"
		u.close()
		return false
	}
	if ev.Outcome == "" {
		ev.Outcome = "success"
	}
	if reusable {
		s.pool.put(u)
	} else {
		u.close()
	}
	return keep
}

var errClientWrite = errors.New("proxy: client write failed")

// writeRequest sends the request head and body upstream.
func (cc *clientConn) writeRequest(u *upConn, req *http.Request, path string) error {
	s := cc.s
	bw := u.bw
	_ = u.c.SetWriteDeadline(s.now().Add(s.cfg.IdleTimeout))
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(path)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(req.URL.Host)
	bw.WriteString("\r\n")
	conn := req.Header["Connection"]
	for k, vs := range req.Header {
		if hopByHop(k) || k == "Content-Length" || k == "Expect" || len(conn) > 0 && connectionToken(k, conn) {
			continue
		}
		if k == "X-Forwarded-For" {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if s.cfg.ForwardXFF {
		// One line: the incoming list with the client appended.
		bw.WriteString("X-Forwarded-For: ")
		for _, v := range req.Header["X-Forwarded-For"] {
			bw.WriteString(v)
			bw.WriteString(", ")
		}
		bw.WriteString(cc.cstr)
		bw.WriteString("\r\n")
	}
	if s.cfg.Via != "" {
		bw.WriteString("Via: 1.1 ")
		bw.WriteString(s.cfg.Via)
		bw.WriteString("\r\n")
	}
	if isWebSocket(req) {
		bw.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\n")
	}
	switch {
	case req.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(req.ContentLength, 10))
		bw.WriteString("\r\n\r\n")
		if _, err := cc.copyFromClient(bw, req.Body); err != nil {
			return err
		}
	case len(req.TransferEncoding) > 0:
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		cw := httputil.NewChunkedWriter(bw)
		if _, err := cc.copyFromClient(cw, req.Body); err != nil {
			return err
		}
		cw.Close()
		bw.WriteString("\r\n")
	default:
		bw.WriteString("\r\n")
	}
	return bw.Flush()
}

// copyFromClient copies a request body, bounding each read from the client
// by IdleTimeout. A client failure is marked errClientWrite (not retried,
// no error page).
func (cc *clientConn) copyFromClient(dst io.Writer, body io.Reader) (int64, error) {
	s := cc.s
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		_ = cc.cnt.Conn.SetReadDeadline(s.now().Add(s.cfg.IdleTimeout))
		k, err := body.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err == io.EOF {
			_ = cc.cnt.Conn.SetReadDeadline(time.Time{})
			return n, nil
		}
		if err != nil {
			return n, errors.Join(errClientWrite, err)
		}
	}
}

// readResponse reads the response head, relaying 1xx interim responses to
// the client.
func (cc *clientConn) readResponse(u *upConn, req *http.Request) (*http.Response, error) {
	s := cc.s
	_ = u.c.SetReadDeadline(s.now().Add(s.cfg.ResponseHeaderTimeout))
	for {
		resp, err := http.ReadResponse(u.br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 {
			return resp, nil
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			if isWebSocket(req) && strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
				return resp, nil
			}
			return nil, errors.New("proxy: unexpected 101 (only WebSocket upgrades are relayed)")
		}
		if resp.StatusCode == http.StatusContinue {
			continue // already answered to the client
		}
		cc.writeHead(resp, req, "", false)
		if cc.bw.Flush() != nil {
			return nil, errClientWrite
		}
	}
}

// writeHead writes the status line and the end-to-end headers of resp.
func (cc *clientConn) writeHead(resp *http.Response, req *http.Request, framing string, close bool) {
	bw := cc.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(resp.Status)
	bw.WriteString("\r\n")
	conn := resp.Header["Connection"]
	noBody := noResponseBody(req, resp)
	for k, vs := range resp.Header {
		if hopByHop(k) || len(conn) > 0 && connectionToken(k, conn) {
			continue
		}
		if k == "Content-Length" && !noBody {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if cc.s.cfg.Via != "" {
		bw.WriteString("Via: 1.1 ")
		bw.WriteString(cc.s.cfg.Via)
		bw.WriteString("\r\n")
	}
	bw.WriteString(framing)
	if close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

func noResponseBody(req *http.Request, resp *http.Response) bool {
	c := resp.StatusCode
	return req.Method == http.MethodHead || c < 200 || c == 204 || c == 304
}

// writeResponse relays the response to the client. reusable tells whether
// the upstream connection may go back to the pool, keep whether the client
// connection stays open. err is set when either side failed mid-body.
func (cc *clientConn) writeResponse(u *upConn, req *http.Request, resp *http.Response) (reusable, keep bool, err error) {
	s := cc.s
	keep = !req.Close && !s.shutdown.Load() && (req.ProtoMinor >= 1 || hasToken(req.Header["Connection"], "keep-alive"))
	reusable = !resp.Close
	chunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
	if noResponseBody(req, resp) {
		cc.writeHead(resp, req, "", !keep)
		return reusable, keep, cc.flush()
	}
	if s.cfg.Scanner != nil {
		if resp.ContentLength <= s.cfg.ScanMaxBytes {
			return cc.scanRelay(u, req, resp, reusable, keep, chunked)
		}
		s.scanCnt.skipped.Add(1)
		cc.ev.Labels = append(cc.ev.Labels, detect.Label{Key: "scan", Value: "skipped-too-large"})
	}
	switch {
	case resp.ContentLength >= 0 && !chunked:
		n := resp.ContentLength
		cc.writeHead(resp, req, "Content-Length: "+strconv.FormatInt(n, 10)+"\r\n", !keep)
		return reusable, keep, cc.copyBody(u, n)
	}
	return cc.relayStream(u, req, resp, resp.Body, reusable, keep, chunked)
}

// relayStream relays a chunked or close-delimited body: re-chunked for
// HTTP/1.1 clients, streamed and closed for HTTP/1.0 ones.
func (cc *clientConn) relayStream(u *upConn, req *http.Request, resp *http.Response, body io.Reader, reusable, keep, chunked bool) (bool, bool, error) {
	if !chunked {
		reusable = false
	}
	if req.ProtoMinor == 0 {
		keep = false
		cc.writeHead(resp, req, "", true)
	} else {
		cc.writeHead(resp, req, "Transfer-Encoding: chunked\r\n", !keep)
	}
	return reusable, keep, cc.copyStream(u, body, req.ProtoMinor >= 1)
}

// scanRelay reads a body of at most ScanMaxBytes, scans it and relays it,
// or answers the block page instead. A chunked or close-delimited body
// that turns out longer passes unscanned.
func (cc *clientConn) scanRelay(u *upConn, req *http.Request, resp *http.Response, reusable, keep, chunked bool) (bool, bool, error) {
	s := cc.s
	ev := &cc.ev
	body, err := readForScan(deadlineReader{resp.Body, u.c, cc}, s.cfg.ScanMaxBytes)
	if errors.Is(err, errTooBigToScan) {
		s.scanCnt.skipped.Add(1)
		ev.Labels = append(ev.Labels, detect.Label{Key: "scan", Value: "skipped-too-large"})
		return cc.relayStream(u, req, resp, io.MultiReader(bytes.NewReader(body), resp.Body), reusable, keep, chunked)
	}
	if err != nil {
		cc.writePage(errorPage(502, "接続先のサーバーから正しい応答がありませんでした。", "The destination server sent no valid response.",
			req.RequestURI, cc.ref(ev)), false, ev)
		return false, false, nil
	}
	if v := s.scanBody(body, req.RequestURI, ev); v.Action == detect.ActionBlock {
		cc.block(v, req.RequestURI, keep, ev)
		return reusable && (chunked || resp.ContentLength >= 0), keep, nil
	}
	if !chunked && resp.ContentLength < 0 {
		reusable = false // close-delimited: read to EOF
	}
	cc.writeHead(resp, req, "Content-Length: "+strconv.Itoa(len(body))+"\r\n", !keep)
	_ = cc.cnt.Conn.SetWriteDeadline(s.now().Add(s.cfg.IdleTimeout))
	_, _ = cc.bw.Write(body)
	return reusable, keep, cc.flush()
}

// deadlineReader renews the upstream read deadline before every read.
type deadlineReader struct {
	r  io.Reader
	c  net.Conn
	cc *clientConn
}

func (d deadlineReader) Read(p []byte) (int, error) {
	_ = d.c.SetReadDeadline(d.cc.s.now().Add(d.cc.s.cfg.IdleTimeout))
	return d.r.Read(p)
}

func (cc *clientConn) flush() error {
	if err := cc.bw.Flush(); err != nil {
		return errClientWrite
	}
	return nil
}

// smallBody is the largest body relayed through the client's buffer in the
// same write as the head; larger bodies are spliced socket to socket.
const smallBody = 32 << 10

// spliceChunk bounds one splice so that deadlines are renewed regularly.
const spliceChunk = 256 << 10

// copyBody relays exactly n body bytes from u to the client.
func (cc *clientConn) copyBody(u *upConn, n int64) error {
	s := cc.s
	c := cc.cnt.Conn
	now := s.now()
	_ = u.c.SetReadDeadline(now.Add(s.cfg.IdleTimeout))
	_ = c.SetWriteDeadline(now.Add(s.cfg.IdleTimeout))
	if n <= smallBody || u.br.Buffered() >= int(n) {
		for n > 0 {
			k := int(min(n, int64(u.br.Size())))
			b, err := u.br.Peek(k)
			if len(b) > 0 {
				_, _ = cc.bw.Write(b)
				_, _ = u.br.Discard(len(b))
				n -= int64(len(b))
			}
			if err != nil && n > 0 {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		return cc.flush()
	}
	if err := cc.flush(); err != nil {
		return err
	}
	if k := u.br.Buffered(); k > 0 {
		b, _ := u.br.Peek(k)
		if _, err := cc.cnt.Write(b); err != nil {
			return errClientWrite
		}
		_, _ = u.br.Discard(k)
		n -= int64(k)
	}
	dst, okD := c.(*net.TCPConn)
	src, okS := u.c.(*net.TCPConn)
	if !okD || !okS {
		_, err := cc.copyLoop(cc.bw, io.LimitReader(u.br, n), u.c, n)
		if err != nil {
			return err
		}
		return cc.flush()
	}
	for n > 0 {
		k := min(n, spliceChunk)
		now := s.now()
		_ = src.SetReadDeadline(now.Add(s.cfg.IdleTimeout))
		_ = dst.SetWriteDeadline(now.Add(s.cfg.IdleTimeout))
		m, err := dst.ReadFrom(io.LimitReader(src, k))
		cc.cnt.w += m
		n -= m
		if err != nil {
			return err
		}
		if m < k {
			return io.ErrUnexpectedEOF
		}
	}
	return nil
}

// copyLoop copies from r to w with a pooled buffer, renewing the upstream
// read deadline as data flows.
func (cc *clientConn) copyLoop(w io.Writer, r io.Reader, up net.Conn, want int64) (int64, error) {
	s := cc.s
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		_ = up.SetReadDeadline(s.now().Add(s.cfg.IdleTimeout))
		k, err := r.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return n, errClientWrite
			}
			n += int64(k)
		}
		if err == io.EOF {
			if want >= 0 && n < want {
				return n, io.ErrUnexpectedEOF
			}
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// copyStream relays a body of unknown length (chunked or close-delimited
// upstream), re-chunking it when chunk is set; it flushes whenever the
// upstream has nothing more buffered, so streamed responses stay live.
func (cc *clientConn) copyStream(u *upConn, body io.Reader, chunk bool) error {
	s := cc.s
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	bw := cc.bw
	for {
		now := s.now()
		_ = u.c.SetReadDeadline(now.Add(s.cfg.IdleTimeout))
		_ = cc.cnt.Conn.SetWriteDeadline(now.Add(s.cfg.IdleTimeout))
		k, err := body.Read(buf)
		if k > 0 {
			if chunk {
				bw.WriteString(strconv.FormatInt(int64(k), 16))
				bw.WriteString("\r\n")
				bw.Write(buf[:k])
				bw.WriteString("\r\n")
			} else {
				bw.Write(buf[:k])
			}
			if u.br.Buffered() == 0 {
				if err := cc.flush(); err != nil {
					return err
				}
			}
		}
		if err == io.EOF {
			if chunk {
				bw.WriteString("0\r\n\r\n")
			}
			return cc.flush()
		}
		if err != nil {
			return err
		}
	}
}

// isWebSocket reports whether req asks for a WebSocket upgrade.
func isWebSocket(req *http.Request) bool {
	return len(req.Header["Upgrade"]) > 0 && hasToken(req.Header["Connection"], "upgrade") &&
		strings.EqualFold(req.Header.Get("Upgrade"), "websocket")
}

// relayUpgrade relays an accepted WebSocket upgrade: the 101 head, then
// bytes both ways as in a tunnel (half-close, shared idle clock) until
// both sides are done. The client connection ends with it.
func (cc *clientConn) relayUpgrade(u *upConn, req *http.Request, resp *http.Response, ev *detect.Event) bool {
	s := cc.s
	defer func() {
		cc.setUp(nil)
		u.close()
	}()
	ev.Labels = append(ev.Labels, detect.Label{Key: "upgrade", Value: "websocket"})
	cc.writeHead(resp, req, "Connection: Upgrade\r\nUpgrade: websocket\r\n", false)
	if err := cc.flush(); err != nil {
		ev.Outcome = "failure"
		return false
	}
	// Frames the origin sent right after the 101 go first.
	if k := u.br.Buffered(); k > 0 {
		b, _ := u.br.Peek(k)
		if _, err := cc.cnt.Write(b); err != nil {
			ev.Outcome = "failure"
			return false
		}
		_, _ = u.br.Discard(k)
	}
	tn := &tunnelPipe{idle: s.cfg.TunnelIdleTimeout, now: s.now}
	tn.last.Store(s.now().UnixNano())
	var once sync.Once
	abort := func() {
		once.Do(func() {
			cc.cnt.Conn.Close()
			u.c.Close()
		})
	}
	errc := make(chan error, 1)
	go func() {
		err := tn.pipe(u.c, cc.br, cc.cnt.Conn) // client -> origin, buffered bytes first
		if err != nil {
			abort()
		}
		errc <- err
	}()
	err1 := tn.pipe(&cc.cnt, u.c, u.c)
	if err1 != nil {
		abort()
	}
	err2 := <-errc
	ev.Outcome = "success"
	if err1 != nil || err2 != nil {
		ev.Outcome = "failure"
	}
	return false
}

// decideAndResolve runs the policy on r, then resolves its host (ip when
// it is a literal) and checks every address. ok reports whether the
// request may go on to addrs; when not, the client has been answered (block
// or error page) and keepOpen tells whether its connection stays usable.
func (cc *clientConn) decideAndResolve(r Request, ip netip.Addr, keep bool, ev *detect.Event) (addrs []netip.Addr, ok, keepOpen bool) {
	s := cc.s
	ctx := context.Background()
	if s.cfg.Decider != nil {
		v, err := s.cfg.Decider.Decide(ctx, r)
		if err != nil {
			s.log.Error("proxy: decider failed; request refused", "err", err, "target", r.URL)
			return nil, false, cc.block(detect.Verdict{Action: detect.ActionBlock, Rule: RulePolicyError, Reason: "policy error"}, r.URL, false, ev)
		}
		ev.Verdict = v
		if v.Action == detect.ActionBlock {
			return nil, false, cc.block(v, r.URL, keep, ev)
		}
	}
	addrs, v, err := s.resolve(ctx, r.Tenant, r.Host, ip, cc.abuf[:])
	if err != nil {
		cc.writePage(errorPage(502, "接続先のホスト名を解決できませんでした。", "The destination host name could not be resolved.",
			r.URL, cc.ref(ev)), keep, ev)
		return nil, false, keep
	}
	if v.Action == detect.ActionBlock {
		if len(addrs) > 0 && !ev.Dest.IsValid() {
			ev.Dest = netip.AddrPortFrom(addrs[0], r.Port)
		}
		return nil, false, cc.block(v, r.URL, keep, ev)
	}
	if v.Action == detect.ActionReport && ev.Verdict.Action == detect.ActionNone {
		ev.Verdict = v // a listed address, reported for a report-only tenant
	}
	return addrs, true, keep
}
