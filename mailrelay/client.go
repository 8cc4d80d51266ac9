package mailrelay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// reply is an SMTP reply from a next hop.
type reply struct {
	code int
	text string // first line, enhanced code included
}

func (r reply) temp() bool { return r.code >= 400 && r.code < 500 }
func (r reply) perm() bool { return r.code >= 500 }
func (r reply) String() string {
	return strconv.Itoa(r.code) + " " + r.text
}

// clientConn is an SMTP client connection to a next hop.
type clientConn struct {
	c       net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	ext     map[string]string
	timeout time.Duration
	used    time.Time
	host    string
	key     string // pool key: host, or tenant|host with DialTenant
}

var errProtocol = errors.New("mailrelay: next hop protocol error")

// dialClient connects to addr, reads the greeting, says EHLO and upgrades
// to TLS when offered and allowed.
func dialClient(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), d *DeliveryConfig, addr, helo string) (*clientConn, error) {
	dctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	nc, err := dial(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &clientConn{c: nc, r: bufio.NewReaderSize(nc, 4096), w: bufio.NewWriterSize(nc, 32<<10), timeout: d.Timeout, host: addr}
	if err := c.hello(helo); err != nil {
		nc.Close()
		return nil, err
	}
	if _, ok := c.ext["STARTTLS"]; ok && !d.NoTLS {
		cfg := d.TLS
		if cfg == nil {
			host, _, _ := net.SplitHostPort(addr)
			cfg = &tls.Config{ServerName: host, InsecureSkipVerify: true} // opportunistic
		}
		c.w.WriteString("STARTTLS\r\n")
		rp, err := c.cmd()
		if err != nil {
			nc.Close()
			return nil, err
		}
		if rp.code == 220 {
			tc := tls.Client(nc, cfg)
			nc.SetDeadline(time.Now().Add(c.timeout))
			if err := tc.HandshakeContext(dctx); err != nil {
				nc.Close()
				return nil, fmt.Errorf("mailrelay: STARTTLS to %s: %w", addr, err)
			}
			c.c = tc
			c.r.Reset(tc)
			c.w.Reset(tc)
			if err := c.ehlo(helo); err != nil {
				tc.Close()
				return nil, err
			}
		}
	}
	return c, nil
}

func (c *clientConn) hello(helo string) error {
	c.c.SetDeadline(time.Now().Add(c.timeout))
	g, err := c.read()
	if err != nil {
		return err
	}
	if g.code != 220 {
		return &deliveryError{reply: g}
	}
	return c.ehlo(helo)
}

func (c *clientConn) ehlo(helo string) error {
	c.w.WriteString("EHLO " + helo + "\r\n")
	c.c.SetDeadline(time.Now().Add(c.timeout))
	if err := c.w.Flush(); err != nil {
		return err
	}
	c.ext = make(map[string]string)
	code, lines, err := c.readLines()
	if err != nil {
		return err
	}
	if code == 250 {
		for _, l := range lines[1:] {
			k, v, _ := strings.Cut(l, " ")
			c.ext[strings.ToUpper(k)] = v
		}
		return nil
	}
	c.w.WriteString("HELO " + helo + "\r\n")
	rp, err := c.cmd()
	if err != nil {
		return err
	}
	if rp.code != 250 {
		return &deliveryError{reply: rp}
	}
	return nil
}

// deliveryError is a reply that failed a whole transaction.
type deliveryError struct{ reply reply }

func (e *deliveryError) Error() string { return "mailrelay: next hop said " + e.reply.String() }

func (c *clientConn) cmd() (reply, error) {
	c.c.SetDeadline(time.Now().Add(c.timeout))
	if err := c.w.Flush(); err != nil {
		return reply{}, err
	}
	return c.read()
}

func (c *clientConn) read() (reply, error) {
	code, lines, err := c.readLines()
	if err != nil {
		return reply{}, err
	}
	return reply{code: code, text: lines[0]}, nil
}

func (c *clientConn) readLines() (int, []string, error) {
	var lines []string
	code := 0
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return 0, nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		if len(l) < 3 {
			return 0, nil, errProtocol
		}
		n, err := strconv.Atoi(l[:3])
		if err != nil || n < 200 || n > 599 || code != 0 && n != code {
			return 0, nil, errProtocol
		}
		code = n
		if len(l) > 4 {
			lines = append(lines, l[4:])
		} else {
			lines = append(lines, "")
		}
		if len(l) == 3 || l[3] == ' ' {
			return code, lines, nil
		}
		if l[3] != '-' || len(lines) > 100 {
			return 0, nil, errProtocol
		}
	}
}

// send runs one mail transaction and returns the reply for each recipient
// (in order). A non-nil error means the connection is unusable; the
// replies are then meaningless and the attempt counts as temporary.
func (c *clientConn) send(env *envelope, rcpts []string, data []byte) ([]reply, error) {
	_, pipelining := c.ext["PIPELINING"]
	_, has8 := c.ext["8BITMIME"]
	_, hasUTF8 := c.ext["SMTPUTF8"]
	res := make([]reply, len(rcpts))
	if env.UTF8 && !hasUTF8 {
		for i := range res {
			res[i] = reply{code: 553, text: "5.6.7 next hop does not support SMTPUTF8"}
		}
		return res, nil
	}
	c.w.WriteString("MAIL FROM:<" + env.From + ">")
	if env.Body8 && has8 {
		c.w.WriteString(" BODY=8BITMIME")
	}
	if env.UTF8 {
		c.w.WriteString(" SMTPUTF8")
	}
	c.w.WriteString("\r\n")
	var mailRp reply
	var err error
	if !pipelining {
		if mailRp, err = c.cmd(); err != nil {
			return nil, err
		}
		if mailRp.code != 250 {
			for i := range res {
				res[i] = mailRp
			}
			return res, nil
		}
	}
	for i, r := range rcpts {
		c.w.WriteString("RCPT TO:<" + r + ">\r\n")
		if !pipelining {
			if res[i], err = c.cmd(); err != nil {
				return nil, err
			}
		}
	}
	c.w.WriteString("DATA\r\n")
	if pipelining {
		c.c.SetDeadline(time.Now().Add(c.timeout))
		if err := c.w.Flush(); err != nil {
			return nil, err
		}
		if mailRp, err = c.read(); err != nil {
			return nil, err
		}
		for i := range rcpts {
			if res[i], err = c.read(); err != nil {
				return nil, err
			}
		}
	}
	dataRp, err := c.cmd()
	if err != nil {
		return nil, err
	}
	if mailRp.code != 250 {
		for i := range res {
			res[i] = mailRp
		}
	}
	if dataRp.code != 354 {
		// No accepted recipient (or refusal): RFC 2920 says the server
		// answers DATA with an error; nothing more to send.
		for i := range res {
			if res[i].code == 250 || res[i].code == 251 {
				res[i] = dataRp
			}
		}
		if dataRp.code == 421 {
			return res, errProtocol
		}
		return res, nil
	}
	writeDotStuffed(c.w, data)
	c.w.WriteString(".\r\n")
	final, err := c.cmd()
	if err != nil {
		return nil, err
	}
	for i := range res {
		if res[i].code == 250 || res[i].code == 251 {
			res[i] = final
		}
	}
	c.used = time.Now()
	return res, nil
}

// writeDotStuffed writes data (CRLF line ends) doubling a leading dot on
// every line, and ends it with CRLF when it does not.
func writeDotStuffed(w *bufio.Writer, data []byte) {
	crlf := len(data) == 0 || bytes.HasSuffix(data, []byte("\r\n"))
	if len(data) > 0 && data[0] == '.' {
		w.WriteByte('.')
	}
	for {
		i := bytes.Index(data, []byte("\r\n."))
		if i < 0 {
			w.Write(data)
			break
		}
		w.Write(data[:i+3])
		w.WriteByte('.')
		data = data[i+3:]
	}
	if !crlf {
		w.WriteString("\r\n")
	}
}

func (c *clientConn) close() {
	c.c.SetDeadline(time.Now().Add(time.Second))
	c.w.WriteString("QUIT\r\n")
	c.w.Flush()
	c.c.Close()
}
