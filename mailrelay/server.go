package mailrelay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/mailrelay/internal/spool"
	"github.com/jichitai/seccloud/tenant"
)

// Server is the SMTP relay: it accepts mail over SMTP, stores it in its
// durable queue and delivers it to the next hops. Create one with New,
// give it listeners with Serve and stop it with Shutdown or Close. Its
// methods are safe for concurrent use.
type Server struct {
	cfg   Config
	spool *spool.Spool
	dlv   *deliverer
	quar  *Quarantine // nil = no quarantine

	idPrefix string
	idSeq    atomic.Uint64

	sem chan struct{}

	// Session buffers are pooled: clients such as smtp-source open one
	// session per message.
	readerPool, writerPool sync.Pool

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	closing   bool
	wg        sync.WaitGroup
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("mailrelay: server closed")

// New validates cfg, opens (and recovers) the durable queue and starts
// delivering what it holds. The caller must call Shutdown or Close.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	sp, entries, err := spool.Open(spool.Options{Dir: cfg.Queue.Dir, SegmentSize: cfg.Queue.SegmentSize, NoSync: cfg.Queue.NoSync})
	if err != nil {
		return nil, fmt.Errorf("mailrelay: queue: %w", err)
	}
	var rb [6]byte
	rand.Read(rb[:])
	s := &Server{
		cfg:       cfg,
		spool:     sp,
		idPrefix:  strings.ToUpper(hex.EncodeToString(rb[:])),
		sem:       make(chan struct{}, cfg.Session.MaxConns),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
	}
	s.readerPool.New = func() any { return bufio.NewReaderSize(nil, 64<<10) }
	s.writerPool.New = func() any { return bufio.NewWriterSize(nil, 4<<10) }
	s.dlv = newDeliverer(s)
	if err := cfg.Content.Default.validate("Content.Default"); err != nil {
		sp.Close()
		return nil, err
	}
	switch cfg.Content.ScorerDown {
	case FallbackTempFail, FallbackAllow:
	case FallbackBuiltin:
		if cfg.Content.Spam == nil {
			sp.Close()
			return nil, fmt.Errorf("mailrelay: Content.ScorerDown %q needs Content.Spam", cfg.Content.ScorerDown)
		}
	default:
		sp.Close()
		return nil, fmt.Errorf("mailrelay: Content.ScorerDown %q is unknown", cfg.Content.ScorerDown)
	}
	for id, p := range cfg.Content.Tenants {
		if err := p.validate("Content.Tenants[" + id + "]"); err != nil {
			sp.Close()
			return nil, err
		}
	}
	if cfg.Quarantine.Dir != "" {
		q, err := openQuarantine(cfg.Quarantine, cfg.Hostname, cfg.Now, cfg.Logger)
		if err != nil {
			sp.Close()
			return nil, err
		}
		q.release = s.release
		s.quar = q
	}
	for _, e := range entries {
		env, err := decodeEnvelope(e.Envelope)
		if err != nil {
			cfg.Logger.Error("mailrelay: unreadable queue entry dropped", "id", e.ID, "err", err)
			sp.Done(e.ID, e.Ref)
			continue
		}
		s.dlv.enqueue(&qmsg{id: e.ID, gen: e.Gen, env: env, ref: e.Ref})
	}
	if len(entries) > 0 {
		cfg.Logger.Info("mailrelay: queue recovered", "messages", len(entries))
	}
	s.dlv.start()
	return s, nil
}

func (s *Server) newID() string {
	return s.idPrefix + strconv.FormatUint(s.idSeq.Add(1)+1e9, 36)
}

// Serve accepts connections on l until Shutdown or Close and runs one
// session per connection. It returns ErrServerClosed after a shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("mailrelay: accept: %w", err)
		}
		delay = 0
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// Shutdown stops accepting, waits for running sessions until ctx is done
// (then closes them), stops delivery and closes the queue. Messages not
// yet delivered stay queued for the next start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.dlv.stop()
	if s.quar != nil {
		s.quar.close()
	}
	return s.spool.Close()
}

// Quarantine returns the quarantine store, or nil when
// Config.Quarantine.Dir is empty.
func (s *Server) Quarantine() *Quarantine { return s.quar }

// release queues a quarantined original for delivery with its original
// envelope, under a new queue id.
func (s *Server) release(_ context.Context, it *QuarantineItem, data []byte) (string, error) {
	id := s.newID()
	env := &envelope{From: it.From, To: it.To, Tenant: it.Tenant, Dir: it.Direction, Client: it.Client, Helo: it.Helo,
		Body8: it.Body8, UTF8: it.UTF8, Created: s.cfg.Now().UnixNano(), MsgID: it.MessageID, Subject: it.Subject}
	ref, err := s.spool.Put(id, 0, env.encode(), data, nil)
	if err != nil {
		return "", fmt.Errorf("mailrelay: release: %w", err)
	}
	e := detect.Event{Type: "change", Action: "quarantine_release", Outcome: "success", Tenant: it.Tenant, ID: id}
	e.Email.From, e.Email.To, e.Email.Subject, e.Email.MessageID, e.Email.Direction = it.From, it.To, it.Subject, it.MessageID, string(it.Direction)
	e.Labels = []detect.Label{{Key: "quarantine_id", Value: it.ID}, {Key: "queue_id", Value: id}}
	e.Time, e.Module, e.Dataset, e.Category = s.cfg.Now(), "mail", "mail.message", "email"
	s.cfg.Sink.Emit(e)
	s.dlv.enqueue(&qmsg{id: id, env: env, ref: ref, data: data})
	return id, nil
}

// Close is Shutdown without waiting for sessions.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Shutdown(ctx)
}

func (s *Server) serveConn(c net.Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	r := s.readerPool.Get().(*bufio.Reader)
	w := s.writerPool.Get().(*bufio.Writer)
	r.Reset(c)
	w.Reset(c)
	defer func() {
		r.Reset(nil)
		w.Reset(nil)
		s.readerPool.Put(r)
		s.writerPool.Put(w)
	}()
	ss := &session{s: s, c: c, r: r, w: w}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		ss.client = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		ss.reply(421, "4.3.2", s.cfg.Hostname+" too many connections, try later")
		ss.w.Flush()
		return
	}
	if t, ok := s.cfg.Directory.ByAddr(ss.client.Addr()); ok {
		ss.tenant = t
	}
	start := s.cfg.Now()
	ss.run()
	e := ss.event()
	e.Dataset, e.Action, e.Type = "mail.session", "smtp_session", "connection"
	e.Duration = s.cfg.Now().Sub(start)
	e.Email.Direction = ""
	e.Labels = []detect.Label{{Key: "helo", Value: ss.helo}, {Key: "tls", Value: strconv.FormatBool(ss.tls)},
		{Key: "messages", Value: strconv.Itoa(ss.accepted)}, {Key: "errors", Value: strconv.Itoa(ss.errors)}}
	s.cfg.Sink.Emit(e)
}

// session is one SMTP connection.
type session struct {
	s      *Server
	c      net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	client netip.AddrPort
	tenant *tenant.Tenant // client's tenant (outbound) or nil (internet)
	// rateLimited: this session's sender was refused by OutboundLimit
	// (one event per session)
	rateLimited bool
	helo        string
	esmtp       bool
	tls         bool
	errors      int
	accepted    int

	// transaction
	hasFrom bool
	from    path
	body8   bool
	utf8    bool
	rcpts   []string
	buf     []byte
}

func (ss *session) reply(code int, enh, text string) {
	ss.w.WriteString(strconv.Itoa(code))
	ss.w.WriteByte(' ')
	if enh != "" {
		ss.w.WriteString(enh)
		ss.w.WriteByte(' ')
	}
	ss.w.WriteString(text)
	ss.w.WriteString("\r\n")
}

func (ss *session) flush() error {
	ss.c.SetWriteDeadline(time.Now().Add(ss.s.cfg.Session.CommandTimeout))
	return ss.w.Flush()
}

func (ss *session) reset() {
	ss.hasFrom, ss.from, ss.body8, ss.utf8 = false, path{}, false, false
	ss.rcpts = ss.rcpts[:0]
}

// readLine reads one command line, without its line end.
func (ss *session) readLine() (string, error) {
	line, err := ss.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull || (err == nil && len(line) > 4096) {
		for err == bufio.ErrBufferFull {
			_, err = ss.r.ReadSlice('\n')
		}
		if err != nil {
			return "", err
		}
		return "", errLineLength
	}
	if err != nil {
		return "", err
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return string(line), nil
}

func (ss *session) run() {
	cfg := &ss.s.cfg
	ss.reply(220, "", cfg.Hostname+" ESMTP seccloud")
	if ss.flush() != nil {
		return
	}
	for {
		ss.c.SetReadDeadline(time.Now().Add(cfg.Session.CommandTimeout))
		line, err := ss.readLine()
		if err != nil {
			if err == errLineLength {
				ss.reply(500, "5.5.2", "line too long")
				if ss.fail() {
					return
				}
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				ss.reply(421, "4.4.2", cfg.Hostname+" timeout, closing connection")
				ss.flush()
			}
			return
		}
		cmd, err := parseCommand(line)
		if err != nil {
			if err == errBadChar {
				ss.reply(500, "5.5.2", "control character in command")
			} else {
				ss.reply(500, "5.5.2", "syntax error")
			}
			if ss.fail() {
				return
			}
			continue
		}
		quit := ss.handle(cmd)
		if quit {
			ss.flush()
			return
		}
		if ss.r.Buffered() == 0 {
			if ss.flush() != nil {
				return
			}
		}
	}
}

// fail counts an error reply and says whether to close the session.
func (ss *session) fail() bool {
	ss.errors++
	if ss.errors >= ss.s.cfg.Session.MaxErrors {
		ss.reply(421, "4.7.0", ss.s.cfg.Hostname+" too many errors, closing connection")
		ss.flush()
		return true
	}
	return ss.flush() != nil
}

func (ss *session) handle(cmd command) (quit bool) {
	cfg := &ss.s.cfg
	switch cmd.verb {
	case "EHLO", "HELO":
		if err := checkHelo(cmd.arg); err != nil {
			ss.reply(501, "5.5.4", "invalid domain name")
			return ss.fail()
		}
		ss.helo, ss.esmtp = cmd.arg, cmd.verb == "EHLO"
		ss.reset()
		if !ss.esmtp {
			ss.reply(250, "", cfg.Hostname)
			return false
		}
		ext := []string{cfg.Hostname, "PIPELINING", "SIZE " + strconv.FormatInt(cfg.Session.MaxSize, 10),
			"8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"}
		if cfg.Session.TLS != nil && !ss.tls {
			ext = append(ext, "STARTTLS")
		}
		for i, e := range ext {
			sep := "-"
			if i == len(ext)-1 {
				sep = " "
			}
			ss.w.WriteString("250" + sep + e + "\r\n")
		}
	case "STARTTLS":
		return ss.startTLS(cmd)
	case "MAIL":
		ss.mail(cmd)
	case "RCPT":
		ss.rcpt(cmd)
	case "DATA":
		return ss.data(cmd)
	case "RSET":
		ss.reset()
		ss.reply(250, "2.0.0", "Ok")
	case "NOOP":
		ss.reply(250, "2.0.0", "Ok")
	case "QUIT":
		ss.reply(221, "2.0.0", "Bye")
		return true
	case "VRFY":
		ss.reply(252, "2.5.2", "Cannot VRFY user")
	case "HELP":
		ss.reply(214, "2.0.0", "See RFC 5321")
	default:
		ss.reply(502, "5.5.1", "command not implemented")
		return ss.fail()
	}
	return false
}

func (ss *session) startTLS(cmd command) bool {
	cfg := &ss.s.cfg
	if cfg.Session.TLS == nil || ss.tls {
		ss.reply(502, "5.5.1", "STARTTLS not available")
		return ss.fail()
	}
	if cmd.arg != "" {
		ss.reply(501, "5.5.4", "syntax error")
		return ss.fail()
	}
	if ss.r.Buffered() > 0 {
		// Commands pipelined after STARTTLS would be injected into the TLS
		// session (CVE-2011-0411): refuse and close.
		ss.reply(554, "5.5.1", "pipelining after STARTTLS, closing connection")
		return true
	}
	ss.reply(220, "2.0.0", "Ready to start TLS")
	if ss.flush() != nil {
		return true
	}
	tc := tls.Server(ss.c, cfg.Session.TLS)
	ss.c.SetDeadline(time.Now().Add(cfg.Session.TLSHandshakeTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Session.TLSHandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		cfg.Logger.Debug("mailrelay: TLS handshake failed", "client", ss.client, "err", err)
		return true
	}
	ss.c.SetDeadline(time.Time{})
	ss.c = tc
	ss.r.Reset(tc)
	ss.w.Reset(tc)
	ss.tls = true
	ss.helo, ss.esmtp = "", false
	ss.reset()
	return false
}

// ownsMailDomain reports whether t owns domain d as a mail domain (or a
// subdomain of one).
func ownsMailDomain(t *tenant.Tenant, d string) bool {
	for _, md := range t.MailDomains {
		if len(d) == len(md) && strings.EqualFold(d, md) ||
			len(d) > len(md) && d[len(d)-len(md)-1] == '.' && strings.EqualFold(d[len(d)-len(md):], md) {
			return true
		}
	}
	return false
}

// mailTenant returns the tenant owning mail domain d.
func (s *Server) mailTenant(d string) (*tenant.Tenant, bool) {
	if d == "" || d[0] == '[' {
		return nil, false
	}
	t, ok := s.cfg.Directory.ByDomain(d)
	if !ok || !ownsMailDomain(t, d) {
		return nil, false
	}
	return t, true
}

func (ss *session) mail(cmd command) {
	cfg := &ss.s.cfg
	if ss.helo == "" {
		ss.reply(503, "5.5.1", "send EHLO/HELO first")
		ss.fail()
		return
	}
	if ss.hasFrom {
		ss.reply(503, "5.5.1", "nested MAIL command")
		ss.fail()
		return
	}
	p, err := parsePath(cmd.arg, true, false)
	if err != nil {
		ss.pathError(err)
		return
	}
	for k, v := range p.params {
		switch k {
		case "SIZE":
		case "BODY":
			if !strings.EqualFold(v, "7BIT") && !strings.EqualFold(v, "8BITMIME") {
				ss.reply(501, "5.5.4", "unsupported BODY type")
				ss.fail()
				return
			}
		case "SMTPUTF8":
			if v != "" {
				ss.reply(501, "5.5.4", "SMTPUTF8 takes no value")
				ss.fail()
				return
			}
		default:
			if !ss.esmtp {
				ss.reply(501, "5.5.4", "parameters need EHLO")
			} else {
				ss.reply(555, "5.5.4", "unsupported parameter "+k)
			}
			ss.fail()
			return
		}
	}
	size, err := parseSize(p.params)
	if err != nil {
		ss.reply(501, "5.5.4", "bad SIZE")
		ss.fail()
		return
	}
	if size > cfg.Session.MaxSize {
		ss.reply(552, "5.3.4", "message size exceeds fixed limit")
		ss.fail()
		return
	}
	if ss.tenant != nil && p.addr != "" && !ownsMailDomain(ss.tenant, p.domain) {
		ss.deny(p.addr, "", "sender domain not owned by tenant "+ss.tenant.ID)
		ss.reply(550, "5.7.1", "<"+p.addr+">: sender address rejected: domain not owned by your organisation")
		ss.fail()
		return
	}
	ss.hasFrom, ss.from = true, p
	ss.body8 = strings.EqualFold(p.params["BODY"], "8BITMIME")
	_, ss.utf8 = p.params["SMTPUTF8"]
	ss.reply(250, "2.1.0", "Ok")
}

func (ss *session) pathError(err error) {
	switch err {
	case errSourceRoute, errPercentHack:
		ss.reply(550, "5.7.1", err.Error())
	case errNonASCII:
		ss.reply(553, "5.6.7", "non-ASCII address needs SMTPUTF8")
	case errSyntax:
		ss.reply(501, "5.5.4", "syntax error in parameters")
	default:
		ss.reply(501, "5.1.3", "bad address syntax")
	}
	ss.fail()
}

func (ss *session) rcpt(cmd command) {
	cfg := &ss.s.cfg
	if !ss.hasFrom {
		ss.reply(503, "5.5.1", "need MAIL command")
		ss.fail()
		return
	}
	p, err := parsePath(cmd.arg, false, ss.utf8)
	if err != nil {
		ss.pathError(err)
		return
	}
	if len(p.params) > 0 {
		ss.reply(555, "5.5.4", "unsupported RCPT parameter")
		ss.fail()
		return
	}
	if p.domain[0] == '[' {
		ss.deny(ss.from.addr, p.addr, "address literal recipient")
		ss.reply(550, "5.7.1", "<"+p.addr+">: relay access denied")
		ss.fail()
		return
	}
	rt, owned := ss.s.mailTenant(p.domain)
	if ss.tenant == nil && !owned {
		ss.deny(ss.from.addr, p.addr, "recipient domain owned by no tenant (relay attempt)")
		ss.reply(550, "5.7.1", "<"+p.addr+">: relay access denied")
		ss.fail()
		return
	}
	if owned && cfg.Recipients != nil {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Session.CommandTimeout)
		ok, err := cfg.Recipients.ValidRecipient(ctx, rt.ID, p.addr)
		cancel()
		if err != nil {
			ss.reply(451, "4.3.0", "<"+p.addr+">: recipient check failed, try later")
			return
		}
		if !ok {
			ss.reply(550, "5.1.1", "<"+p.addr+">: recipient address rejected: user unknown")
			ss.fail()
			return
		}
	}
	if len(ss.rcpts) >= cfg.Session.MaxRecipients {
		ss.reply(452, "4.5.3", "too many recipients")
		return
	}
	if ss.tenant != nil && cfg.OutboundLimit != nil && !cfg.OutboundLimit.Allow(ss.tenant.ID+"\x00"+strings.ToLower(ss.from.addr)) {
		if !ss.rateLimited {
			ss.rateLimited = true
			e := ss.event()
			e.Type, e.Outcome, e.Action = "denied", "failure", "smtp_rcpt"
			e.Email.From, e.Email.To = ss.from.addr, []string{p.addr}
			e.Verdict = detect.Verdict{Action: detect.ActionTempFail, Rule: "mail-sender-rate", RuleName: "outbound sender rate",
				Reason: "sender " + ss.from.addr + " of tenant " + ss.tenant.ID + " is over its recipient rate"}
			cfg.Sink.Emit(e)
		}
		ss.reply(450, "4.7.1", "<"+p.addr+">: sender rate limit exceeded, try again later")
		return
	}
	ss.rcpts = append(ss.rcpts, p.addr)
	ss.reply(250, "2.1.5", "Ok")
}

// deny emits the event of a refused envelope (relay rules).
func (ss *session) deny(from, to, reason string) {
	e := ss.event()
	e.Type, e.Outcome, e.Action = "denied", "failure", "smtp_rcpt"
	e.Email.From = from
	if to != "" {
		e.Email.To = []string{to}
	}
	e.Verdict = detect.Verdict{Action: detect.ActionBlock, Rule: "mail-relay-rules", RuleName: "no open relay", Reason: reason}
	ss.s.cfg.Sink.Emit(e)
}

func (ss *session) event() detect.Event {
	e := detect.Event{Time: ss.s.cfg.Now(), Module: "mail", Dataset: "mail.message", Category: "email",
		Client: ss.client}
	if ss.tenant != nil {
		e.Tenant = ss.tenant.ID
		e.Email.Direction = string(Outbound)
	} else {
		e.Email.Direction = string(Inbound)
	}
	return e
}

func (ss *session) data(cmd command) (quit bool) {
	cfg := &ss.s.cfg
	if !ss.hasFrom {
		ss.reply(503, "5.5.1", "need MAIL command")
		return ss.fail()
	}
	if len(ss.rcpts) == 0 {
		ss.reply(554, "5.5.1", "no valid recipients")
		return ss.fail()
	}
	if cmd.arg != "" {
		ss.reply(501, "5.5.4", "syntax error")
		return ss.fail()
	}
	ss.reply(354, "", "End data with <CR><LF>.<CR><LF>")
	if ss.flush() != nil {
		return true
	}
	start := cfg.Now()
	ss.c.SetReadDeadline(time.Now().Add(cfg.Session.DataTimeout))
	body, err := readData(ss.r, cfg.Session.MaxSize, ss.buf[:0])
	if cap(body) <= 1<<20 {
		ss.buf = body[:0]
	}
	switch err {
	case nil:
	case errTooBig:
		ss.reply(552, "5.3.4", "message size exceeds fixed limit")
		ss.reset()
		return ss.fail()
	case errBareNewline:
		ss.reply(554, "5.5.2", "bare CR or LF in message data not allowed, closing connection")
		e := ss.event()
		e.Type, e.Outcome, e.Action = "denied", "failure", "smtp_data"
		e.Email.From, e.Email.To = ss.from.addr, append([]string(nil), ss.rcpts...)
		e.Verdict = detect.Verdict{Action: detect.ActionBlock, Rule: "mail-bare-newline", RuleName: "SMTP smuggling guard", Reason: "bare CR or LF in DATA"}
		cfg.Sink.Emit(e)
		return true
	default:
		return true
	}
	quit = ss.accept(body, start)
	ss.reset()
	return quit
}

// accept runs the checks on a received message, stores it and answers.
//
// Inbound mail for recipients of several tenants is checked once per
// tenant, each tenant's recipients under its own policy (spam levels,
// attachments, sanitisation, Filters, report-only), and each part that
// passes is queued under its own queue id with its own recipients (split
// delivery). One DATA has one reply, so the parts' outcomes are combined:
// any part deferred (451) defers the whole message and nothing is kept;
// every part refused → 550; some parts refused and others accepted → the
// refused parts are quarantined instead (no bounce, nothing lost; 550 for
// all when there is no quarantine store). When one part cannot be stored,
// the parts already stored are withdrawn and the whole message deferred.
func (ss *session) accept(body []byte, start time.Time) bool {
	s := ss.s
	cfg := &s.cfg
	id := s.newID()
	m := &Message{ID: id, Client: ss.client, Helo: ss.helo, From: ss.from.addr, To: append([]string(nil), ss.rcpts...)}
	m.HeaderFrom, m.Subject, m.MessageID = headerInfo(body)
	e := ss.event()
	e.Email.From, e.Email.To, e.Email.Subject, e.Email.MessageID = m.From, m.To, m.Subject, m.MessageID
	e.Action, e.BytesIn, e.ID = "smtp_message", int64(len(body)), id
	e.Labels = []detect.Label{{Key: "queue_id", Value: id}, {Key: "helo", Value: ss.helo}}
	emit := func(typ, outcome string, v detect.Verdict) {
		e.Type, e.Outcome, e.Verdict = typ, outcome, v
		e.Duration = cfg.Now().Sub(start)
		cfg.Sink.Emit(e)
	}

	if ss.tenant != nil {
		m.Tenant = ss.tenant.ID
		m.Direction = Outbound
		internal := true
		for _, r := range m.To {
			if _, ok := s.mailTenant(domainOf(r)); !ok {
				internal = false
			}
		}
		if internal {
			m.Direction = Internal
		}
		// The From: header must be the tenant's too.
		if hd := addrDomain(m.HeaderFrom); hd == "" || !ownsMailDomain(ss.tenant, hd) {
			v := detect.Verdict{Action: detect.ActionBlock, Rule: "mail-header-from", RuleName: "From: not owned by tenant",
				Reason: fmt.Sprintf("From: %q is not a domain of tenant %s", m.HeaderFrom, ss.tenant.ID)}
			emit("denied", "failure", v)
			ss.reply(550, "5.7.1", "From: header domain not owned by your organisation")
			return ss.fail()
		}
	} else {
		m.Direction = Inbound
		if t, ok := s.mailTenant(domainOf(m.To[0])); ok {
			m.Tenant = t.ID
		}
	}
	e.Tenant, e.Email.Direction = m.Tenant, string(m.Direction)
	if n := countReceived(body); n > 50 {
		emit("denied", "failure", detect.Verdict{Action: detect.ActionBlock, Rule: "mail-loop", Reason: "too many Received: headers"})
		ss.reply(554, "5.4.6", "too many hops (mail loop?)")
		return ss.fail()
	}

	// Prepend our trace and authentication headers.
	var hdr []byte
	hdr = ss.received(hdr, id, m.To, start)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Session.CommandTimeout)
	defer cancel()
	var authVerdict detect.Verdict
	if m.Direction == Inbound && cfg.Auth.Resolver != nil {
		body = stripAuthResults(body, cfg.Hostname)
		m.Data = body
		m.Auth, authVerdict = s.authenticate(ctx, m, ss.tenantOfRcpt())
		hdr = appendAuthResults(hdr, cfg.Hostname, m.Auth)
	}
	if m.Direction == Outbound {
		if k := cfg.Auth.signingKey(addrDomain(m.HeaderFrom)); k != nil {
			sig, err := sign(k, body)
			if err != nil {
				cfg.Logger.Error("mailrelay: DKIM signing failed", "domain", k.Domain, "err", err)
				emit("denied", "failure", detect.Verdict{Action: detect.ActionTempFail, Rule: "mail-dkim-sign", Reason: "DKIM signing failed"})
				ss.reply(451, "4.7.0", "message could not be signed, try later")
				return false
			}
			hdr = append(hdr, sig...)
		}
	}
	data := make([]byte, 0, len(hdr)+len(body))
	data = append(append(data, hdr...), body...)
	m.Data = data
	e.Labels = append(e.Labels, detect.Label{Key: "spf", Value: m.Auth.SPF}, detect.Label{Key: "dkim", Value: m.Auth.DKIM}, detect.Label{Key: "dmarc", Value: m.Auth.DMARC})

	// One part per recipient tenant (inbound), else one part.
	parts := ss.split(m)
	sh := &shared{}
	for _, p := range parts {
		ss.decide(ctx, p, authVerdict, sh)
		p.ev = e
		p.ev.ID, p.ev.Tenant, p.ev.Email.To = p.m.ID, p.m.Tenant, p.m.To
		p.ev.Labels = append(append([]detect.Label(nil), e.Labels...), p.content.labels...)
		if p.m.ID != id {
			for i, l := range p.ev.Labels {
				if l.Key == "queue_id" {
					p.ev.Labels[i].Value = p.m.ID
				}
			}
		}
		if len(parts) > 1 {
			p.ev.Labels = append(p.ev.Labels, detect.Label{Key: "split", Value: strconv.Itoa(len(parts))},
				detect.Label{Key: "split_of", Value: id})
		}
	}
	emitPart := func(p *part, typ, outcome string, v detect.Verdict) {
		p.ev.Type, p.ev.Outcome, p.ev.Verdict = typ, outcome, v
		p.ev.Duration = cfg.Now().Sub(start)
		cfg.Sink.Emit(p.ev)
	}
	emitAll := func(typ, outcome string, v detect.Verdict) {
		for _, p := range parts {
			emitPart(p, typ, outcome, v)
		}
	}

	// Combine the parts' verdicts into the one reply.
	var deferred, refused *part
	nRefused := 0
	for _, p := range parts {
		switch p.verdict.Action {
		case detect.ActionTempFail:
			if deferred == nil {
				deferred = p
			}
		case detect.ActionBlock:
			nRefused++
			if refused == nil {
				refused = p
			}
		}
	}
	if deferred != nil {
		for _, p := range parts {
			v := p.verdict
			if v.Action != detect.ActionTempFail {
				v = detect.Verdict{Action: detect.ActionTempFail, Rule: deferred.verdict.Rule, Reason: "deferred with the other recipients: " + deferred.verdict.Reason}
			}
			emitPart(p, "denied", "failure", v)
		}
		ss.reply(451, "4.7.1", "message deferred: "+sanitizeText(deferred.verdict.Reason))
		return false
	}
	if nRefused == len(parts) {
		for _, p := range parts {
			emitPart(p, "denied", "failure", p.verdict)
		}
		ss.reply(550, "5.7.1", "message rejected: "+sanitizeText(refused.verdict.Reason))
		return ss.fail()
	}
	needQuar := false
	for _, p := range parts {
		if p.verdict.Action == detect.ActionBlock {
			// Others accepted the message: keep this part rather than
			// bounce it or drop it.
			p.verdict.Action = detect.ActionQuarantine
			p.verdict.Reason += " (quarantined: other recipients accepted the message)"
		}
		needQuar = needQuar || p.verdict.Action == detect.ActionQuarantine
	}
	if needQuar && s.quar == nil {
		// No quarantine store: refuse rather than lose or pass it.
		for _, p := range parts {
			emitPart(p, "denied", "failure", p.verdict)
		}
		for _, p := range parts {
			if p.verdict.Action == detect.ActionQuarantine {
				ss.reply(550, "5.7.1", "message rejected by content policy: "+sanitizeText(p.verdict.Reason))
				break
			}
		}
		return false
	}
	for _, p := range parts {
		if p.content.keepOriginal && p.content.data != nil && s.quar == nil {
			emitAll("denied", "failure", detect.Verdict{Action: detect.ActionTempFail, Rule: "mail-sanitize", Reason: "no quarantine for the original"})
			ss.reply(451, "4.3.0", "cannot keep the original, try later")
			return false
		}
	}

	// Store every part; on a failure withdraw what was stored.
	var undo []func()
	rollback := func(rule, reason string) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		emitAll("denied", "failure", detect.Verdict{Action: detect.ActionTempFail, Rule: rule, Reason: reason})
	}
	var replies []string
	for _, p := range parts {
		pm := p.m
		switch p.verdict.Action {
		case detect.ActionQuarantine:
			if err := s.quar.put(ss.quarantineItem(pm, p.verdict, &p.content, reasonOf(p.verdict.Rule)), pm.Data); err != nil {
				cfg.Logger.Error("mailrelay: quarantine write failed", "err", err)
				rollback("mail-quarantine", "quarantine write failed")
				ss.reply(451, "4.3.0", "quarantine write failed, try later")
				return false
			}
			qid := pm.ID
			undo = append(undo, func() { s.quar.Delete(qid) })
			p.ev.Labels = append(p.ev.Labels, detect.Label{Key: "quarantine_id", Value: pm.ID})
			replies = append(replies, "quarantined as "+pm.ID)
			continue
		case detect.ActionDelete:
			replies = append(replies, pm.ID)
			continue
		}
		pdata := pm.Data
		if p.content.data != nil {
			if p.content.keepOriginal {
				sv := detect.Verdict{Action: detect.ActionAllow, Rule: "mail-sanitize", RuleName: "sanitised", Reason: "sanitised; original kept"}
				if err := s.quar.put(ss.quarantineItem(pm, sv, &p.content, "sanitized"), pm.Data); err != nil {
					cfg.Logger.Error("mailrelay: quarantine write failed", "err", err)
					rollback("mail-quarantine", "quarantine write failed")
					ss.reply(451, "4.3.0", "quarantine write failed, try later")
					return false
				}
				qid := pm.ID
				undo = append(undo, func() { s.quar.Delete(qid) })
				p.ev.Labels = append(p.ev.Labels, detect.Label{Key: "quarantine_id", Value: pm.ID})
			}
			pdata = p.content.data
		}
		env := &envelope{From: pm.From, To: pm.To, Tenant: pm.Tenant, Dir: pm.Direction, Client: ss.client.String(),
			Helo: ss.helo, Body8: ss.body8, UTF8: ss.utf8, Created: cfg.Now().UnixNano(), MsgID: pm.MessageID, Subject: pm.Subject}
		ref, err := s.spool.Put(pm.ID, 0, env.encode(), pdata, nil)
		if err != nil {
			cfg.Logger.Error("mailrelay: queue write failed", "err", err)
			rollback("mail-queue", "queue write failed")
			ss.reply(451, "4.3.0", "queue write failed, try later")
			return false
		}
		qid := pm.ID
		undo = append(undo, func() { s.spool.Done(qid, ref) })
		p.queued = &qmsg{id: pm.ID, env: env, ref: ref, data: pdata}
		replies = append(replies, "queued as "+pm.ID)
	}
	for _, p := range parts {
		switch p.verdict.Action {
		case detect.ActionQuarantine:
			emitPart(p, "denied", "success", p.verdict)
		case detect.ActionDelete:
			// Accepted and discarded: the event is the only trace.
			emitPart(p, "deletion", "success", p.verdict)
		default:
			v := p.verdict
			if v.Action == detect.ActionNone {
				v.Action = detect.ActionAllow
			}
			emitPart(p, "allowed", "success", v)
		}
	}
	ss.accepted++
	ss.reply(250, "2.0.0", "Ok: "+strings.Join(replies, "; "))
	for _, p := range parts {
		if p.queued != nil {
			s.dlv.enqueue(p.queued)
		}
	}
	return false
}

// part is the share of a message for one recipient tenant.
type part struct {
	m       *Message
	tt      *tenant.Tenant // recipient tenant (inbound) or nil
	verdict detect.Verdict
	content contentResult
	ev      detect.Event
	queued  *qmsg
}

// split returns the parts of m: for inbound mail one per recipient
// tenant (in the order of first appearance; the first keeps m.ID), else
// m alone.
func (ss *session) split(m *Message) []*part {
	if m.Direction != Inbound {
		return []*part{{m: m}}
	}
	var parts []*part
	byID := map[string]*part{}
	for _, r := range m.To {
		t, _ := ss.s.mailTenant(domainOf(r))
		key := ""
		if t != nil {
			key = t.ID
		}
		p := byID[key]
		if p == nil {
			pm := *m
			pm.Tenant, pm.To = key, nil
			if len(parts) > 0 {
				pm.ID = ss.s.newID()
			}
			p = &part{m: &pm, tt: t}
			byID[key] = p
			parts = append(parts, p)
		}
		p.m.To = append(p.m.To, r)
	}
	return parts
}

// decide runs the Filters and the content checks on one part and sets
// its verdict (report-only applied).
func (ss *session) decide(ctx context.Context, p *part, verdict detect.Verdict, sh *shared) {
	s := ss.s
	cfg := &s.cfg
	m := p.m
	if !verdict.Action.Stopped() {
		for _, f := range cfg.Filters {
			v, err := f.Check(ctx, m)
			if err != nil {
				v = detect.Verdict{Action: detect.ActionTempFail, Rule: "mail-filter-error", Reason: err.Error()}
			}
			if v.Action.Stopped() {
				verdict = v
				break
			}
			if v.Action != detect.ActionNone && verdict.Action == detect.ActionNone {
				verdict = v
			}
		}
	}
	if !verdict.Action.Stopped() && cfg.Content.enabled() {
		var err error
		p.content, err = cfg.Content.inspect(ctx, m, sh)
		if err != nil {
			cfg.Logger.Warn("mailrelay: content check failed", "id", m.ID, "err", err)
			p.content.verdict = detect.Verdict{Action: detect.ActionTempFail, Rule: "mail-content-error", Reason: "content scan unavailable"}
		}
		if p.content.verdict.Action.Stopped() || verdict.Action == detect.ActionNone {
			verdict = p.content.verdict
		}
	}
	reportOnly := cfg.ReportOnly
	if ss.tenant != nil {
		reportOnly = reportOnly || ss.tenant.Policy.ReportOnly
	} else if p.tt != nil {
		reportOnly = reportOnly || p.tt.Policy.ReportOnly
	}
	if verdict.Action.Stopped() && reportOnly && verdict.Action != detect.ActionTempFail {
		verdict.Action = detect.ActionReport
	}
	p.verdict = verdict
}

// reasonOf maps a deciding rule to a quarantine reason.
func reasonOf(rule string) string {
	switch rule {
	case "mail-virus", "mail-av-oversize":
		return "virus"
	case "mail-spam":
		return "spam"
	case "mail-attachment":
		return "attachment"
	case "mail-ad":
		return "ad"
	case "mail-dmarc":
		return "dmarc"
	}
	return "policy"
}

func (ss *session) quarantineItem(m *Message, v detect.Verdict, c *contentResult, reason string) *QuarantineItem {
	it := &QuarantineItem{ID: m.ID, Tenant: m.Tenant, Direction: m.Direction, Time: ss.s.cfg.Now().UTC(), Client: m.Client.String(),
		Helo: m.Helo, From: m.From, To: m.To, HeaderFrom: m.HeaderFrom, Subject: m.Subject, MessageID: m.MessageID,
		Reason: reason, Rule: v.Rule, Detail: v.Reason, Virus: c.virus, Body8: ss.body8, UTF8: ss.utf8}
	if c.report != nil {
		it.Score, it.Hits = c.report.Score, c.report.Hits
	}
	return it
}

func (ss *session) tenantOfRcpt() *tenant.Tenant {
	t, _ := ss.s.mailTenant(domainOf(ss.rcpts[0]))
	return t
}

func (ss *session) received(dst []byte, id string, to []string, t time.Time) []byte {
	proto := "SMTP"
	if ss.esmtp {
		proto = "ESMTP"
		if ss.tls {
			proto = "ESMTPS"
		}
		if ss.utf8 {
			proto = "UTF8SMTP"
			if ss.tls {
				proto = "UTF8SMTPS"
			}
		}
	}
	dst = append(dst, "Received: from "...)
	dst = append(dst, ss.helo...)
	dst = append(dst, " (["...)
	dst = append(dst, ss.client.Addr().String()...)
	dst = append(dst, "])\r\n\tby "...)
	dst = append(dst, ss.s.cfg.Hostname...)
	dst = append(dst, " (seccloud) with "...)
	dst = append(dst, proto...)
	dst = append(dst, " id "...)
	dst = append(dst, id...)
	if len(to) == 1 {
		dst = append(dst, "\r\n\tfor <"...)
		dst = append(dst, to[0]...)
		dst = append(dst, '>')
	}
	dst = append(dst, ";\r\n\t"...)
	dst = t.AppendFormat(dst, time.RFC1123Z)
	return append(dst, "\r\n"...)
}

func countReceived(body []byte) int {
	n := 0
	line := body
	for len(line) > 0 {
		if len(line) >= 2 && line[0] == '\r' && line[1] == '\n' {
			break // end of header
		}
		if len(line) >= 9 && bytes.EqualFold(line[:9], []byte("received:")) {
			n++
		}
		i := bytes.Index(line, []byte("\r\n"))
		if i < 0 {
			break
		}
		line = line[i+2:]
	}
	return n
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// addrDomain returns the lower-case domain of the first address in a
// From: header value, or "".
func addrDomain(v string) string {
	if v == "" {
		return ""
	}
	if a, err := mail.ParseAddress(v); err == nil {
		return strings.ToLower(domainOf(a.Address))
	}
	if l, err := mail.ParseAddressList(v); err == nil && len(l) > 0 {
		return strings.ToLower(domainOf(l[0].Address))
	}
	return ""
}

// sanitizeText keeps a reply text on one printable line.
func sanitizeText(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = ' '
		}
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}
