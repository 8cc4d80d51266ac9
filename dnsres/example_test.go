package dnsres_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/dnsres"
	"github.com/jichitai/seccloud/tenant"
)

// A resolver for one tenant, with a threat-intelligence list, a tenant
// zone and a cache in front of a (here: fake) upstream, queried over UDP.
func Example() {
	snap, _ := tenant.NewSnapshot([]tenant.Tenant{{ID: "aoba", Name: "あおば市",
		Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Policy: tenant.Policy{EgressOptional: true}}}, tenant.Options{})
	upstream := dnsres.ResolverFunc(func(_ context.Context, q dnsres.Question) (*dns.Msg, error) {
		m := new(dns.Msg)
		rr, _ := dns.NewRR(q.Name + " 300 IN A 192.0.2.10")
		m.Answer = []dns.RR{rr}
		return m, nil
	})
	cache, _ := dnsres.NewCache(dnsres.CacheConfig{Resolver: upstream})
	defer cache.Close()
	iset, _ := intel.FromDomains("c2c.example")
	policy, _ := dnsres.NewPolicy(dnsres.PolicyConfig{Intel: intel.NewLive(iset), SinkholeA: netip.MustParseAddr("127.0.0.80")})
	zones := dnsres.NewZones(dnsres.DefaultZone("aoba.example.jp", "ns.aoba.example.jp"))
	events := make(chan detect.Event, 10)
	srv, _ := dnsres.NewServer(dnsres.ServerConfig{
		Addr: "127.0.0.1:0", Directory: tenant.NewLive(snap),
		Sink:    detect.SinkFunc(func(e detect.Event) { events <- e }),
		Handler: dnsres.Chain(cache, policy.Middleware, zones.Middleware),
	})
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown(context.Background())

	c := &dns.Client{Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 5)}}}
	for _, name := range []string{"www.example.", "www.example.", "x.c2c.example.", "aoba.example.jp."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, _, err := c.Exchange(m, srv.Addr().String())
		if err != nil {
			fmt.Println(err)
			return
		}
		e := <-events
		cacheLabel, _ := e.Label("dns_cache")
		fmt.Println(name, dns.RcodeToString[r.Rcode], len(r.Answer), "aa:", r.Authoritative, "cache:", cacheLabel, "verdict:", e.Verdict.Action)
	}
	// Output:
	// www.example. NOERROR 1 aa: false cache: miss verdict: none
	// www.example. NOERROR 1 aa: false cache: hit verdict: none
	// x.c2c.example. NOERROR 1 aa: false cache:  verdict: sinkhole
	// aoba.example.jp. NOERROR 0 aa: true cache:  verdict: none
}

// A response-policy zone: QNAME triggers and their actions.
func ExampleParseRPZ() {
	z, err := dnsres.ParseRPZ(strings.NewReader(`
bad.example      CNAME .
*.bad.example    CNAME .
ok.bad.example   CNAME rpz-passthru.
warn.example     A     192.0.2.80
`), "rpz.local", "feed.rpz")
	if err != nil {
		panic(err)
	}
	var p dnsres.RPZ
	p.Set(z)
	for _, n := range []string{"bad.example", "x.bad.example", "ok.bad.example", "warn.example", "good.example"} {
		if r := p.Match(n); r != nil {
			fmt.Println(n, r.Action)
		} else {
			fmt.Println(n, "no rule")
		}
	}
	// Output:
	// bad.example nxdomain
	// x.bad.example nxdomain
	// ok.bad.example passthru
	// warn.example local-data
	// good.example no rule
}
