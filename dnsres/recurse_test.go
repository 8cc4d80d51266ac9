package dnsres_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
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
v6         IN NS  ns.v6
ns.v6      IN AAAA ::1
v6g        IN NS  ns6.leaf.test.
slow       IN NS  ns.slow
ns.slow    IN A   127.0.53.4
cyc1       IN NS  ns.cyc2.test.
cyc2       IN NS  ns.cyc1.test.
`

const leafZone = `$ORIGIN leaf.test.
$TTL 300
@      IN SOA ns hostmaster 1 1800 900 604800 60
@      IN NS  ns
ns     IN A   127.0.53.3
ns6    IN AAAA ::1
www    IN A   192.0.2.1
alias  IN CNAME www
ext    IN CNAME www.other.test.
loop1  IN CNAME loop2
loop2  IN CNAME loop1
old    IN DNAME other.test.
intra  IN DNAME leaf.test.
dl1    IN DNAME dl2.leaf.test.
dl2    IN DNAME dl1.leaf.test.
grow   IN DNAME x.grow.leaf.test.
long   IN DNAME ` + longDNAMETarget + `
`

// longDNAMETarget makes names below long.leaf.test. too long once
// substituted.
const longDNAMETarget = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.other.test."

const otherZone = `$ORIGIN other.test.
$TTL 300
@      IN SOA ns.leaf.test. hostmaster 1 1800 900 604800 60
@      IN NS  ns.leaf.test.
www    IN A   192.0.2.2
`

// v6Zone and v6gZone are served only on ::1: v6.test. is delegated
// with AAAA-only glue, v6g.test. to ns6.leaf.test., a glueless name
// server with only an AAAA record.
const v6Zone = `$ORIGIN v6.test.
$TTL 300
@      IN SOA ns hostmaster 1 1800 900 604800 60
@      IN NS  ns
ns     IN AAAA ::1
www    IN A   192.0.2.6
`

const v6gZone = `$ORIGIN v6g.test.
$TTL 300
@      IN SOA ns6.leaf.test. hostmaster 1 1800 900 604800 60
@      IN NS  ns6.leaf.test.
www    IN A   192.0.2.7
`

const slowZone = `$ORIGIN slow.test.
$TTL 300
@      IN SOA ns hostmaster 1 1800 900 604800 60
@      IN NS  ns
ns     IN A   127.0.53.4
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
	h := newHier(t, cfg)
	return h.r, h.root, h.tld, h.leaf
}

// hier is the whole loopback hierarchy: root 127.0.53.1, TLD test.
// 127.0.53.2, leaf (leaf.test., other.test.) 127.0.53.3, slow.test.
// 127.0.53.4 (answers normally until told not to), and v6.test. /
// v6g.test. on ::1 (nil when the host has no IPv6 loopback), all on one
// port.
type hier struct {
	r                     *dnsres.Recursor
	root, tld, leaf, slow *dnsrestest.Authority
	v6                    *dnsrestest.Authority
	port                  int
}

var hierV4 = []string{"127.0.53.1", "127.0.53.2", "127.0.53.3", "127.0.53.4"}

func newHier(t *testing.T, cfg func(*dnsres.RecursorConfig)) *hier {
	t.Helper()
	hasV6 := true
	if c, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
		hasV6 = false
	} else {
		c.Close()
	}
	var port int
	for try := 0; ; try++ {
		pc, err := net.ListenPacket("udp", hierV4[0]+":0")
		require.NoError(t, err)
		port = pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		ok := true
		others := append([]string(nil), hierV4[1:]...)
		if hasV6 {
			others = append(others, "[::1]")
		}
		for _, ip := range others {
			for _, nw := range []string{"udp", "tcp"} {
				addr := ip + ":" + strconv.Itoa(port)
				if nw == "udp" {
					if c, err := net.ListenPacket(nw, addr); err != nil {
						ok = false
					} else {
						c.Close()
					}
				} else if l, err := net.Listen(nw, addr); err != nil {
					ok = false
				} else {
					l.Close()
				}
			}
		}
		if ok || try > 5 {
			break
		}
	}
	p := ":" + strconv.Itoa(port)
	h := &hier{port: port}
	h.root = dnsrestest.NewAuthority(t, "127.0.53.1"+p, map[string]string{".": rootZone})
	h.tld = dnsrestest.NewAuthority(t, "127.0.53.2"+p, map[string]string{"test.": tldZone})
	h.leaf = dnsrestest.NewAuthority(t, "127.0.53.3"+p, map[string]string{"leaf.test.": leafZone, "other.test.": otherZone})
	h.slow = dnsrestest.NewAuthority(t, "127.0.53.4"+p, map[string]string{"slow.test.": slowZone})
	if hasV6 {
		h.v6 = dnsrestest.NewAuthority(t, "[::1]"+p, map[string]string{"v6.test.": v6Zone, "v6g.test.": v6gZone})
	}
	rc := dnsres.RecursorConfig{
		RootHints: []string{"127.0.53.1"}, Port: port, Timeout: time.Second,
		AllowedNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	}
	if cfg != nil {
		cfg(&rc)
	}
	r, err := dnsres.NewRecursor(rc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	h.r = r
	return h
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

// dnameServer makes a synthesise DNAMEs the way an authoritative server
// does (RFC 6672 §3.1): a question below a DNAME's owner is answered with
// the DNAME and the CNAME to the substituted name (none with
// noCNAME). Other questions are answered from the zone.
func dnameServer(a *dnsrestest.Authority, noCNAME bool, dnames ...string) {
	var ds []*dns.DNAME
	for _, s := range dnames {
		rr, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		ds = append(ds, rr.(*dns.DNAME))
	}
	a.SetHook(func(w dns.ResponseWriter, q *dns.Msg) bool {
		name := strings.ToLower(q.Question[0].Name)
		for _, d := range ds {
			owner := strings.ToLower(d.Hdr.Name)
			if name == owner || !dns.IsSubDomain(owner, name) {
				continue
			}
			m := new(dns.Msg)
			m.SetReply(q)
			m.Authoritative = true
			m.Answer = []dns.RR{d}
			target := name[:len(name)-len(owner)] + d.Target
			if len(target) > 254 {
				m.Rcode = dns.RcodeYXDomain
			} else if !noCNAME {
				m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: d.Hdr.Ttl}, Target: target})
			}
			_ = w.WriteMsg(m)
			return true
		}
		return false
	})
}

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		h := rr.Header()
		s := strings.ToLower(h.Name) + " " + dns.TypeToString[h.Rrtype] + " "
		switch v := rr.(type) {
		case *dns.DNAME:
			s += v.Target
		case *dns.CNAME:
			s += v.Target
		case *dns.A:
			s += v.A.String()
		default:
			s += "?"
		}
		out = append(out, s)
	}
	return out
}

func TestRecursorDNAME(t *testing.T) {
	long := longDNAMETarget
	require.Len(t, long, 2*64+len("other.test."))
	dnames := []string{
		"old.leaf.test. 300 IN DNAME other.test.",
		"intra.leaf.test. 300 IN DNAME leaf.test.",
		"dl1.leaf.test. 300 IN DNAME dl2.leaf.test.",
		"dl2.leaf.test. 300 IN DNAME dl1.leaf.test.",
		"grow.leaf.test. 300 IN DNAME x.grow.leaf.test.",
		"long.leaf.test. 300 IN DNAME " + long,
	}
	cases := []struct {
		name    string
		qname   string
		noCNAME bool // the server sends the DNAME alone (RFC 2672 servers)
		rcode   int
		answer  []string
	}{
		{"to another zone", "www.old.leaf.test.", false, dns.RcodeSuccess, []string{
			"old.leaf.test. DNAME other.test.", "www.old.leaf.test. CNAME www.other.test.", "www.other.test. A 192.0.2.2"}},
		{"mixed case question", "WWW.Old.leaf.test.", false, dns.RcodeSuccess, []string{
			"old.leaf.test. DNAME other.test.", "www.old.leaf.test. CNAME www.other.test.", "www.other.test. A 192.0.2.2"}},
		{"dname alone: cname synthesised", "www.old.leaf.test.", true, dns.RcodeSuccess, []string{
			"old.leaf.test. DNAME other.test.", "www.old.leaf.test. CNAME www.other.test.", "www.other.test. A 192.0.2.2"}},
		{"within the zone, then a cname", "alias.intra.leaf.test.", false, dns.RcodeSuccess, []string{
			"intra.leaf.test. DNAME leaf.test.", "alias.intra.leaf.test. CNAME alias.leaf.test.",
			"alias.leaf.test. CNAME www.leaf.test.", "www.leaf.test. A 192.0.2.1"}},
		{"deep name, qname minimised on the way", "a.b.www.old.leaf.test.", false, dns.RcodeNameError, []string{
			"old.leaf.test. DNAME other.test.", "a.b.www.old.leaf.test. CNAME a.b.www.other.test."}},
		{"target does not exist", "nope.old.leaf.test.", false, dns.RcodeNameError, []string{
			"old.leaf.test. DNAME other.test.", "nope.old.leaf.test. CNAME nope.other.test."}},
		{"loop", "x.dl1.leaf.test.", false, dns.RcodeServerFailure, nil},
		{"name grows until the chain limit", "y.grow.leaf.test.", false, dns.RcodeServerFailure, nil},
		{"substituted name too long: YXDOMAIN", strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + ".long.leaf.test.", false, dns.RcodeYXDomain, nil},
	}
	for _, tc := range cases {
		for _, qmin := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/qmin=%v", tc.name, qmin), func(t *testing.T) {
				r, _, _, leaf := hierarchyFull(t, func(c *dnsres.RecursorConfig) { c.NoQNAMEMinimisation = !qmin })
				dnameServer(leaf, tc.noCNAME, dnames...)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				m, err := r.Resolve(ctx, dnsres.Question{Name: tc.qname, Type: dns.TypeA, Class: dns.ClassINET})
				require.NoError(t, err)
				assert.Equal(t, dns.RcodeToString[tc.rcode], dns.RcodeToString[m.Rcode])
				if tc.answer != nil {
					assert.Equal(t, tc.answer, rrStrings(m.Answer))
				}
				assert.Less(t, r.Queries(), uint64(dnsres.DefaultRecursorMaxQueries), "bounded, no runaway")
			})
		}
	}
}

// TestServerAnswersDNAME: the client gets the DNAME, the synthesised CNAME
// and the final record, as Unbound answers, and again from the cache.
func TestServerAnswersDNAME(t *testing.T) {
	rec, leaf := hierarchy(t)
	dnameServer(leaf, false, "old.leaf.test. 300 IN DNAME other.test.")
	cache, err := dnsres.NewCache(dnsres.CacheConfig{Resolver: rec})
	require.NoError(t, err)
	defer cache.Close()
	srv, err := dnsres.NewServer(dnsres.ServerConfig{Addr: "127.0.0.1:0", Directory: testDirectory(t), Handler: cache, Sink: new(dnsrestest.Sink)})
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	defer srv.Shutdown(context.Background())
	f := &fixture{srv: srv}
	for i := 0; i < 2; i++ {
		r := f.query(t, "127.0.1.5", "udp", q("www.old.leaf.test.", dns.TypeA))
		require.Equal(t, dns.RcodeSuccess, r.Rcode)
		assert.Equal(t, []string{"old.leaf.test. DNAME other.test.", "www.old.leaf.test. CNAME www.other.test.", "www.other.test. A 192.0.2.2"},
			rrStrings(r.Answer), "query %d", i)
	}
	assert.Equal(t, uint64(1), cache.Stats().Hits)
}

// TestRecursorPoisoning: answers that a resolver must not believe.
func TestRecursorPoisoning(t *testing.T) {
	t.Run("out-of-bailiwick DNAME", func(t *testing.T) {
		r, _, _, leaf := hierarchyFull(t, nil)
		// The leaf (authoritative for leaf.test.) claims a DNAME for all
		// of test.: it must be ignored.
		leaf.SetHook(func(w dns.ResponseWriter, q *dns.Msg) bool {
			if q.Question[0].Name != "www.leaf.test." {
				return false
			}
			m := new(dns.Msg)
			m.SetReply(q)
			m.Authoritative = true
			d, _ := dns.NewRR("test. 300 IN DNAME evil.example.")
			a, _ := dns.NewRR("www.leaf.test. 300 IN A 192.0.2.1")
			m.Answer = []dns.RR{d, a}
			_ = w.WriteMsg(m)
			return true
		})
		m := resolve(t, r, "www.leaf.test.", dns.TypeA)
		assert.Equal(t, []string{"www.leaf.test. A 192.0.2.1"}, rrStrings(m.Answer))
	})
	t.Run("forged CNAME beside a DNAME", func(t *testing.T) {
		r, _, _, leaf := hierarchyFull(t, nil)
		// The CNAME does not follow from the DNAME: the resolver
		// synthesises its own and follows that.
		leaf.SetHook(func(w dns.ResponseWriter, q *dns.Msg) bool {
			if q.Question[0].Name != "www.old.leaf.test." {
				return false
			}
			m := new(dns.Msg)
			m.SetReply(q)
			m.Authoritative = true
			d, _ := dns.NewRR("old.leaf.test. 300 IN DNAME other.test.")
			c, _ := dns.NewRR("www.old.leaf.test. 300 IN CNAME www.leaf.test.")
			m.Answer = []dns.RR{d, c}
			_ = w.WriteMsg(m)
			return true
		})
		m := resolve(t, r, "www.old.leaf.test.", dns.TypeA)
		assert.Equal(t, []string{"old.leaf.test. DNAME other.test.", "www.old.leaf.test. CNAME www.other.test.", "www.other.test. A 192.0.2.2"}, rrStrings(m.Answer))
	})
	t.Run("out-of-bailiwick glue", func(t *testing.T) {
		h := newHier(t, nil)
		// The TLD refers leaf.test. to a name server outside its
		// bailiwick with "glue" pointing at the attacker's server
		// (127.0.53.4): the glue is dropped, the name server is looked up
		// from the root (it does not exist) and the attacker is never asked.
		h.tld.SetHook(func(w dns.ResponseWriter, q *dns.Msg) bool {
			if !dns.IsSubDomain("leaf.test.", strings.ToLower(q.Question[0].Name)) {
				return false
			}
			m := new(dns.Msg)
			m.SetReply(q)
			ns, _ := dns.NewRR("leaf.test. 86400 IN NS ns.evil.example.")
			glue, _ := dns.NewRR("ns.evil.example. 86400 IN A 127.0.53.4")
			m.Ns = []dns.RR{ns}
			m.Extra = []dns.RR{glue}
			_ = w.WriteMsg(m)
			return true
		})
		_, err := h.r.Resolve(context.Background(), dnsres.Question{Name: "www.leaf.test.", Type: dns.TypeA, Class: dns.ClassINET})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no usable name server for leaf.test.")
		assert.Zero(t, h.slow.Queries(), "the attacker's address from out-of-bailiwick glue was never used")
	})
	t.Run("upward referral", func(t *testing.T) {
		r, _, _, leaf := hierarchyFull(t, nil)
		// The leaf answers with a referral to test. pointing at itself:
		// a zone cannot delegate its parent; the answer is NODATA.
		leaf.SetHook(func(w dns.ResponseWriter, q *dns.Msg) bool {
			m := new(dns.Msg)
			m.SetReply(q)
			ns, _ := dns.NewRR("test. 86400 IN NS ns.leaf.test.")
			m.Ns = []dns.RR{ns}
			_ = w.WriteMsg(m)
			return true
		})
		m := resolve(t, r, "www.leaf.test.", dns.TypeA)
		assert.Empty(t, m.Answer)
		assert.Equal(t, dns.RcodeSuccess, m.Rcode)
	})
	for _, sockets := range []int{0, -1} {
		t.Run("spoofed replies, sockets "+strconv.Itoa(sockets), func(t *testing.T) {
			r, _, _, leaf := hierarchyFull(t, func(c *dnsres.RecursorConfig) { c.Sockets = sockets })
			// Before the real answer the leaf sends a reply with a wrong ID,
			// one for another question, and one with the right ID and
			// question from another port of the leaf's address.
			var spoofed sync.WaitGroup
			leaf.SetHook(func(w dns.ResponseWriter, q *dns.Msg) bool {
				if q.Question[0].Name != "www.leaf.test." {
					return false
				}
				rr, _ := dns.NewRR("www.leaf.test. 300 IN A 203.0.113.66")
				bad := new(dns.Msg)
				bad.SetReply(q)
				bad.Authoritative = true
				bad.Id = q.Id ^ 0x5a5a
				bad.Answer = []dns.RR{rr}
				_ = w.WriteMsg(bad)
				other := new(dns.Msg)
				other.SetReply(q)
				other.Authoritative = true
				other.Question[0].Name = "www.other.test."
				other.Answer = []dns.RR{rr}
				_ = w.WriteMsg(other)
				forged := new(dns.Msg)
				forged.SetReply(q)
				forged.Authoritative = true
				forged.Answer = []dns.RR{rr}
				if b, err := forged.Pack(); err == nil {
					if c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.53.3")}, w.RemoteAddr().(*net.UDPAddr)); err == nil {
						_, _ = c.Write(b)
						c.Close()
						spoofed.Add(1)
						defer spoofed.Done()
					}
				}
				time.Sleep(20 * time.Millisecond) // let the forgeries arrive first
				return false
			})
			m := resolve(t, r, "www.leaf.test.", dns.TypeA)
			assert.Equal(t, []string{"www.leaf.test. A 192.0.2.1"}, rrStrings(m.Answer))
			spoofed.Wait()
		})
	}
}

func TestRecursorIPv6AndGluelessNS(t *testing.T) {
	h := newHier(t, nil)
	if h.v6 == nil {
		t.Skip("no IPv6 loopback (::1) on this host")
	}
	t.Run("AAAA-only glue", func(t *testing.T) {
		m := resolve(t, h.r, "www.v6.test.", dns.TypeA)
		assert.Equal(t, []string{"www.v6.test. A 192.0.2.6"}, rrStrings(m.Answer))
	})
	t.Run("glueless name server with only an AAAA record", func(t *testing.T) {
		before := h.v6.Queries()
		m := resolve(t, h.r, "www.v6g.test.", dns.TypeA)
		assert.Equal(t, []string{"www.v6g.test. A 192.0.2.7"}, rrStrings(m.Answer))
		assert.Greater(t, h.v6.Queries(), before, "asked over IPv6")
	})
	t.Run("glueless loop", func(t *testing.T) {
		before := h.r.Queries()
		_, err := h.r.Resolve(context.Background(), dnsres.Question{Name: "www.cyc1.test.", Type: dns.TypeA, Class: dns.ClassINET})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "glueless loop")
		assert.Less(t, h.r.Queries()-before, uint64(dnsres.DefaultRecursorMaxQueries), "stopped by the loop check, not the query budget")
	})
}

// TestQNAMEMinimisationRemembersNoCut: a minimised question answered
// authoritatively (no zone cut there) is not asked again until its TTL
// ends, so a miss below a known name costs one query, as with Unbound.
func TestQNAMEMinimisationRemembersNoCut(t *testing.T) {
	clock := newClock()
	r, _, _, leaf := hierarchyFull(t, func(c *dnsres.RecursorConfig) { c.Now = clock.Now })
	leafQ := recordQueries(leaf)
	m := resolve(t, r, "a.www.leaf.test.", dns.TypeA)
	assert.Equal(t, dns.RcodeNameError, m.Rcode)
	assert.Equal(t, []string{"www.leaf.test. A", "a.www.leaf.test. A"}, leafQ())
	m = resolve(t, r, "b.www.leaf.test.", dns.TypeA)
	assert.Equal(t, dns.RcodeNameError, m.Rcode)
	assert.Equal(t, []string{"www.leaf.test. A", "a.www.leaf.test. A", "b.www.leaf.test. A"}, leafQ(), "www.leaf.test. not asked again")
	clock.Advance(301 * time.Second) // www's TTL is 300 s
	resolve(t, r, "c.www.leaf.test.", dns.TypeA)
	assert.Equal(t, []string{"www.leaf.test. A", "a.www.leaf.test. A", "b.www.leaf.test. A", "www.leaf.test. A", "c.www.leaf.test. A"}, leafQ())
}
