package tenant_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/jichitai/seccloud/tenant"
)

// benchSnapshot builds 100 tenants × 50 prefixes (IPv4 /16–/28 and IPv6
// /48–/64, disjoint between tenants), each with a mail domain, a zone and
// two sites.
func benchSnapshot(b *testing.B) (*tenant.Snapshot, []netip.Addr) {
	r := rand.New(rand.NewPCG(1, 2))
	var ts []tenant.Tenant
	var probes []netip.Addr
	for i := range 100 {
		t := tenant.Tenant{ID: fmt.Sprintf("t%03d", i), Name: fmt.Sprintf("自治体%d", i),
			EgressAddr:  []netip.Addr{netip.MustParseAddr("127.0.0.1")},
			MailDomains: []string{fmt.Sprintf("city%d.example.jp", i)},
			Zones:       []string{fmt.Sprintf("t%d.example.jp", i)},
			Sites: []tenant.Site{
				{Host: fmt.Sprintf("www.city%d.example.jp", i), Origins: []string{"127.0.0.1:80"}},
				{Host: fmt.Sprintf("*.bousai%d.example.jp", i), Origins: []string{"127.0.0.1:80"}},
			}}
		for j := range 50 {
			var p netip.Prefix
			if j%5 == 4 {
				a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i), byte(j), 0, byte(r.IntN(256))})
				p = netip.PrefixFrom(a, 48+r.IntN(17)).Masked()
			} else {
				// Tenant i owns 10.i.0.0/16 carved into pieces, plus 100.64+i.j.0/24.
				a := netip.AddrFrom4([4]byte{10, byte(i), byte(j * 5), 0})
				p = netip.PrefixFrom(a, 20+r.IntN(9)).Masked()
				if j%2 == 0 {
					p = netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(64 + i), byte(j), 0}), 24)
				}
			}
			t.Networks = append(t.Networks, p)
			probes = append(probes, p.Addr().Next())
		}
		ts = append(ts, t)
	}
	// Misses.
	for range len(probes) / 4 {
		probes = append(probes, netip.AddrFrom4([4]byte{byte(150 + r.IntN(50)), byte(r.IntN(256)), 0, 1}))
	}
	r.Shuffle(len(probes), func(i, j int) { probes[i], probes[j] = probes[j], probes[i] })
	s, err := tenant.NewSnapshot(ts, tenant.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return s, probes
}

func BenchmarkByAddr(b *testing.B) {
	s, probes := benchSnapshot(b)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		s.ByAddr(probes[i%len(probes)])
		i++
	}
}

func BenchmarkByAddrParallel(b *testing.B) {
	s, probes := benchSnapshot(b)
	l := tenant.NewLive(s)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(probes))
		for pb.Next() {
			l.ByAddr(probes[i%len(probes)])
			i++
		}
	})
}

func BenchmarkByDomain(b *testing.B) {
	s, _ := benchSnapshot(b)
	names := []string{"mx.city42.example.jp.", "WWW.T7.EXAMPLE.JP", "a.b.c.unknown.example.com", "city99.example.jp"}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		s.ByDomain(names[i&3])
		i++
	}
}

func BenchmarkBySite(b *testing.B) {
	s, _ := benchSnapshot(b)
	hosts := []string{"www.city42.example.jp", "m.bousai7.example.jp:443", "nothing.example.jp", "WWW.CITY3.EXAMPLE.JP"}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		s.BySite(hosts[i&3])
		i++
	}
}

func BenchmarkNewSnapshot(b *testing.B) {
	s, _ := benchSnapshot(b)
	var ts []tenant.Tenant
	for _, t := range s.Tenants() {
		ts = append(ts, *t)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := tenant.NewSnapshot(ts, tenant.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
