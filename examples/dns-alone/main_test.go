package main

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/dnsres/dnsrestest"
)

const zone = `$ORIGIN example.test.
$TTL 300
@   IN SOA ns1 hostmaster 1 3600 600 86400 60
@   IN NS  ns1
ns1 IN A   127.0.0.1
www IN A   192.0.2.10
`

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// query asks server for name/A from the source address src over UDP.
func query(t *testing.T, server netip.AddrPort, src, name string) *dns.Msg {
	t.Helper()
	c := &dns.Client{Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := c.Exchange(m, server.String())
	require.NoError(t, err)
	return r
}

// TestResolver runs the example in front of a loopback authoritative
// server and queries it with the miekg/dns client as a terminal of the
// tenant and as an outsider.
func TestResolver(t *testing.T) {
	auth := dnsrestest.NewAuthority(t, "127.0.0.1:0", map[string]string{"example.test.": zone})
	var out syncBuf
	r, err := New(Config{
		Addr: "127.0.0.1:0", Network: netip.MustParsePrefix("127.0.1.0/24"),
		Upstreams: []string{auth.Addr.String()}, Block: []string{"c2.example.test"},
		Sinkhole: netip.MustParseAddr("127.0.0.80"), Out: &out,
	})
	require.NoError(t, err)

	for range 2 {
		m := query(t, r.Addr(), "127.0.1.5", "www.example.test.")
		require.Equal(t, dns.RcodeSuccess, m.Rcode)
		require.Len(t, m.Answer, 1)
		assert.Equal(t, "192.0.2.10", m.Answer[0].(*dns.A).A.String())
	}
	assert.Equal(t, int64(1), auth.Queries(), "the second answer comes from the cache")

	m := query(t, r.Addr(), "127.0.1.5", "x.c2.example.test.")
	require.Len(t, m.Answer, 1)
	assert.Equal(t, "127.0.0.80", m.Answer[0].(*dns.A).A.String(), "sinkholed")

	m = query(t, r.Addr(), "127.0.0.1", "www.example.test.")
	assert.Equal(t, dns.RcodeRefused, m.Rcode, "a client in no tenant is refused")

	require.NoError(t, r.Shutdown(context.Background()))
	assert.Equal(t, Counts{Queries: 4, Refused: 1, Blocked: 1, CacheHits: 1}, r.Counts())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4)
	assert.Contains(t, lines[1], "www.example.test. A NOERROR cache=hit verdict=none")
	assert.Contains(t, lines[2], `tenant="demo" client=127.0.1.5 x.c2.example.test. A NOERROR cache= verdict=sinkhole`)
	assert.Contains(t, lines[3], "REFUSED")
}

// TestDemoUpstream checks the -demo-upstream authority the README uses.
func TestDemoUpstream(t *testing.T) {
	addr, stop, err := demoUpstream("example.test")
	require.NoError(t, err)
	defer stop()
	r, err := New(Config{Addr: "127.0.0.1:0", Network: netip.MustParsePrefix("127.0.1.0/24"), Upstreams: []string{addr}})
	require.NoError(t, err)
	defer r.Shutdown(context.Background())
	m := query(t, r.Addr(), "127.0.1.5", "anything.example.test.")
	require.Len(t, m.Answer, 1)
	assert.Equal(t, "192.0.2.10", m.Answer[0].(*dns.A).A.String())
}
