package mailrelaytest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNSBL is a DNS block list served by a real DNS server (miekg/dns) on a
// loopback UDP port: names added with List answer A 127.0.0.2 (or the
// given address), everything else NXDOMAIN. Resolver returns a
// *net.Resolver that asks only this server. Safe for concurrent use.
type DNSBL struct {
	Addr string // host:port of the server

	mu     sync.Mutex
	listed map[string]string
	srv    *dns.Server
}

// NewDNSBL starts a DNSBL server; it is stopped by t.Cleanup.
func NewDNSBL(t testing.TB) *DNSBL {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailrelaytest: dnsbl listen: %v", err)
	}
	b := &DNSBL{Addr: pc.LocalAddr().String(), listed: map[string]string{}}
	started := make(chan struct{})
	b.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(b.serve), NotifyStartedFunc: func() { close(started) }}
	go b.srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { b.srv.Shutdown() })
	return b
}

// List makes name (e.g. "2.0.0.127.zen.test" or "evil.test.dbl.test")
// answer A addr ("" = 127.0.0.2).
func (b *DNSBL) List(name, addr string) {
	if addr == "" {
		addr = "127.0.0.2"
	}
	b.mu.Lock()
	b.listed[strings.ToLower(dns.Fqdn(name))] = addr
	b.mu.Unlock()
}

func (b *DNSBL) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	if len(r.Question) == 1 {
		q := r.Question[0]
		b.mu.Lock()
		a, ok := b.listed[strings.ToLower(q.Name)]
		b.mu.Unlock()
		switch {
		case ok && q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(a)})
		case ok:
			// NODATA for other types.
		default:
			m.Rcode = dns.RcodeNameError
		}
	}
	w.WriteMsg(m)
}

// Resolver returns a resolver that sends every query to this server.
func (b *DNSBL) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", b.Addr)
	}}
}
