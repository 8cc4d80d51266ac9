package dnsres

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/tenant"
)

// fuzzWriter is a baseWriter that packs nothing on the network.
type fuzzWriter struct {
	s    *Server
	r    *Request
	done bool
	out  []byte
}

func (w *fuzzWriter) answered() bool { return w.done }
func (w *fuzzWriter) send(b []byte) error {
	w.done = true
	w.out = append(w.out[:0], b...)
	return nil
}
func (w *fuzzWriter) WriteMsg(m *dns.Msg) error {
	b, err := w.s.pack(w.r, m, nil, false)
	if err != nil {
		return err
	}
	w.s.logQuery(w.r, b, m)
	return w.send(b)
}
func (w *fuzzWriter) WriteWire(b []byte) error {
	w.s.logQuery(w.r, b, nil)
	return w.send(b)
}
func (w *fuzzWriter) Detach(r *Request) ResponseWriter { return &fuzzWriter{s: w.s, r: r} }

// FuzzServe drives the whole request path — parsing, tenant lookup,
// policy (intel, RPZ), zones, detector (blocking, low thresholds), cache
// hit and miss — with arbitrary packets. It must
// never panic, and every answer must parse and carry the query's ID.
func FuzzServe(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	snap, err := tenant.NewSnapshot([]tenant.Tenant{{ID: "a", Name: "A", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
		Policy: tenant.Policy{EgressOptional: true}}}, tenant.Options{})
	if err != nil {
		f.Fatal(err)
	}
	res := ResolverFunc(func(_ context.Context, q Question) (*dns.Msg, error) {
		m := new(dns.Msg)
		if q.Type == dns.TypeA {
			rr, _ := dns.NewRR(q.Name + " 60 IN A 192.0.2.1")
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
			m.Ns = append(m.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60}, Ns: "a.", Mbox: "b.", Minttl: 30})
		}
		return m, nil
	})
	cache, _ := NewCache(CacheConfig{Resolver: res})
	f.Cleanup(func() { cache.Close() })
	iset, _ := intel.FromDomains("evil.test")
	pol, _ := NewPolicy(PolicyConfig{Intel: intel.NewLive(iset), SinkholeA: netip.MustParseAddr("127.0.0.9")})
	zone, err := ParseZone(strings.NewReader("$ORIGIN z.test.\n@ 60 IN SOA ns h 1 2 3 4 5\n@ IN NS ns\nns IN A 127.0.0.1\n*.w IN TXT \"x\"\nc IN CNAME ns\nsub IN NS ns.sub\nns.sub IN A 127.0.0.2\n"), "z.test.", "z")
	if err != nil {
		f.Fatal(err)
	}
	rpz, err := ParseRPZ(strings.NewReader("*.rpz-block.test CNAME .\nlocal.test A 192.0.2.9\n"), "rpz", "fuzz.rpz")
	if err != nil {
		f.Fatal(err)
	}
	pol.cfg.RPZ.Set(rpz)
	det, err := NewDetector(DetectorConfig{Block: true, TunnelUnique: 2, NXDomainStorm: 3})
	if err != nil {
		f.Fatal(err)
	}
	srv, err := NewServer(ServerConfig{Directory: snap, Handler: Chain(cache, pol.Middleware, NewZones(zone).Middleware, det.Middleware),
		Observer: det, Sink: detect.Discard})
	if err != nil {
		f.Fatal(err)
	}
	client := netip.MustParseAddrPort("127.0.1.5:5353")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		r := new(Request)
		for _, tcp := range []bool{false, true} {
			w := &fuzzWriter{s: srv, r: r}
			srv.serve(w, r, pkt, client, tcp, srv.now())
			if !w.done {
				continue
			}
			m := new(dns.Msg)
			if err := m.Unpack(w.out); err != nil {
				t.Fatalf("answer does not parse: %v\n%x", err, w.out)
			}
			if len(pkt) >= 2 && m.Id != uint16(pkt[0])<<8|uint16(pkt[1]) {
				t.Fatalf("answer ID %d, query ID %x", m.Id, pkt[:2])
			}
			if !tcp && len(w.out) > DefaultUDPSize {
				t.Fatalf("UDP answer of %d bytes", len(w.out))
			}
		}
		// Let detached (miss) answers finish before the next input.
		for i := 0; i < 100 && len(cache.flightsSnapshot()) > 0; i++ {
			time.Sleep(time.Millisecond)
		}
	})
}

func (c *Cache) flightsSnapshot() []string {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	var ks []string
	for k := range c.flights {
		ks = append(ks, k)
	}
	return ks
}

func fuzzSeeds(tb testing.TB) [][]byte {
	var out [][]byte
	add := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	for _, name := range []string{"www.example.", "x.evil.test.", "a.b.w.z.test.", "c.z.test.", "q.sub.z.test.", "z.test."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		add(m)
		m.SetEdns0(4096, true)
		add(m)
	}
	m := new(dns.Msg)
	m.SetQuestion("Example.", dns.TypeTXT)
	m.SetEdns0(1232, false)
	m.Extra[0].(*dns.OPT).Option = append(m.Extra[0].(*dns.OPT).Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	add(m)
	out = append(out, []byte{}, []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1})
	return out
}
