package tenant_test

import (
	"fmt"
	"net/netip"

	"github.com/jichitai/seccloud/tenant"
)

func Example() {
	snap, err := tenant.NewSnapshot([]tenant.Tenant{
		{
			ID:          "tsu",
			Name:        "津市",
			Networks:    []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
			MailDomains: []string{"city.tsu.example.jp"},
			Sites:       []tenant.Site{{Host: "www.city.tsu.example.jp", Origins: []string{"127.0.0.1:8001"}}},
			EgressAddr:  []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		},
	}, tenant.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	dir := tenant.NewLive(snap)

	t, _ := dir.ByAddr(netip.MustParseAddr("127.0.1.5"))
	fmt.Println(t.ID, t.Name)
	t, _ = dir.ByDomain("Mail.City.Tsu.Example.JP.")
	fmt.Println(t.ID)
	site, t, _ := dir.BySite("www.city.tsu.example.jp:443")
	fmt.Println(site.Origins[0], t.ID)
	_, ok := dir.ByAddr(netip.MustParseAddr("192.0.2.1"))
	fmt.Println(ok)
	// Output:
	// tsu 津市
	// tsu
	// 127.0.0.1:8001 tsu
	// false
}

func ExampleNewSnapshot_errors() {
	_, err := tenant.NewSnapshot([]tenant.Tenant{
		{ID: "a", Name: "A市", Networks: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, Policy: tenant.Policy{EgressOptional: true}},
		{ID: "b", Name: "B町", Networks: []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24")}},
	}, tenant.Options{})
	if es, ok := err.(tenant.Errors); ok {
		for _, e := range es {
			fmt.Println(e.Path()+":", e)
		}
	}
	// Output:
	// tenants[1].egress_addr: tenant "b" egress_addr: missing: every tenant needs a fixed egress address (or policy.egress_optional)
	// tenants[1].networks[0]: tenant "b" networks[0] "10.1.2.0/24": overlaps 10.1.0.0/16 (tenant "a" networks[0])
}
