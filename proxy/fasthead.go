package proxy

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
)

// The fast path for the commonest response: a final status (200–599) with
// one Content-Length or no body (HEAD, 204, 304), whose head fits in the
// upstream reader's buffer. Its header lines are copied to the client
// straight from the buffer, filtered but not parsed into a map, which saves
// http.ReadResponse's allocations (about ten per response) and most of its
// CPU. Anything else — 1xx, chunked or close-delimited bodies, folded or
// odd header lines, a head larger than the buffer — is left unconsumed for
// http.ReadResponse.

// fastHead describes a response head peeked in the upstream buffer.
type fastHead struct {
	status  int
	n       int   // bytes of the head, blank line included
	length  int64 // Content-Length; -1 when absent
	close   bool  // the origin closes after this response
	reason  []byte
	conn    [4][]byte // values of Connection header lines
	nconn   int
	started bool
}

// peekHead waits for a response head in u's buffer and parses it when it
// is simple. ok false (with a nil error) means: use http.ReadResponse.
func (cc *clientConn) peekHead(u *upConn, req *http.Request) (h *fastHead, ok bool, err error) {
	s := cc.s
	_ = u.c.SetReadDeadline(s.now().Add(s.cfg.ResponseHeaderTimeout))
	br := u.br
	if _, err := br.Peek(1); err != nil {
		return nil, false, err
	}
	var b []byte
	for {
		b, _ = br.Peek(br.Buffered())
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			b = b[:i+4]
			break
		}
		if br.Buffered() >= br.Size() {
			return nil, false, nil // head larger than the buffer
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return nil, false, nil // let ReadResponse report it
		}
	}
	h = &cc.fh
	*h = fastHead{n: len(b), length: -1}
	if !h.parse(b, req) {
		return nil, false, nil
	}
	return h, true, nil
}

// parse fills h from the head b; it reports false for anything but the
// simple shapes above.
func (h *fastHead) parse(b []byte, req *http.Request) bool {
	line, rest, _ := bytes.Cut(b, []byte("\r\n"))
	// "HTTP/1.x NNN reason"
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		len(line) > 12 && line[12] != ' ' {
		return false
	}
	code, ok := digits(line[9:12])
	if !ok || code < 200 || code > 599 {
		return false
	}
	h.status = int(code)
	if len(line) > 13 {
		h.reason = line[13:]
	}
	if !validValue(h.reason) {
		return false
	}
	http10 := line[7] == '0'
	keepAlive10 := false
	for len(rest) > 2 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validName(line[:colon]) || !validValue(line[colon+1:]) {
			return false // also folded lines (leading space) and bare CR/LF
		}
		name, val := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case eqFold(name, "Content-Length"):
			n, ok := digits(val)
			if !ok || h.length >= 0 && h.length != n {
				return false
			}
			h.length = n
		case eqFold(name, "Transfer-Encoding"):
			return false
		case eqFold(name, "Connection"):
			if h.nconn == len(h.conn) {
				return false
			}
			h.conn[h.nconn] = val
			h.nconn++
			if tokenIn(val, "close") {
				h.close = true
			}
			if tokenIn(val, "keep-alive") {
				keepAlive10 = true
			}
		}
	}
	if http10 && !keepAlive10 {
		h.close = true
	}
	noBody := req.Method == http.MethodHead || code == 204 || code == 304
	return noBody || h.length >= 0
}

// writeFast writes the filtered head of h and then the body to the client.
func (cc *clientConn) writeFast(u *upConn, req *http.Request, h *fastHead) (reusable, keep bool, err error) {
	s := cc.s
	keep = !req.Close && !s.shutdown.Load() && (req.ProtoMinor >= 1 || hasToken(req.Header["Connection"], "keep-alive"))
	reusable = !h.close
	b, _ := u.br.Peek(h.n)
	bw := cc.bw
	var num [20]byte
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(num[:0], int64(h.status), 10))
	bw.WriteByte(' ')
	if len(h.reason) > 0 {
		bw.Write(h.reason)
	} else {
		bw.WriteString(http.StatusText(h.status))
	}
	bw.WriteString("\r\n")
	noBody := req.Method == http.MethodHead || h.status == 204 || h.status == 304
	_, rest, _ := bytes.Cut(b, []byte("\r\n"))
	for len(rest) > 2 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name := line[:bytes.IndexByte(line, ':')]
		if hopByHopBytes(name) || h.connToken(name) || !noBody && eqFold(name, "Content-Length") {
			continue
		}
		bw.Write(line)
		bw.WriteString("\r\n")
	}
	if s.cfg.Via != "" {
		bw.WriteString("Via: 1.1 ")
		bw.WriteString(s.cfg.Via)
		bw.WriteString("\r\n")
	}
	if !noBody {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], h.length, 10))
		bw.WriteString("\r\n")
	}
	if !keep {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	_, _ = u.br.Discard(h.n)
	if noBody {
		return reusable, keep, cc.flush()
	}
	return reusable, keep, cc.copyBody(u, h.length)
}

func (h *fastHead) connToken(name []byte) bool {
	for i := 0; i < h.nconn; i++ {
		if tokenIn(h.conn[i], string(name)) {
			return true
		}
	}
	return false
}

func hopByHopBytes(k []byte) bool {
	switch len(k) {
	case 2:
		return eqFold(k, "Te")
	case 7:
		return eqFold(k, "Trailer") || eqFold(k, "Upgrade")
	case 10:
		return eqFold(k, "Connection") || eqFold(k, "Keep-Alive")
	case 16:
		return eqFold(k, "Proxy-Connection")
	case 17:
		return eqFold(k, "Transfer-Encoding")
	case 18:
		return eqFold(k, "Proxy-Authenticate")
	case 19:
		return eqFold(k, "Proxy-Authorization")
	}
	return false
}

// digits parses 1 to 18 decimal digits.
func digits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// eqFold compares ASCII case-insensitively without allocating.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// tokenIn reports whether the comma-separated list v holds tok.
func tokenIn(v []byte, tok string) bool {
	for len(v) > 0 {
		var t []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, nil
		}
		if eqFold(bytes.TrimSpace(t), tok) {
			return true
		}
	}
	return false
}

// validName: an RFC 7230 token.
func validName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return len(b) > 0
}

// validValue: no control characters but tab (so no bare CR or LF).
func validValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
