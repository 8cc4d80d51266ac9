package dnsres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/dnsres/internal/udpio"
	"github.com/jichitai/seccloud/dnsres/internal/wire"
	"github.com/jichitai/seccloud/tenant"
)

// Defaults of ServerConfig.
const (
	// DefaultUDPSize is the EDNS0 payload size we advertise and the
	// largest UDP response we send (the DNS flag day 2020 value).
	DefaultUDPSize = 1232
	// DefaultTCPIdleTimeout closes a TCP connection idle this long.
	DefaultTCPIdleTimeout = 10 * time.Second
	// DefaultMaxTCPConns bounds concurrent TCP connections.
	DefaultMaxTCPConns = 1024
)

// ErrAnswered is returned by a ResponseWriter that has already answered.
var ErrAnswered = errors.New("dnsres: query already answered")

// ServerConfig configures a Server. Directory and Handler are required;
// every other zero value selects the documented default.
type ServerConfig struct {
	// Addr is the host:port to listen on, UDP and TCP (port 0: any free
	// port, the same for both; see Server.Addr).
	Addr string
	// Directory resolves the client's tenant; a client in no tenant is
	// answered REFUSED (no open resolver). Required.
	Directory tenant.Directory
	// Handler answers the queries of tenants' clients. Required.
	Handler Handler
	// Sink receives one query-log event per query (see the package doc).
	// Nil discards them. Emit must not block.
	Sink detect.Sink
	// Logger receives operational records (socket errors). Nil discards.
	Logger *slog.Logger
	// UDPSize is our EDNS0 payload size; zero means DefaultUDPSize. Must
	// be within 512..65535.
	UDPSize int
	// UDPSockets is the number of UDP sockets bound to Addr with
	// SO_REUSEPORT (where the system has it), each with its own read loop;
	// zero means GOMAXPROCS.
	UDPSockets int
	// TCPIdleTimeout closes idle TCP connections; zero means
	// DefaultTCPIdleTimeout.
	TCPIdleTimeout time.Duration
	// MaxTCPConns bounds concurrent TCP connections (more are closed at
	// once); zero means DefaultMaxTCPConns.
	MaxTCPConns int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Observer, when set, sees every answered query of a tenant's client
	// with the response code sent (e.g. Detector counting NXDOMAIN
	// storms). It is called on the answering goroutine, after the
	// query-log event is emitted, and must not block.
	Observer Observer
	// RRL, when set, rate-limits UDP responses per client network
	// (amplification defence): limited responses are dropped or, every
	// RRLConfig.Slip-th, sent truncated. Nil means no limit.
	RRL *RRL
}

// Observer sees answered queries (ServerConfig.Observer).
type Observer interface {
	// Observe is called once per answered query with the response code
	// sent. r is valid only during the call.
	Observe(r *Request, rcode int)
}

// ServerStats are counters of a Server.
type ServerStats struct {
	// Queries counts queries handled (answered or refused).
	Queries uint64
	// Dropped counts packets dropped unanswered (too short, responses).
	Dropped uint64
	// Malformed counts queries answered FORMERR, NOTIMP or BADVERS.
	Malformed uint64
	// Refused counts queries from clients in no tenant.
	Refused uint64
}

// Server is a DNS server over UDP and TCP: it parses each query, refuses
// clients in no tenant, passes the others to the handler chain, and logs
// each query to the sink. Create it with NewServer, then Start it. A
// Server is safe for concurrent use.
type Server struct {
	cfg     ServerConfig
	log     *slog.Logger
	sink    detect.Sink
	now     func() time.Time
	udpSize int

	mu      sync.Mutex
	udp     []*net.UDPConn
	tcp     net.Listener
	conns   map[net.Conn]struct{}
	closing bool
	wg      sync.WaitGroup
	tcpSem  chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc

	queries, dropped, malformed, refused atomic.Uint64
}

// NewServer validates cfg and returns a Server (not yet listening).
func NewServer(cfg ServerConfig) (*Server, error) {
	switch {
	case cfg.Directory == nil:
		return nil, errors.New("dnsres: ServerConfig.Directory is required")
	case cfg.Handler == nil:
		return nil, errors.New("dnsres: ServerConfig.Handler is required")
	case cfg.UDPSize != 0 && (cfg.UDPSize < 512 || cfg.UDPSize > 65535):
		return nil, fmt.Errorf("dnsres: ServerConfig.UDPSize %d is outside 512..65535", cfg.UDPSize)
	case cfg.UDPSockets < 0 || cfg.MaxTCPConns < 0 || cfg.TCPIdleTimeout < 0:
		return nil, errors.New("dnsres: ServerConfig: UDPSockets, MaxTCPConns and TCPIdleTimeout must not be negative")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, sink: cfg.Sink, now: cfg.Now, udpSize: cfg.UDPSize}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.sink == nil {
		s.sink = detect.Discard
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.udpSize == 0 {
		s.udpSize = DefaultUDPSize
	}
	if s.cfg.UDPSockets == 0 {
		s.cfg.UDPSockets = runtime.GOMAXPROCS(0)
	}
	if s.cfg.TCPIdleTimeout == 0 {
		s.cfg.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if s.cfg.MaxTCPConns == 0 {
		s.cfg.MaxTCPConns = DefaultMaxTCPConns
	}
	s.tcpSem = make(chan struct{}, s.cfg.MaxTCPConns)
	s.conns = make(map[net.Conn]struct{})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start binds the UDP sockets and the TCP listener on cfg.Addr and starts
// serving in the background. It returns the bind error, if any.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp != nil || s.closing {
		return errors.New("dnsres: server already started")
	}
	lc := listenConfig(s.cfg.UDPSockets > 1)
	_, port, _ := net.SplitHostPort(s.cfg.Addr)
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		first, err := lc.ListenPacket(context.Background(), "udp", s.cfg.Addr)
		if err != nil {
			return fmt.Errorf("dnsres: listen udp: %w", err)
		}
		s.udp = append(s.udp, first.(*net.UDPConn))
		addr := first.LocalAddr().String()
		for i := 1; i < s.cfg.UDPSockets; i++ {
			pc, err := lc.ListenPacket(context.Background(), "udp", addr)
			if err != nil {
				break // no SO_REUSEPORT: one socket, still correct
			}
			s.udp = append(s.udp, pc.(*net.UDPConn))
		}
		ln, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		for _, c := range s.udp {
			c.Close()
		}
		s.udp = nil
		// Port 0: the kernel's UDP port may be taken for TCP; try another.
		if port != "0" || attempt == 9 {
			return fmt.Errorf("dnsres: listen tcp: %w", err)
		}
	}
	s.tcp = ln
	for _, c := range s.udp {
		_ = c.SetReadBuffer(4 << 20)
		s.wg.Add(1)
		go s.serveUDP(c)
	}
	s.wg.Add(1)
	go s.serveTCP(ln)
	return nil
}

// Addr returns the address the server listens on (after Start).
func (s *Server) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.udp) == 0 {
		return netip.AddrPort{}
	}
	return s.udp[0].LocalAddr().(*net.UDPAddr).AddrPort()
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{Queries: s.queries.Load(), Dropped: s.dropped.Load(), Malformed: s.malformed.Load(), Refused: s.refused.Load()}
}

// Shutdown stops accepting queries, closes the sockets and waits for the
// read loops and TCP connections to end, or for ctx. Answers still being
// resolved by detached handlers are dropped.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for _, c := range s.udp {
		c.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
	for c := range s.conns {
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

func (s *Server) serveUDP(c *net.UDPConn) {
	defer s.wg.Done()
	u, err := udpio.New(c, udpio.Slots, max(s.udpSize, 4096))
	if err != nil {
		s.log.Error("dns: udp socket", "err", err)
		return
	}
	r := new(Request)
	w := &udpWriter{s: s, conn: c, batch: u, r: r, out: make([]byte, 0, 65535)}
	for {
		n, err := u.ReadBatch()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("dns: udp read", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		// One clock read per batch: the packets were queued together.
		start := s.now()
		for i := 0; i < n; i++ {
			pkt, addr := u.Packet(i)
			w.addr, w.done = addr, false
			s.serve(w, r, pkt, addr, false, start)
		}
		if err := u.Flush(); err != nil {
			s.log.Debug("dns: udp write", "err", err)
		}
	}
}

func (s *Server) serveTCP(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("dns: tcp accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		select {
		case s.tcpSem <- struct{}{}:
		default:
			c.Close() // too many connections
			continue
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			<-s.tcpSem
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

func (s *Server) serveConn(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
		<-s.tcpSem
		s.wg.Done()
	}()
	client := netip.AddrPort{}
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		client = ta.AddrPort()
	}
	tc := &tcpConn{c: c}
	r := new(Request)
	w := &tcpWriter{s: s, tc: tc, r: r}
	var lenBuf [2]byte
	buf := make([]byte, 0, 512)
	for {
		_ = c.SetReadDeadline(time.Now().Add(s.cfg.TCPIdleTimeout))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lenBuf[:]))
		if n < 12 {
			return
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		w.done = false
		s.serve(w, r, buf, client, true, s.now())
		if tc.broken.Load() {
			return
		}
	}
}

// baseWriter is what the UDP and TCP writers share.
type baseWriter interface {
	ResponseWriter
	send(b []byte) error
	answered() bool
}

// serve handles one query read into raw.
func (s *Server) serve(w baseWriter, r *Request, raw []byte, client netip.AddrPort, tcp bool, start time.Time) {
	defer func() {
		// A panicking handler must not take the read loop down.
		if p := recover(); p != nil {
			s.log.Error("dns: handler panic", "panic", p, "client", client.String())
			if !w.answered() && r.key != nil {
				s.writeError(w, r, dns.RcodeServerFailure)
			}
		}
	}()
	var q wire.Query
	err := wire.ParseQuery(raw, &q, r.keyBuf[:])
	switch {
	case errors.Is(err, wire.ErrShort), errors.Is(err, wire.ErrNotQuery):
		s.dropped.Add(1)
		return
	case errors.Is(err, wire.ErrBadVersion):
		s.malformed.Add(1)
		s.queries.Add(1)
		r.setQuery(raw, &q)
		r.Client, r.TCP, r.Start, r.Tenant = client, tcp, start, nil
		s.writeError(w, r, dns.RcodeBadVers)
		return
	case err != nil || q.Opcode != dns.OpcodeQuery:
		s.malformed.Add(1)
		s.queries.Add(1)
		rc := dns.RcodeFormatError
		if err == nil {
			rc = dns.RcodeNotImplemented
		}
		// No usable question: a bare header.
		var hb [12]byte
		_ = w.send(wire.Header(hb[:], q.ID, q.Flags, rc))
		return
	}
	s.queries.Add(1)
	r.setQuery(raw, &q)
	r.Client, r.TCP, r.Start, r.ourUDP = client, tcp, start, s.udpSize
	t, ok := s.cfg.Directory.ByAddr(client.Addr().Unmap())
	if !ok {
		s.refused.Add(1)
		r.Tenant = nil
		r.Verdict = verdictNoTenant
		s.writeError(w, r, dns.RcodeRefused)
		return
	}
	r.Tenant = t
	if q.Class != dns.ClassINET && q.Class != dns.ClassANY {
		s.writeError(w, r, dns.RcodeNotImplemented)
		return
	}
	if q.Type == dns.TypeAXFR || q.Type == dns.TypeIXFR || q.Type == dns.TypeOPT {
		s.writeError(w, r, dns.RcodeRefused)
		return
	}
	rc, err := s.cfg.Handler.ServeDNS(s.ctx, w, r)
	if w.answered() {
		return
	}
	if err != nil {
		s.log.Debug("dns: handler error", "qname", r.Name(), "err", err)
		rc = dns.RcodeServerFailure
	}
	switch rc {
	case dns.RcodeServerFailure, dns.RcodeRefused, dns.RcodeFormatError, dns.RcodeNotImplemented:
		s.writeError(w, r, rc)
	}
}

var verdictNoTenant = detect.Verdict{Action: detect.ActionBlock, Rule: "dns-no-tenant", Reason: "source address belongs to no tenant (no open resolver)"}

// writeError answers r with rcode, the question and (if the query had
// one) an OPT record.
func (s *Server) writeError(w ResponseWriter, r *Request, rcode int) {
	m := new(dns.Msg)
	m.Rcode = rcode
	_ = w.WriteMsg(m)
}

// finish sets on m what the server owns, packs it into out and returns the
// wire bytes.
func (s *Server) pack(r *Request, m *dns.Msg, out []byte, tcp bool) ([]byte, error) {
	m.Id = r.ID
	m.Response = true
	m.Opcode = dns.OpcodeQuery
	m.RecursionDesired = r.RD
	m.RecursionAvailable = true
	m.CheckingDisabled = r.CD
	m.Question = append(m.Question[:0], dns.Question{Name: askedName(r), Qtype: r.Type, Qclass: r.Class})
	// Our OPT replaces any the handler left.
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
	if r.EDNS || m.Rcode > 0xF {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(uint16(s.udpSize))
		o.SetDo(r.DO)
		m.Extra = append(m.Extra, o)
	}
	m.Compress = true
	if !tcp {
		m.Truncate(r.maxUDP(s.udpSize))
	}
	return m.PackBuffer(out)
}

// askedName is the question name with the client's letter case.
func askedName(r *Request) string {
	if r.qend > 16 && r.qend <= len(r.Raw) {
		return wire.NameString(r.Raw[12 : r.qend-4])
	}
	return r.Name()
}

// logQuery emits the query-log event for r answered by wire message b.
func (s *Server) logQuery(r *Request, b []byte, m *dns.Msg) {
	rcode := 0
	if len(b) >= 4 {
		rcode = int(b[3] & 0xF)
	}
	if m != nil {
		rcode = m.Rcode
	}
	e := detect.Event{
		Time: r.Start, Module: "dns", Dataset: "dns.query", Kind: "event",
		Category: "network", Type: "protocol", Action: "dns_query", Outcome: "success",
		Duration: s.now().Sub(r.Start), Client: r.Client,
		Verdict: r.Verdict, Severity: r.Severity,
		DNS: detect.DNSInfo{QName: r.Name(), QType: typeString(r.Type), RCode: rcodeString(rcode), ID: r.ID,
			Answers: r.Answers, Resolved: r.Resolved},
		Labels: sourceLabels(r.Source),
	}
	if r.Tenant != nil {
		e.Tenant = r.Tenant.ID
	}
	if rcode != dns.RcodeSuccess && rcode != dns.RcodeNameError {
		e.Outcome = "failure"
	}
	if m != nil && r.Answers == nil && r.Resolved == nil {
		e.DNS.Answers, e.DNS.Resolved = answerData(m.Answer)
	}
	if r.Verdict.Action != detect.ActionNone && r.Tenant != nil {
		e.Kind, e.Category, e.Type, e.Action = "alert", "intrusion_detection", "indicator", "dns_"+r.Verdict.Action.String()
		e.Terminal = r.Client.Addr().String()
	}
	s.sink.Emit(e)
	if s.cfg.Observer != nil && r.Tenant != nil {
		s.cfg.Observer.Observe(r, rcode)
	}
}

var (
	labelsHit      = []detect.Label{{Key: "dns_cache", Value: "hit"}}
	labelsStale    = []detect.Label{{Key: "dns_cache", Value: "stale"}}
	labelsMiss     = []detect.Label{{Key: "dns_cache", Value: "miss"}}
	labelsZone     = []detect.Label{{Key: "dns_source", Value: "zone"}}
	labelsPolicy   = []detect.Label{{Key: "dns_source", Value: "policy"}}
	labelsCoalesce = []detect.Label{{Key: "dns_cache", Value: "coalesced"}}
)

// sourceLabels returns the (shared, never modified) labels for a source.
func sourceLabels(src string) []detect.Label {
	switch src {
	case "cache":
		return labelsHit
	case "stale":
		return labelsStale
	case "upstream":
		return labelsMiss
	case "coalesced":
		return labelsCoalesce
	case "zone":
		return labelsZone
	case "policy":
		return labelsPolicy
	}
	return nil
}

func typeString(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

func rcodeString(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}

// answerData returns the log form of an answer section: the RDATA text of
// each record and the addresses of A and AAAA records.
func answerData(rrs []dns.RR) (answers []string, addrs []netip.Addr) {
	for _, rr := range rrs {
		switch v := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(v.A.To4()); ok {
				addrs = append(addrs, a)
				answers = append(answers, a.String())
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(v.AAAA); ok {
				addrs = append(addrs, a)
				answers = append(answers, a.String())
			}
		case *dns.CNAME:
			answers = append(answers, v.Target)
		default:
			h := rr.Header().String()
			if s := rr.String(); len(s) >= len(h) {
				answers = append(answers, s[len(h):])
			}
		}
	}
	return answers, addrs
}

// udpWriter answers one UDP query; the read loop reuses it.
type udpWriter struct {
	s     *Server
	conn  *net.UDPConn
	batch *udpio.Conn // the read loop's batch; nil for detached writers
	addr  netip.AddrPort
	r     *Request
	out   []byte
	done  bool
}

func (w *udpWriter) answered() bool { return w.done }

func (w *udpWriter) send(b []byte) error {
	w.done = true
	if rrl := w.s.cfg.RRL; rrl != nil && w.r != nil && len(b) > 12 {
		switch rrl.Check(w.addr.Addr(), w.r.wireName(), w.r.Type, int(b[3]&0xF)) {
		case RRLDrop:
			return nil
		case RRLSlip:
			var buf [512]byte
			b = slipResponse(buf[:0], b, w.r.qend)
		}
	}
	if w.batch != nil {
		return w.batch.Queue(b, w.addr)
	}
	_, err := w.conn.WriteToUDPAddrPort(b, w.addr)
	return err
}

func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	if w.done {
		return ErrAnswered
	}
	b, err := w.s.pack(w.r, m, w.out[:0], false)
	if err != nil {
		return fmt.Errorf("dnsres: pack response: %w", err)
	}
	w.s.logQuery(w.r, b, m)
	return w.send(b)
}

func (w *udpWriter) WriteWire(b []byte) error {
	if w.done {
		return ErrAnswered
	}
	w.s.logQuery(w.r, b, nil)
	return w.send(b)
}

func (w *udpWriter) Detach(r *Request) ResponseWriter {
	return &udpWriter{s: w.s, conn: w.conn, addr: w.addr, r: r}
}

// tcpConn serialises writes to one TCP connection.
type tcpConn struct {
	c      net.Conn
	mu     sync.Mutex
	buf    []byte
	broken atomic.Bool
}

func (t *tcpConn) write(b []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf[:0], byte(len(b)>>8), byte(len(b)))
	t.buf = append(t.buf, b...)
	_ = t.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := t.c.Write(t.buf)
	if err != nil {
		t.broken.Store(true)
	}
	if cap(t.buf) > 4096 {
		t.buf = nil
	}
	return err
}

// tcpWriter answers one TCP query.
type tcpWriter struct {
	s    *Server
	tc   *tcpConn
	r    *Request
	out  []byte
	done bool
}

func (w *tcpWriter) answered() bool { return w.done }

func (w *tcpWriter) send(b []byte) error {
	w.done = true
	return w.tc.write(b)
}

func (w *tcpWriter) WriteMsg(m *dns.Msg) error {
	if w.done {
		return ErrAnswered
	}
	b, err := w.s.pack(w.r, m, w.out[:0], true)
	if err != nil {
		return fmt.Errorf("dnsres: pack response: %w", err)
	}
	w.out = b[:0]
	w.s.logQuery(w.r, b, m)
	return w.send(b)
}

func (w *tcpWriter) WriteWire(b []byte) error {
	if w.done {
		return ErrAnswered
	}
	w.s.logQuery(w.r, b, nil)
	return w.send(b)
}

func (w *tcpWriter) Detach(r *Request) ResponseWriter {
	return &tcpWriter{s: w.s, tc: w.tc, r: r}
}
