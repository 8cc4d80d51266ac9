package app

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/dnsres/dnsrestest"
)

// TestDNSPolicyKeys drives dns.sinkhole_a, dns.rpz and dns.detection
// through the running appliance with a real client.
func TestDNSPolicyKeys(t *testing.T) {
	auth := dnsrestest.NewAuthority(t, "127.0.0.1:0", map[string]string{
		"example.test.": "$TTL 300\n@ IN SOA ns h 1 3600 600 86400 300\n@ IN NS ns\nns IN A 127.0.0.53\nwww IN A 192.0.2.10\n",
	})
	own := dnsrestest.NewAuthority(t, "127.0.0.1:0", map[string]string{
		"example.test.": "$TTL 300\n@ IN SOA ns h 1 3600 600 86400 300\n@ IN NS ns\nns IN A 127.0.0.53\nwww IN A 198.51.100.1\n",
	})
	dir := t.TempDir()
	rpz := filepath.Join(dir, "block.rpz")
	require.NoError(t, os.WriteFile(rpz, []byte("blocked.example.test CNAME .\n"), 0o600))
	intel := filepath.Join(dir, "cc.txt")
	require.NoError(t, os.WriteFile(intel, []byte("cc.example.test\nsinkholed.example.test\n"), 0o600))
	a, _ := runApp(t, fmt.Sprintf(`version: 1
data_dir: %s
listen: {console: "127.0.0.1:0", dns: "127.0.0.1:0"}
functions: {mail: false, waf: false, proxy: false}
dns:
  upstreams: ["%s"]
  sinkhole_a: 127.0.0.200
  rpz: [%s]
  detection: {block: true}
  tenant_lists:
    - {tenant: aoba, allow: [cc.example.test], deny: [www.example.test]}
  tenant_upstreams:
    - {tenant: midori, upstreams: ["%s"]}
intel: {domains: [%s]}
tenants:
  - id: aoba
    name: あおば市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
  - id: midori
    name: みどり町
    networks: [127.0.2.0/24]
    egress_addr: 127.0.0.1
`, filepath.Join(dir, "data"), auth.Addr, rpz, own.Addr, intel))
	d := startedService[*dnsService](t, a)
	askFrom := func(src, name string) *dns.Msg {
		c := &dns.Client{Net: "udp", Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}, Timeout: 5 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, _, err := c.Exchange(m, d.srv.Addr().String())
		require.NoError(t, err)
		return r
	}
	c := &dns.Client{Net: "udp", Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP("127.0.1.5")}}, Timeout: 5 * time.Second}
	ask := func(name string) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, _, err := c.Exchange(m, d.srv.Addr().String())
		require.NoError(t, err)
		return r
	}
	r := ask("www.example.test.")
	require.Len(t, r.Answer, 1)
	assert.Equal(t, "127.0.0.200", r.Answer[0].(*dns.A).A.String(), "denied for the tenant: sinkholed to dns.sinkhole_a")
	assert.Equal(t, dns.RcodeNameError, ask("blocked.example.test.").Rcode, "RPZ NXDOMAIN")
	r = ask("c2.cc.example.test.")
	assert.Equal(t, dns.RcodeNameError, r.Rcode, "allowed for the tenant: resolved (the authority has no such name)")
	assert.Empty(t, r.Answer)
	r = ask("sinkholed.example.test.")
	require.Len(t, r.Answer, 1)
	assert.Equal(t, "127.0.0.200", r.Answer[0].(*dns.A).A.String(), "intel list → dns.sinkhole_a")
	assert.Equal(t, dns.RcodeNameError, ask("xjwqpzkvbrtfhq.com.").Rcode, "DGA-like name blocked")
	r = askFrom("127.0.2.9", "www.example.test.")
	require.Len(t, r.Answer, 1)
	assert.Equal(t, "198.51.100.1", r.Answer[0].(*dns.A).A.String(), "midori: dns.tenant_upstreams")
}

// TestDNSFetchesPerServer: dns.fetches_per_server reaches the recursor. A
// root server that never answers holds the first query; with a limit of
// one, a second query that needs the same server fails at once (SERVFAIL)
// while the first is still waiting.
func TestDNSFetchesPerServer(t *testing.T) {
	hole, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer hole.Close()
	got := make(chan struct{}, 16)
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := hole.ReadFrom(buf); err != nil {
				return
			}
			got <- struct{}{}
		}
	}()
	dir := t.TempDir()
	a, _ := runApp(t, fmt.Sprintf(`version: 1
data_dir: %s
listen: {console: "127.0.0.1:0", dns: "127.0.0.1:0"}
functions: {mail: false, waf: false, proxy: false}
dns:
  root_hints: ["%s"]
  fetches_per_server: 1
tenants:
  - id: aoba
    name: あおば市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
`, filepath.Join(dir, "data"), hole.LocalAddr().String()))
	d := startedService[*dnsService](t, a)
	ask := func(name string) (*dns.Msg, error) {
		c := &dns.Client{Net: "udp", Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP("127.0.1.5")}}, Timeout: 20 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, _, err := c.Exchange(m, d.srv.Addr().String())
		return r, err
	}
	var firstDone atomic.Bool
	go func() {
		_, _ = ask("one.example.")
		firstDone.Store(true)
	}()
	select {
	case <-got: // the first query is at the silent root server
	case <-time.After(20 * time.Second):
		t.Fatal("the recursor never asked the root hint")
	}
	r, err := ask("two.example.")
	require.NoError(t, err)
	assert.Equal(t, dns.RcodeServerFailure, r.Rcode)
	assert.False(t, firstDone.Load(), "the second query failed at the limit, not after the first timed out")
}
