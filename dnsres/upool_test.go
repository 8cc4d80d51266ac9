package dnsres

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestUpoolReplacesSockets: sockets are replaced after maxUses queries
// (new ports), queries keep working, and close ends every reader.
func TestUpoolReplacesSockets(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 192.0.2.1")
		m.Answer = []dns.RR{rr}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	p, err := newUpool(2, time.Second)
	require.NoError(t, err)
	p.maxUses = 3
	ports := map[uint16]bool{}
	server := netip.MustParseAddrPort(pc.LocalAddr().String())
	for range 12 {
		for i := range p.socks {
			ports[netip.MustParseAddrPort(p.socks[i].Load().c.LocalAddr().String()).Port()] = true
		}
		b, err := poolExchange(context.Background(), p, server, Question{Name: "www.example.test.", Type: dns.TypeA, Class: dns.ClassINET}, time.Second, false)
		require.NoError(t, err)
		var m dns.Msg
		require.NoError(t, m.Unpack(b))
		require.Len(t, m.Answer, 1)
	}
	assert.Greater(t, len(ports), 2, "sockets were replaced by new ports")
	p.close()
	_, err = p.exchange(context.Background(), server, []byte{0, 0}, time.Now().Add(time.Second))
	assert.Error(t, err, "closed")
}
