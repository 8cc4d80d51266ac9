// Package dnsrestest holds fakes for testing code that uses dnsres: a
// loopback authoritative server serving zone-file text, and a Sink that
// records events. They are for tests only.
package dnsrestest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/dnsres"
)

// Authority is an authoritative DNS server on a loopback address, UDP and
// TCP, answering from zones given as zone-file text (referrals with glue,
// wildcards, CNAMEs inside a zone). Queries counts the queries received.
type Authority struct {
	// Addr is where it listens.
	Addr netip.AddrPort

	zones   *dnsres.Zones
	udp     *dns.Server
	tcp     *dns.Server
	queries atomic.Int64
	delay   atomic.Int64
	mu      sync.Mutex
	hook    func(w dns.ResponseWriter, r *dns.Msg) bool
}

// NewAuthority starts an authoritative server on addr ("127.0.0.1:0" for
// any free port) serving zones (origin → zone text). It stops when the
// test ends.
func NewAuthority(tb testing.TB, addr string, zones map[string]string) *Authority {
	tb.Helper()
	var zs []*dnsres.Zone
	for origin, text := range zones {
		z, err := dnsres.ParseZone(strings.NewReader(text), origin, origin)
		if err != nil {
			tb.Fatalf("dnsrestest: zone %s: %v", origin, err)
		}
		zs = append(zs, z)
	}
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ; try++ {
		var err error
		pc, err = net.ListenPacket("udp", addr)
		if err != nil {
			tb.Fatalf("dnsrestest: %v", err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		// A free UDP port whose TCP twin is taken: pick another one
		// when the caller let the system choose.
		if _, port, _ := net.SplitHostPort(addr); port != "0" || try >= 20 {
			tb.Fatalf("dnsrestest: %v", err)
		}
	}
	a := &Authority{Addr: pc.LocalAddr().(*net.UDPAddr).AddrPort(), zones: dnsres.NewZones(zs...)}
	h := dns.HandlerFunc(a.serve)
	a.udp = &dns.Server{PacketConn: pc, Handler: h}
	a.tcp = &dns.Server{Listener: ln, Handler: h}
	started := make(chan struct{}, 2)
	a.udp.NotifyStartedFunc = func() { started <- struct{}{} }
	a.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	go func() { _ = a.udp.ActivateAndServe() }()
	go func() { _ = a.tcp.ActivateAndServe() }()
	<-started
	<-started
	tb.Cleanup(a.Stop)
	return a
}

// Queries returns the number of queries received so far.
func (a *Authority) Queries() int64 { return a.queries.Load() }

// SetDelay makes the server wait d before each answer.
func (a *Authority) SetDelay(d time.Duration) { a.delay.Store(int64(d)) }

// SetHook installs fn, called before the normal answer; when it returns
// true it has answered (or chosen not to) and the normal answer is skipped.
func (a *Authority) SetHook(fn func(w dns.ResponseWriter, r *dns.Msg) bool) {
	a.mu.Lock()
	a.hook = fn
	a.mu.Unlock()
}

// Stop stops the server (idempotent).
func (a *Authority) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = a.udp.ShutdownContext(ctx)
	_ = a.tcp.ShutdownContext(ctx)
}

func (a *Authority) serve(w dns.ResponseWriter, r *dns.Msg) {
	a.queries.Add(1)
	if d := a.delay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	a.mu.Lock()
	hook := a.hook
	a.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	m := new(dns.Msg)
	if len(r.Question) != 1 {
		m.SetRcode(r, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	var best *dnsres.Zone
	for n := name; ; {
		if z, ok := a.zones.Zone(n); ok {
			best = z
			break
		}
		i, end := dns.NextLabel(n, 0)
		if end || n == "." {
			break
		}
		n = n[i:]
	}
	if best == nil {
		if z, ok := a.zones.Zone("."); ok {
			best = z
		}
	}
	if best == nil {
		m.SetRcode(r, dns.RcodeRefused)
		_ = w.WriteMsg(m)
		return
	}
	ans := best.Answer(name, q.Qtype)
	m.SetReply(r)
	m.Authoritative = ans.Authoritative
	m.Rcode = ans.Rcode
	m.Answer, m.Ns, m.Extra = ans.Answer, ans.Ns, ans.Extra
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(1232, o.Do())
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := 512
		if o := r.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// Sink records events; safe for concurrent use.
type Sink struct {
	mu     sync.Mutex
	events []detect.Event
}

var _ detect.Sink = (*Sink)(nil)

// Emit records e.
func (s *Sink) Emit(e detect.Event) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

// Events returns a copy of the events recorded so far.
func (s *Sink) Events() []detect.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]detect.Event(nil), s.events...)
}

// Wait waits up to timeout for n events and returns the events.
func (s *Sink) Wait(n int, timeout time.Duration) []detect.Event {
	deadline := time.Now().Add(timeout)
	for {
		ev := s.Events()
		if len(ev) >= n || time.Now().After(deadline) {
			return ev
		}
		time.Sleep(5 * time.Millisecond)
	}
}
