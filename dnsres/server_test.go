package dnsres_test

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/dnsres"
)

func label(e detect.Event, key string) string {
	v, _ := e.Label(key)
	return v
}

func TestRefusesClientsInNoTenant(t *testing.T) {
	f := newFixture(t)
	for _, network := range []string{"udp", "tcp"} {
		r := f.query(t, "127.0.0.1", network, q("www.example.test.", dns.TypeA))
		assert.Equal(t, dns.RcodeRefused, r.Rcode, network)
		assert.Empty(t, r.Answer)
	}
	assert.Zero(t, f.up.Queries(), "a refused query must not reach the upstream")
	ev := f.sink.Wait(2, time.Second)
	require.Len(t, ev, 2)
	assert.Equal(t, "REFUSED", ev[0].DNS.RCode)
	assert.Empty(t, ev[0].Tenant)
	assert.Equal(t, "dns-no-tenant", ev[0].Verdict.Rule)
}

func TestForwardThenCacheHit(t *testing.T) {
	f := newFixture(t)
	r1 := f.query(t, "127.0.1.5", "udp", qEDNS("WWW.Example.Test.", dns.TypeA))
	require.Equal(t, dns.RcodeSuccess, r1.Rcode)
	require.Len(t, r1.Answer, 2)
	assert.Equal(t, "WWW.Example.Test.", r1.Question[0].Name, "question echoed as asked")
	assert.True(t, r1.RecursionAvailable)
	assert.False(t, r1.Authoritative)
	opt := r1.IsEdns0()
	require.NotNil(t, opt)
	assert.EqualValues(t, 1232, opt.UDPSize())

	f.clock.Advance(100 * time.Second)
	r2 := f.query(t, "127.0.1.6", "udp", q("www.example.test.", dns.TypeA))
	require.Len(t, r2.Answer, 2)
	assert.Nil(t, r2.IsEdns0(), "no OPT for a query without one")
	assert.EqualValues(t, 200, r2.Answer[0].Header().Ttl, "TTL decremented by the time cached")
	assert.Equal(t, "www.example.test.", r2.Question[0].Name)
	assert.EqualValues(t, 1, f.up.Queries(), "second query served from the cache")

	r3 := f.query(t, "127.0.1.6", "tcp", q("www.example.test.", dns.TypeA))
	require.Len(t, r3.Answer, 2)

	ev := f.sink.Wait(3, time.Second)
	require.Len(t, ev, 3)
	assert.Equal(t, "miss", label(ev[0], "dns_cache"))
	assert.Equal(t, "hit", label(ev[1], "dns_cache"))
	assert.Equal(t, "hit", label(ev[2], "dns_cache"))
	for _, e := range ev {
		assert.Equal(t, "aoba", e.Tenant)
		assert.Equal(t, "dns", e.Module)
		assert.Equal(t, "www.example.test.", e.DNS.QName)
		assert.Equal(t, "A", e.DNS.QType)
		assert.Equal(t, "NOERROR", e.DNS.RCode)
		assert.ElementsMatch(t, []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")}, e.DNS.Resolved)
	}
}

func TestCNAMEAndWildcardAndAAAA(t *testing.T) {
	f := newFixture(t)
	r := f.query(t, "127.0.1.5", "udp", q("alias.example.test.", dns.TypeA))
	require.Len(t, r.Answer, 3)
	assert.Equal(t, dns.TypeCNAME, r.Answer[0].Header().Rrtype)
	r = f.query(t, "127.0.1.5", "udp", q("x.wild.example.test.", dns.TypeA))
	require.Len(t, r.Answer, 1)
	assert.Equal(t, "192.0.2.30", r.Answer[0].(*dns.A).A.String())
	r = f.query(t, "127.0.1.5", "udp", q("v6.example.test.", dns.TypeAAAA))
	require.Len(t, r.Answer, 1)
}

func TestNegativeCaching(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 2; i++ {
		r := f.query(t, "127.0.1.5", "udp", q("nope.example.test.", dns.TypeA))
		assert.Equal(t, dns.RcodeNameError, r.Rcode)
		require.Len(t, r.Ns, 1)
		assert.LessOrEqual(t, r.Ns[0].Header().Ttl, uint32(60), "RFC 2308: min(SOA TTL, MINIMUM)")
		r = f.query(t, "127.0.1.5", "udp", q("www.example.test.", dns.TypeMX)) // NODATA
		assert.Equal(t, dns.RcodeSuccess, r.Rcode)
		assert.Empty(t, r.Answer)
		require.Len(t, r.Ns, 1)
	}
	assert.EqualValues(t, 2, f.up.Queries())
	f.clock.Advance(61 * time.Second)
	f.query(t, "127.0.1.5", "udp", q("nope.example.test.", dns.TypeA))
	assert.EqualValues(t, 3, f.up.Queries(), "negative entry expired after 60 s")
}

func TestTruncationAndTCPFallback(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 2; i++ { // miss, then hit
		r := f.query(t, "127.0.1.5", "udp", q("big.example.test.", dns.TypeTXT))
		assert.True(t, r.Truncated, "600-byte answer without EDNS: TC")
		r = f.query(t, "127.0.1.5", "tcp", q("big.example.test.", dns.TypeTXT))
		assert.False(t, r.Truncated)
		assert.Len(t, r.Answer, 5)
		r = f.query(t, "127.0.1.5", "udp", qEDNS("big.example.test.", dns.TypeTXT))
		assert.False(t, r.Truncated, "fits in 1232")
		assert.Len(t, r.Answer, 5)
	}
}

func TestCoalescing(t *testing.T) {
	f := newFixture(t)
	f.up.SetDelay(200 * time.Millisecond)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := f.exchange("127.0.1.7", "udp", q("www.example.test.", dns.TypeA))
			if assert.NoError(t, err) {
				assert.Len(t, r.Answer, 2)
			}
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 1, f.up.Queries(), "20 identical questions, one upstream query")
	st := f.cache.Stats()
	assert.EqualValues(t, 1, st.Misses)
	assert.EqualValues(t, 19, st.Coalesced+st.Hits)
}

func TestServeStale(t *testing.T) {
	f := newFixture(t)
	r := f.query(t, "127.0.1.5", "udp", q("short.example.test.", dns.TypeA))
	require.Len(t, r.Answer, 1)
	f.up.Stop()
	f.clock.Advance(10 * time.Second) // expired (TTL 1), within StaleTTL
	r = f.query(t, "127.0.1.5", "udp", q("short.example.test.", dns.TypeA))
	require.Equal(t, dns.RcodeSuccess, r.Rcode)
	require.Len(t, r.Answer, 1)
	assert.EqualValues(t, 1, r.Answer[0].Header().Ttl, "stale answers carry min(TTL, 30)")
	// Within the recheck timer: answered stale without asking.
	r = f.query(t, "127.0.1.5", "udp", q("short.example.test.", dns.TypeA))
	require.Len(t, r.Answer, 1)
	// A name never cached: SERVFAIL.
	r = f.query(t, "127.0.1.5", "udp", q("www.example.test.", dns.TypeA))
	assert.Equal(t, dns.RcodeServerFailure, r.Rcode)
	ev := f.sink.Wait(4, time.Second)
	require.Len(t, ev, 4)
	assert.Equal(t, "stale", label(ev[1], "dns_cache"))
	assert.Equal(t, "stale", label(ev[2], "dns_cache"))
	assert.EqualValues(t, 2, f.cache.Stats().Stale)
}

func TestPolicySinkhole(t *testing.T) {
	f := newFixture(t)
	r := f.query(t, "127.0.1.5", "udp", q("C2C.example.test.", dns.TypeA))
	require.Len(t, r.Answer, 1)
	assert.Equal(t, "127.0.0.99", r.Answer[0].(*dns.A).A.String())
	r = f.query(t, "127.0.1.5", "udp", q("sub.evil.invalid.", dns.TypeAAAA))
	require.Len(t, r.Answer, 1)
	assert.Equal(t, "::1", r.Answer[0].(*dns.AAAA).AAAA.String())
	r = f.query(t, "127.0.1.5", "udp", q("evil.invalid.", dns.TypeMX))
	assert.Equal(t, dns.RcodeSuccess, r.Rcode)
	assert.Empty(t, r.Answer, "NODATA for other types")
	assert.Zero(t, f.up.Queries())

	// Tenant midori is report-only: real answer, alert says report.
	r = f.query(t, "127.0.2.9", "udp", q("c2c.example.test.", dns.TypeA))
	require.Len(t, r.Answer, 1)
	assert.Equal(t, "192.0.2.66", r.Answer[0].(*dns.A).A.String())

	ev := f.sink.Wait(4, time.Second)
	require.Len(t, ev, 4)
	e := ev[0]
	assert.Equal(t, "alert", e.Kind)
	assert.Equal(t, detect.ActionSinkhole, e.Verdict.Action)
	assert.Equal(t, "dns-intel-domain", e.Verdict.Rule)
	assert.Equal(t, detect.SeverityReached, e.Severity)
	assert.Equal(t, "aoba", e.Tenant)
	assert.Equal(t, "127.0.1.5", e.Terminal)
	assert.Contains(t, e.Verdict.Reason, "c2c.example.test")
	e = ev[3]
	assert.Equal(t, "midori", e.Tenant)
	assert.Equal(t, detect.ActionReport, e.Verdict.Action)
	assert.Equal(t, detect.SeveritySucceeded, e.Severity)
}

func TestPolicyNXDOMAINWithoutSinkhole(t *testing.T) {
	f := newFixture(t, func(_ *dnsres.CacheConfig, p *dnsres.PolicyConfig) {
		p.SinkholeA, p.SinkholeAAAA = netip.Addr{}, netip.Addr{}
	})
	r := f.query(t, "127.0.1.5", "udp", q("c2c.example.test.", dns.TypeA))
	assert.Equal(t, dns.RcodeNameError, r.Rcode)
	ev := f.sink.Wait(1, time.Second)
	require.Len(t, ev, 1)
	assert.Equal(t, detect.ActionBlock, ev[0].Verdict.Action)
}

func TestTenantZoneAuthoritative(t *testing.T) {
	f := newFixture(t)
	r := f.query(t, "127.0.2.5", "udp", q("aoba.example.jp.", dns.TypeSOA))
	assert.True(t, r.Authoritative)
	require.Len(t, r.Answer, 1)
	r = f.query(t, "127.0.2.5", "udp", q("nothere.aoba.example.jp.", dns.TypeA))
	assert.True(t, r.Authoritative)
	assert.Equal(t, dns.RcodeNameError, r.Rcode)
	assert.Zero(t, f.up.Queries())
}

func TestMalformedQueries(t *testing.T) {
	f := newFixture(t)
	ok := q("www.example.test.", dns.TypeA)
	ok.Id = 77
	okWire, err := ok.Pack()
	require.NoError(t, err)
	hundred := q("www.example.test.", dns.TypeA)
	for i := 0; i < 99; i++ {
		hundred.Question = append(hundred.Question, hundred.Question[0])
	}
	hundredWire, err := hundred.Pack()
	require.NoError(t, err)
	noQ := append([]byte(nil), okWire[:12]...)
	noQ[5] = 0 // qdcount 0
	loop := append([]byte(nil), okWire[:12]...)
	loop = append(loop, 0xC0, 12, 0, 1, 0, 1) // question name points at itself
	badOpt := qEDNS("www.example.test.", dns.TypeA)
	badOptWire, _ := badOpt.Pack()
	badOptWire[len(badOptWire)-1] = 9 // RDLEN beyond the message
	badVers := qEDNS("www.example.test.", dns.TypeA)
	badVers.Extra[0].(*dns.OPT).SetVersion(1)
	badVersWire, _ := badVers.Pack()

	cases := []struct {
		name  string
		pkt   []byte
		rcode int // -1: no answer expected
	}{
		{"empty", nil, -1},
		{"short header", okWire[:5], -1},
		{"response bit", append([]byte{0, 1, 0x80}, okWire[3:]...), -1},
		{"no question", noQ, dns.RcodeFormatError},
		{"hundred questions", hundredWire, dns.RcodeFormatError},
		{"compression loop", loop, dns.RcodeFormatError},
		{"truncated question", okWire[:len(okWire)-2], dns.RcodeFormatError},
		{"bad OPT length", badOptWire, dns.RcodeFormatError},
		{"EDNS version 1", badVersWire, dns.RcodeBadVers},
		{"opcode notify", append([]byte{0, 1, 0x20}, okWire[3:]...), dns.RcodeNotImplemented},
	}
	conn, err := dialFrom("127.0.1.5", f.srv.Addr())
	require.NoError(t, err)
	defer conn.Close()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := conn.Write(tc.pkt)
			require.NoError(t, err)
			buf := make([]byte, 2048)
			_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, err := conn.Read(buf)
			if tc.rcode < 0 {
				assert.Error(t, err, "no answer expected")
				return
			}
			require.NoError(t, err)
			m := new(dns.Msg)
			require.NoError(t, m.Unpack(buf[:n]))
			assert.Equal(t, tc.rcode, m.Rcode)
		})
	}
	// Still serving.
	r := f.query(t, "127.0.1.5", "udp", q("www.example.test.", dns.TypeA))
	assert.Len(t, r.Answer, 2)
	assert.NotZero(t, f.srv.Stats().Malformed)
}

func TestHugeTCPLengthIsHarmless(t *testing.T) {
	f := newFixture(t)
	c, err := dialTCPFrom("127.0.1.5", f.srv.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte{0xFF, 0xFF, 1, 2, 3})
	require.NoError(t, err)
	c.Close()
	r := f.query(t, "127.0.1.5", "tcp", q("www.example.test.", dns.TypeA))
	assert.Len(t, r.Answer, 2)
	assert.False(t, strings.Contains(r.String(), "TC"))
}

func TestHandlerPanicAnswersServfail(t *testing.T) {
	srv, err := dnsres.NewServer(dnsres.ServerConfig{Addr: "127.0.0.1:0", Directory: testDirectory(t),
		Handler: dnsres.HandlerFunc(func(context.Context, dnsres.ResponseWriter, *dnsres.Request) (int, error) {
			panic("boom")
		})})
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	defer srv.Shutdown(context.Background())
	f := &fixture{srv: srv}
	for i := 0; i < 2; i++ {
		r := f.query(t, "127.0.1.5", "udp", q("www.example.test.", dns.TypeA))
		assert.Equal(t, dns.RcodeServerFailure, r.Rcode)
	}
}

func TestForwarderFallsBackToTCP(t *testing.T) {
	f := newFixture(t)
	r := f.query(t, "127.0.1.5", "tcp", q("huge.example.test.", dns.TypeTXT))
	require.Equal(t, dns.RcodeSuccess, r.Rcode)
	assert.Len(t, r.Answer, 8, "1.6 KB answer: truncated over UDP upstream, fetched again over TCP")
	r = f.query(t, "127.0.1.5", "udp", qEDNS("huge.example.test.", dns.TypeTXT))
	assert.True(t, r.Truncated, "too big for 1232 bytes: TC from the cache")
}

// TestStaleAnswerTimer: RFC 8767's client response timer. The refresh of
// an expired entry is slow (the upstream waits 800 ms); the client gets
// the stale answer after StaleAnswerTimeout (without the timer: the fresh
// answer, late), and the refresh still fills the cache (clients polling
// meanwhile join the refresh and are answered stale at once).
func TestStaleAnswerTimer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		want    string
	}{
		{"timer", 50 * time.Millisecond, "stale"},
		{"no timer", -1, "miss"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(cc *dnsres.CacheConfig, _ *dnsres.PolicyConfig) { cc.StaleAnswerTimeout = tc.timeout })
			r := f.query(t, "127.0.1.5", "udp", q("www.example.test.", dns.TypeA))
			require.Len(t, r.Answer, 2)
			f.clock.Advance(301 * time.Second) // expired (TTL 300), within StaleTTL
			f.up.SetDelay(800 * time.Millisecond)
			r = f.query(t, "127.0.1.5", "udp", q("www.example.test.", dns.TypeA))
			require.Len(t, r.Answer, 2)
			ev := f.sink.Wait(2, time.Second)
			require.Len(t, ev, 2)
			assert.Equal(t, tc.want, label(ev[1], "dns_cache"))
			if tc.want == "stale" {
				assert.LessOrEqual(t, r.Answer[0].Header().Ttl, uint32(30))
			}
			require.Eventually(t, func() bool {
				r := f.query(t, "127.0.1.6", "udp", q("www.example.test.", dns.TypeA))
				return len(r.Answer) == 2 && r.Answer[0].Header().Ttl > 30
			}, 5*time.Second, 50*time.Millisecond, "the refresh fills the cache")
			assert.EqualValues(t, 2, f.up.Queries())
		})
	}
}
