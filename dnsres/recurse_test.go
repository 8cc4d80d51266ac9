package dnsres_test

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/dnsres"
	"github.com/jichitai/seccloud/dnsres/dnsrestest"
)

const rootZone = `$ORIGIN .
$TTL 86400
.            IN SOA a.root.test. hostmaster.root.test. 1 1800 900 604800 86400
.            IN NS  a.root.test.
test.        IN NS  ns.tld.test.
ns.tld.test. IN A   127.0.53.2
`

const tldZone = `$ORIGIN test.
$TTL 86400
@          IN SOA ns.tld hostmaster 1 1800 900 604800 3600
@          IN NS  ns.tld
ns.tld     IN A   127.0.53.2
a.root     IN A   127.0.53.1
leaf       IN NS  ns.leaf
ns.leaf    IN A   127.0.53.3
other      IN NS  ns.leaf.test.
`

const leafZone = `$ORIGIN leaf.test.
$TTL 300
@      IN SOA ns hostmaster 1 1800 900 604800 60
@      IN NS  ns
ns     IN A   127.0.53.3
www    IN A   192.0.2.1
alias  IN CNAME www
ext    IN CNAME www.other.test.
loop1  IN CNAME loop2
loop2  IN CNAME loop1
`

const otherZone = `$ORIGIN other.test.
$TTL 300
@      IN SOA ns.leaf.test. hostmaster 1 1800 900 604800 60
@      IN NS  ns.leaf.test.
www    IN A   192.0.2.2
`

// hierarchy starts a root, a TLD and a leaf server on 127.0.53.1-3, all
// on one port, and returns a Recursor pointed at the root.
func hierarchy(t *testing.T) (*dnsres.Recursor, *dnsrestest.Authority) {
	t.Helper()
	r, _, _, leaf := hierarchyFull(t, nil)
	return r, leaf
}

// hierarchyFull is hierarchy returning the root, TLD and leaf servers,
// with cfg adjusting the Recursor's configuration.
func hierarchyFull(t *testing.T, cfg func(*dnsres.RecursorConfig)) (r *dnsres.Recursor, root, tld, leaf *dnsrestest.Authority) {
	t.Helper()
	var port int
	for try := 0; ; try++ {
		pc, err := net.ListenPacket("udp", "127.0.53.1:0")
		require.NoError(t, err)
		port = pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		ok := true
		for _, ip := range []string{"127.0.53.2", "127.0.53.3"} {
			if c, err := net.ListenPacket("udp", ip+":"+strconv.Itoa(port)); err != nil {
				ok = false
			} else {
				c.Close()
			}
		}
		if ok || try > 5 {
			break
		}
	}
	p := ":" + strconv.Itoa(port)
	root = dnsrestest.NewAuthority(t, "127.0.53.1"+p, map[string]string{".": rootZone})
	tld = dnsrestest.NewAuthority(t, "127.0.53.2"+p, map[string]string{"test.": tldZone})
	leaf = dnsrestest.NewAuthority(t, "127.0.53.3"+p, map[string]string{"leaf.test.": leafZone, "other.test.": otherZone})
	rc := dnsres.RecursorConfig{
		RootHints: []string{"127.0.53.1"}, Port: port, Timeout: time.Second,
		AllowedNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}
	if cfg != nil {
		cfg(&rc)
	}
	r, err := dnsres.NewRecursor(rc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r, root, tld, leaf
}

// recordQueries makes a records the question names it is asked.
func recordQueries(a *dnsrestest.Authority) func() []string {
	var mu sync.Mutex
	var names []string
	a.SetHook(func(_ dns.ResponseWriter, q *dns.Msg) bool {
		mu.Lock()
		names = append(names, q.Question[0].Name+" "+dns.TypeToString[q.Question[0].Qtype])
		mu.Unlock()
		return false
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), names...)
	}
}

func TestQNAMEMinimisationAndDelegationCache(t *testing.T) {
	clock := newClock()
	r, root, tld, leaf := hierarchyFull(t, func(c *dnsres.RecursorConfig) { c.Now = clock.Now })
	rootQ, tldQ, leafQ := recordQueries(root), recordQueries(tld), recordQueries(leaf)
	m := resolve(t, r, "a.b.www.leaf.test.", dns.TypeMX)
	assert.Equal(t, dns.RcodeNameError, m.Rcode)
	assert.Equal(t, []string{"test. A"}, rootQ(), "the root sees only the TLD label")
	assert.Equal(t, []string{"leaf.test. A"}, tldQ(), "the TLD sees one label more")
	assert.Equal(t, []string{"www.leaf.test. A", "b.www.leaf.test. A"}, leafQ(),
		"labels added one at a time; NXDOMAIN for b.www ends it (RFC 8020)")

	// The delegations are cached: the next name of the zone goes straight to the leaf.
	n := r.Queries()
	m = resolve(t, r, "www.leaf.test.", dns.TypeA)
	require.Len(t, m.Answer, 1)
	assert.Equal(t, n+1, r.Queries())
	assert.Len(t, rootQ(), 1)
	assert.Len(t, tldQ(), 1)

	// After the NS TTL (1 day in the TLD zone) the walk starts at the root again.
	clock.Advance(24*time.Hour + time.Second)
	resolve(t, r, "www.leaf.test.", dns.TypeA)
	assert.Len(t, rootQ(), 2)

	// Without minimisation the full name goes to every server.
	r2, root2, _, _ := hierarchyFull(t, func(c *dnsres.RecursorConfig) { c.NoQNAMEMinimisation = true; c.MaxDelegations = -1 })
	root2Q := recordQueries(root2)
	resolve(t, r2, "www.leaf.test.", dns.TypeA)
	resolve(t, r2, "www.leaf.test.", dns.TypeA)
	assert.Equal(t, []string{"www.leaf.test. A", "www.leaf.test. A"}, root2Q(), "no minimisation, no delegation cache")
}

func TestRecursorForgetsLameCachedDelegation(t *testing.T) {
	r, _, _, leaf := hierarchyFull(t, nil)
	resolve(t, r, "www.leaf.test.", dns.TypeA)
	// The leaf turns lame for one query: the cached delegation is dropped
	// and the walk restarts at the root (which refers to the same leaf).
	var once sync.Once
	leaf.SetHook(func(w dns.ResponseWriter, q *dns.Msg) bool {
		lame := false
		once.Do(func() { lame = true })
		if !lame {
			return false
		}
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeServerFailure)
		_ = w.WriteMsg(m)
		return true
	})
	m := resolve(t, r, "alias.leaf.test.", dns.TypeA)
	require.Len(t, m.Answer, 2)
}

func resolve(t *testing.T, r *dnsres.Recursor, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m, err := r.Resolve(context.Background(), dnsres.Question{Name: name, Type: qtype, Class: dns.ClassINET})
	require.NoError(t, err)
	return m
}

func TestRecursion(t *testing.T) {
	r, leaf := hierarchy(t)
	cases := []struct {
		name   string
		qname  string
		rcode  int
		answer []string // last record's data
		n      int
	}{
		{"referrals and glue", "www.leaf.test.", dns.RcodeSuccess, []string{"192.0.2.1"}, 1},
		{"cname in zone", "alias.leaf.test.", dns.RcodeSuccess, []string{"192.0.2.1"}, 2},
		{"cname to another zone, glueless NS", "ext.leaf.test.", dns.RcodeSuccess, []string{"192.0.2.2"}, 2},
		{"nxdomain", "nope.leaf.test.", dns.RcodeNameError, nil, 0},
		{"cname loop", "loop1.leaf.test.", dns.RcodeServerFailure, nil, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := resolve(t, r, tc.qname, dns.TypeA)
			assert.Equal(t, tc.rcode, m.Rcode)
			if tc.n >= 0 {
				require.Len(t, m.Answer, tc.n)
			}
			if len(tc.answer) > 0 {
				assert.Equal(t, tc.answer[0], m.Answer[len(m.Answer)-1].(*dns.A).A.String())
			}
		})
	}
	m := resolve(t, r, "www.leaf.test.", dns.TypeMX)
	assert.Equal(t, dns.RcodeSuccess, m.Rcode)
	assert.Empty(t, m.Answer)
	assert.Len(t, m.Ns, 1, "NODATA with the SOA")

	// Poisoning: the leaf adds out-of-bailiwick records; they are dropped.
	leaf.SetHook(func(w dns.ResponseWriter, q *dns.Msg) bool {
		if q.Question[0].Name != "www.leaf.test." {
			return false
		}
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		a1, _ := dns.NewRR("www.leaf.test. 300 IN A 192.0.2.1")
		bad, _ := dns.NewRR("www.bank.test. 300 IN A 203.0.113.66")
		badNS, _ := dns.NewRR("test. 300 IN NS evil.example.")
		m.Answer = []dns.RR{bad, a1}
		m.Ns = []dns.RR{badNS}
		_ = w.WriteMsg(m)
		return true
	})
	m = resolve(t, r, "www.leaf.test.", dns.TypeA)
	require.Len(t, m.Answer, 1)
	assert.Equal(t, "www.leaf.test.", m.Answer[0].Header().Name)
	assert.Empty(t, m.Ns)
}

func TestRecursorRefusesUnlistedNetworks(t *testing.T) {
	r, err := dnsres.NewRecursor(dnsres.RecursorConfig{RootHints: []string{"192.0.2.1"},
		AllowedNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	require.NoError(t, err)
	defer r.Close()
	_, err = r.Resolve(context.Background(), dnsres.Question{Name: "example.", Type: dns.TypeA, Class: dns.ClassINET})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not in AllowedNets")
}

func TestSpoofedForwarderRepliesIgnored(t *testing.T) {
	f := newFixture(t)
	// The upstream first sends a reply with a wrong ID, then one for
	// another question, then a forged one from another port, then the
	// real one.
	f.up.SetHook(func(w dns.ResponseWriter, q *dns.Msg) bool {
		bad := new(dns.Msg)
		bad.SetReply(q)
		bad.Id = q.Id + 1
		rr, _ := dns.NewRR(q.Question[0].Name + " 300 IN A 203.0.113.66")
		bad.Answer = []dns.RR{rr}
		_ = w.WriteMsg(bad)
		other := new(dns.Msg)
		other.SetReply(q)
		other.Question[0].Name = "other.example.test."
		other.Answer = []dns.RR{rr}
		_ = w.WriteMsg(other)
		// The right ID and question, but from another port: a spoofer
		// that guessed the ID and the pool socket's port but not the
		// upstream's address and port.
		forged := new(dns.Msg)
		forged.SetReply(q)
		forged.Answer = []dns.RR{rr}
		if b, err := forged.Pack(); err == nil {
			if c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")}, w.RemoteAddr().(*net.UDPAddr)); err == nil {
				_, _ = c.Write(b)
				c.Close()
			}
		}
		return false
	})
	r := f.query(t, "127.0.1.5", "udp", q("www.example.test.", dns.TypeA))
	require.Len(t, r.Answer, 2)
	for _, rr := range r.Answer {
		assert.NotEqual(t, "203.0.113.66", rr.(*dns.A).A.String())
	}
}

// TestServerRecursesThroughHierarchy is the acceptance path: a tenant's
// terminal resolves a name through root, TLD and leaf, and the second
// query is a cache hit.
func TestServerRecursesThroughHierarchy(t *testing.T) {
	rec, leaf := hierarchy(t)
	cache, err := dnsres.NewCache(dnsres.CacheConfig{Resolver: rec})
	require.NoError(t, err)
	defer cache.Close()
	sink := new(dnsrestest.Sink)
	srv, err := dnsres.NewServer(dnsres.ServerConfig{Addr: "127.0.0.1:0", Directory: testDirectory(t), Handler: cache, Sink: sink})
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	defer srv.Shutdown(context.Background())
	f := &fixture{srv: srv}
	for i := 0; i < 2; i++ {
		r := f.query(t, "127.0.1.5", "udp", q("alias.leaf.test.", dns.TypeA))
		require.Equal(t, dns.RcodeSuccess, r.Rcode)
		require.Len(t, r.Answer, 2)
	}
	ev := sink.Wait(2, time.Second)
	require.Len(t, ev, 2)
	assert.Equal(t, "miss", label(ev[0], "dns_cache"))
	assert.Equal(t, "hit", label(ev[1], "dns_cache"))
	assert.EqualValues(t, 1, leaf.Queries(), "one leaf query: its answer holds the whole in-zone chain; the hit asks nobody")
}
