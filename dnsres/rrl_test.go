package dnsres_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/dnsres"
	"github.com/jichitai/seccloud/dnsres/dnsrestest"
)

func TestRRLCheck(t *testing.T) {
	clock := newClock()
	l, err := dnsres.NewRRL(dnsres.RRLConfig{ResponseRate: 1, ResponseBurst: 2, Slip: 2, Now: clock.Now})
	require.NoError(t, err)
	name := []byte("\x03www\x07example\x04test\x00")
	a := netip.MustParseAddr("192.0.2.1")
	var got []dnsres.RRLDecision
	for range 6 {
		got = append(got, l.Check(a, name, dns.TypeA, dns.RcodeSuccess))
	}
	assert.Equal(t, []dnsres.RRLDecision{dnsres.RRLSend, dnsres.RRLSend, dnsres.RRLDrop, dnsres.RRLSlip, dnsres.RRLDrop, dnsres.RRLSlip}, got)
	// Same /24, other response: its own bucket; other /24: its own too.
	assert.Equal(t, dnsres.RRLSend, l.Check(a, name, dns.TypeAAAA, dns.RcodeSuccess))
	assert.Equal(t, dnsres.RRLSend, l.Check(netip.MustParseAddr("192.0.3.1"), name, dns.TypeA, dns.RcodeSuccess))
	assert.Equal(t, dnsres.RRLDrop, l.Check(netip.MustParseAddr("192.0.2.200"), name, dns.TypeA, dns.RcodeSuccess), "same /24")
	clock.Advance(time.Second)
	assert.Equal(t, dnsres.RRLSend, l.Check(a, name, dns.TypeA, dns.RcodeSuccess), "refilled")
	assert.EqualValues(t, 5, l.Stats().Limited)
	assert.EqualValues(t, 2, l.Stats().Slipped)

	// A per-client limit applies across responses.
	c, err := dnsres.NewRRL(dnsres.RRLConfig{ResponseRate: -1, ClientRate: 1, ClientBurst: 1, Slip: -1, Now: clock.Now})
	require.NoError(t, err)
	assert.Equal(t, dnsres.RRLSend, c.Check(a, name, dns.TypeA, 0))
	assert.Equal(t, dnsres.RRLDrop, c.Check(a, []byte("\x01x\x00"), dns.TypeMX, 0))

	_, err = dnsres.NewRRL(dnsres.RRLConfig{ClientRate: -1})
	assert.Error(t, err)
	_, err = dnsres.NewRRL(dnsres.RRLConfig{ClientIPv4Prefix: 33})
	assert.Error(t, err)
}

// TestRRLThroughServer floods one name from one client over UDP: beyond
// the burst the answers are dropped or slip as TC=1 without records, and
// TCP is not limited.
func TestRRLThroughServer(t *testing.T) {
	clock := newClock()
	rrl, err := dnsres.NewRRL(dnsres.RRLConfig{ResponseRate: 1, ResponseBurst: 3, Slip: 2, Now: clock.Now})
	require.NoError(t, err)
	zones := dnsres.NewZones(dnsres.DefaultZone("aoba.example.jp", "ns.aoba.example.jp"))
	sink := new(dnsrestest.Sink)
	srv, err := dnsres.NewServer(dnsres.ServerConfig{Addr: "127.0.0.1:0", Directory: testDirectory(t), Sink: sink, Now: clock.Now,
		UDPSockets: 1, RRL: rrl, Handler: dnsres.Chain(dnsres.HandlerFunc(func(context.Context, dnsres.ResponseWriter, *dnsres.Request) (int, error) {
			return dns.RcodeRefused, nil
		}), zones.Middleware)})
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.1.5")}, net.UDPAddrFromAddrPort(srv.Addr()))
	require.NoError(t, err)
	defer c.Close()
	const n = 11
	for i := range n {
		m := q("aoba.example.jp.", dns.TypeSOA)
		m.Id = uint16(i + 1)
		b, err := m.Pack()
		require.NoError(t, err)
		_, err = c.Write(b)
		require.NoError(t, err)
	}
	full, slipped := 0, 0
	buf := make([]byte, 2048)
	for {
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		k, err := c.Read(buf)
		if err != nil {
			break
		}
		var r dns.Msg
		require.NoError(t, r.Unpack(buf[:k]))
		require.Len(t, r.Question, 1)
		if r.Truncated {
			assert.Empty(t, r.Answer)
			slipped++
		} else {
			require.Len(t, r.Answer, 1)
			full++
		}
	}
	assert.Equal(t, 3, full, "the burst")
	assert.Equal(t, 4, slipped, "every second limited answer slips")
	assert.EqualValues(t, 8, rrl.Stats().Limited)

	// TCP is exempt.
	tc := &dns.Client{Net: "tcp", Timeout: 3 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.1.5")}}}
	r, _, err := tc.Exchange(q("aoba.example.jp.", dns.TypeSOA), srv.Addr().String())
	require.NoError(t, err)
	assert.Len(t, r.Answer, 1)
}
