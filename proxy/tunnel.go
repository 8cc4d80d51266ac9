package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/proxy/internal/hostport"
	"github.com/jichitai/seccloud/ratelimit"
	"github.com/jichitai/seccloud/tenant"
)

// tunnel serves a CONNECT request: checks, dial, "200 Connection
// established", then bytes both ways with half-close until both sides are
// done or the tunnel idles out. The client connection ends with the tunnel.
func (cc *clientConn) tunnel(req *http.Request, t *tenant.Tenant, terminal netip.Addr, ev *detect.Event) bool {
	s := cc.s
	ev.Action = "connect"
	ev.URL = req.RequestURI
	h, port, err := hostport.Split(req.RequestURI, 0)
	var name string
	var ip netip.Addr
	if err == nil {
		name, ip, err = hostport.Normalize(h)
	}
	if err != nil {
		cc.writePage(errorPage(400, "CONNECT の接続先は host:port で指定してください。", "CONNECT needs a valid host:port.", req.RequestURI, cc.ref(ev)), false, ev)
		return false
	}
	if !ip.IsValid() {
		ev.DestDomain = name
	} else {
		ev.Dest = netip.AddrPortFrom(ip, port) // kept when the request is refused before dialing
	}
	if !slices.Contains(s.cfg.ConnectPorts, port) {
		return cc.block(detect.Verdict{Action: detect.ActionBlock, Rule: RuleConnectPort, RuleName: itoa(int(port)),
			Reason: "CONNECT to port " + itoa(int(port)) + " is not allowed"}, req.RequestURI, false, ev)
	}
	if s.insp != nil && s.insp.intercepts(t, name) {
		// Inspected: every decrypted request is judged (names, URLs,
		// destinations), and a refusal is a readable block page inside
		// TLS instead of a bare 403 to the CONNECT.
		return cc.intercept(req, t, terminal, name, port, ev)
	}
	addrs, ok, _ := cc.decideAndResolve(Request{Tenant: t, Client: cc.client, Terminal: terminal,
		Method: req.Method, Host: name, Port: port, URL: req.RequestURI}, ip, false, ev)
	if !ok {
		return false
	}
	ctx := context.Background()
	rt := s.routeFor(t, name)
	up, dst, _, err := s.dialRoute(ctx, t, &rt, addrs, port)
	rt.label(ev)
	if err != nil {
		status, ja, en := 502, "接続先のサーバーに接続できませんでした。", "The destination server could not be reached."
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
			status = 504
		}
		cc.writePage(errorPage(status, ja, en, req.RequestURI, cc.ref(ev)), false, ev)
		return false
	}
	cc.setUp(up)
	defer func() {
		if !cc.detached {
			cc.setUp(nil)
			up.Close()
		}
	}()
	ev.Dest = dst
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
	// Bytes the client sent after the CONNECT head (e.g. a TLS
	// ClientHello sent optimistically) go first.
	if k := cc.br.Buffered(); k > 0 {
		b, _ := cc.br.Peek(k)
		_ = up.SetWriteDeadline(s.now().Add(s.cfg.TunnelIdleTimeout))
		if _, err := up.Write(b); err != nil {
			ev.Outcome = "failure"
			return false
		}
		_, _ = cc.br.Discard(k)
	}
	cc.releaseBufio() // the tunnel reads and writes the sockets directly
	if s.detachTunnel(cc, up, t) {
		return false // idle tunnels wait in the Server's epoll set
	}
	tn := &tunnelPipe{idle: s.cfg.TunnelIdleTimeout, now: s.now}
	tn.last.Store(s.now().UnixNano())
	// Either direction failing (reset, idle timeout) aborts both; a clean
	// EOF only half-closes the other side.
	var aborted atomic.Bool
	abort := func() {
		if aborted.CompareAndSwap(false, true) {
			cc.cnt.Conn.Close()
			up.Close()
		}
	}
	errc := make(chan error, 1)
	go func() {
		err := tn.pipe(up, &cc.cnt, cc.cnt.Conn)
		if err != nil {
			abort()
		}
		errc <- err
	}()
	err1 := tn.pipe(&cc.cnt, up, up)
	if err1 != nil {
		abort()
	}
	err2 := <-errc
	if err1 != nil || err2 != nil {
		ev.Outcome = "failure"
	} else {
		ev.Outcome = "success"
	}
	return false
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}

// tunnelPipe holds the shared idle clock of a tunnel's two directions.
type tunnelPipe struct {
	idle time.Duration
	now  func() time.Time
	last atomic.Int64 // UnixNano of the latest byte either way
}

type closeWriter interface{ CloseWrite() error }

// pipe copies src to dst until src ends, then half-closes dst (so the peer
// sees EOF while the other direction carries on). The read deadline is set
// once and, when it fires, extended if either direction moved within the
// idle time; the tunnel ends when neither did. rc is src's underlying
// connection (for deadlines); dst is a net.Conn or a *countConn over one.
func (tn *tunnelPipe) pipe(dst io.Writer, src io.Reader, rc net.Conn) error {
	var dc net.Conn
	switch d := dst.(type) {
	case *countConn:
		dc = d.Conn
	case net.Conn:
		dc = d
	}
	// When src reads straight from rc (no user-space buffer in between),
	// an idle direction waits for data without holding a buffer: the
	// buffer is taken when data is there and given back when a read comes
	// up short (the socket is drained for now).
	waitable := src == io.Reader(rc)
	if c, ok := src.(*countConn); ok && c.Conn == rc {
		waitable = true
	}
	var bp *[]byte
	defer func() {
		if bp != nil {
			copyBufPool.Put(bp)
		}
	}()
	more := false
	_ = rc.SetReadDeadline(tn.now().Add(tn.idle))
	for {
		var n int
		var err error
		if waitable && !more {
			if bp != nil {
				copyBufPool.Put(bp)
				bp = nil
			}
			var ok bool
			ok, err = waitReadable(rc)
			if !ok {
				waitable, err = false, nil
			}
		}
		if err == nil {
			if bp == nil {
				bp = copyBufPool.Get().(*[]byte)
			}
			buf := (*bp)[:16<<10]
			n, err = src.Read(buf)
			more = n == len(buf)
			if n > 0 {
				now := tn.now()
				tn.last.Store(now.UnixNano())
				_ = dc.SetWriteDeadline(now.Add(tn.idle))
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return werr
				}
			}
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			last := time.Unix(0, tn.last.Load())
			if tn.now().Sub(last) < tn.idle {
				_ = rc.SetReadDeadline(last.Add(tn.idle))
				continue
			}
			return err
		}
		if errors.Is(err, io.EOF) {
			if sc, ok := dc.(*ratelimit.Conn); ok {
				dc = sc.Conn // a shaped upstream: half-close the socket
			}
			if cw, ok := dc.(closeWriter); ok {
				_ = cw.CloseWrite()
				return nil
			}
			return dc.Close()
		}
		return err
	}
}
