package tenant_test

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/tenant"
)

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, x := range s {
		out[i] = netip.MustParsePrefix(x)
	}
	return out
}

var egress = []netip.Addr{netip.MustParseAddr("127.0.0.1")}

func demo() []tenant.Tenant {
	return []tenant.Tenant{
		{
			ID: "tsu", Name: "津市", Networks: pfx("127.0.1.0/24", "10.0.0.0/15", "10.1.0.0/16", "2001:db8:1::/48"),
			MailDomains: []string{"city.tsu.example.jp"}, Zones: []string{"tsu.example.jp"},
			Sites: []tenant.Site{
				{Host: "www.city.tsu.example.jp", Origins: []string{"127.0.0.1:8001", "127.0.0.1:8002"}},
				{Host: "*.bousai.tsu.example.jp", Origins: []string{"http://127.0.0.1:8003"}},
			},
			EgressAddr: egress,
			Contacts:   []tenant.Contact{{Name: "情報政策課 山田", Email: "yamada@city.tsu.example.jp", Phone: "059-000-0000"}},
		},
		{
			ID: "yokkaichi", Name: "四日市市", Networks: pfx("127.0.2.0/24", "10.2.0.0/16", "192.168.0.0/16"),
			MailDomains: []string{"City.Yokkaichi.Example.JP."}, Zones: []string{"yokkaichi.example.jp", "sub.tsu.example.jp"},
			Sites:      []tenant.Site{{Host: "www.city.yokkaichi.example.jp", Origins: []string{"127.0.0.1:8101"}}},
			EgressAddr: egress,
		},
	}
}

func TestByAddr(t *testing.T) {
	s, err := tenant.NewSnapshot(demo(), tenant.Options{})
	require.NoError(t, err)
	for _, tc := range []struct {
		addr string
		want string
	}{
		{"127.0.1.5", "tsu"},
		{"127.0.1.0", "tsu"},
		{"127.0.1.255", "tsu"},
		{"127.0.2.1", "yokkaichi"},
		{"127.0.3.1", ""},
		{"127.0.0.1", ""},
		{"10.0.3.4", "tsu"},
		{"10.200.3.4", ""},
		{"10.1.2.3", "tsu"},
		{"10.2.9.9", "yokkaichi"},
		{"9.255.255.255", ""},
		{"11.0.0.0", ""},
		{"192.168.77.1", "yokkaichi"},
		{"::ffff:127.0.2.9", "yokkaichi"},
		{"2001:db8:1:ffff::1", "tsu"},
		{"2001:db8:2::1", ""},
		{"::1", ""},
		{"255.255.255.255", ""},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			got, ok := s.ByAddr(netip.MustParseAddr(tc.addr))
			if tc.want == "" {
				assert.False(t, ok)
				return
			}
			require.True(t, ok)
			assert.Equal(t, tc.want, got.ID)
		})
	}
	_, ok := s.ByAddr(netip.Addr{})
	assert.False(t, ok, "zero address")
}

func TestByDomain(t *testing.T) {
	s, err := tenant.NewSnapshot(demo(), tenant.Options{})
	require.NoError(t, err)
	for _, tc := range []struct{ name, want string }{
		{"city.tsu.example.jp", "tsu"},
		{"MAIL.City.Tsu.Example.JP.", "tsu"},
		{"tsu.example.jp", "tsu"},
		{"www.tsu.example.jp", "tsu"},
		{"sub.tsu.example.jp", "yokkaichi"}, // longest suffix wins
		{"a.b.sub.tsu.example.jp", "yokkaichi"},
		{"city.yokkaichi.example.jp", "yokkaichi"},
		{"example.jp", ""},
		{"jp", ""},
		{"", ""},
		{".", ""},
		{"xtsu.example.jp", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := s.ByDomain(tc.name)
			if tc.want == "" {
				assert.False(t, ok)
				return
			}
			require.True(t, ok)
			assert.Equal(t, tc.want, got.ID)
		})
	}
}

func TestBySite(t *testing.T) {
	s, err := tenant.NewSnapshot(demo(), tenant.Options{})
	require.NoError(t, err)
	for _, tc := range []struct{ host, wantTenant, wantSite string }{
		{"www.city.tsu.example.jp", "tsu", "www.city.tsu.example.jp"},
		{"WWW.City.Tsu.Example.JP:443", "tsu", "www.city.tsu.example.jp"},
		{"www.city.tsu.example.jp.", "tsu", "www.city.tsu.example.jp"},
		{"m.bousai.tsu.example.jp", "tsu", "*.bousai.tsu.example.jp"},
		{"a.m.bousai.tsu.example.jp", "", ""}, // wildcard covers one label only
		{"bousai.tsu.example.jp", "", ""},
		{"www.city.yokkaichi.example.jp:8080", "yokkaichi", "www.city.yokkaichi.example.jp"},
		{"[::1]:443", "", ""},
		{"unknown.example.jp", "", ""},
		{"", "", ""},
	} {
		t.Run(tc.host, func(t *testing.T) {
			site, ten, ok := s.BySite(tc.host)
			if tc.wantTenant == "" {
				assert.False(t, ok)
				return
			}
			require.True(t, ok)
			assert.Equal(t, tc.wantTenant, ten.ID)
			assert.Equal(t, tc.wantSite, site.Host)
		})
	}
}

func TestJapaneseIDN(t *testing.T) {
	ts := demo()
	ts[0].MailDomains = append(ts[0].MailDomains, "三重.jp")
	s, err := tenant.NewSnapshot(ts, tenant.Options{})
	require.NoError(t, err)
	got, ok := s.ByDomain("xn--ehqz56n.jp")
	require.True(t, ok)
	assert.Equal(t, "tsu", got.ID)
	assert.Equal(t, "津市", got.Name)
}

func fieldErrors(t *testing.T, err error) []*tenant.FieldError {
	t.Helper()
	require.Error(t, err)
	var es tenant.Errors
	require.True(t, errors.As(err, &es), "want tenant.Errors, got %T", err)
	return es
}

func TestValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(ts []tenant.Tenant) []tenant.Tenant
		want   []string // substrings of paths or messages, each must appear
	}{
		{"overlap nested", func(ts []tenant.Tenant) []tenant.Tenant {
			ts[0].Networks = pfx("10.1.0.0/16")
			ts[1].Networks = pfx("10.1.2.0/24")
			return ts
		}, []string{`tenant "yokkaichi" networks[0] "10.1.2.0/24": overlaps 10.1.0.0/16 (tenant "tsu" networks[0])`}},
		{"overlap identical v6", func(ts []tenant.Tenant) []tenant.Tenant {
			ts[1].Networks = append(ts[1].Networks, netip.MustParsePrefix("2001:db8:1::/48"))
			return ts
		}, []string{"overlaps 2001:db8:1::/48"}},
		{"host bits", func(ts []tenant.Tenant) []tenant.Tenant {
			ts[0].Networks = pfx("10.1.2.3/16")
			return ts
		}, []string{"networks[0]", "host bits set; did you mean 10.1.0.0/16?"}},
		{"duplicate id", func(ts []tenant.Tenant) []tenant.Tenant {
			ts[1].ID = "tsu"
			return ts
		}, []string{`tenant "tsu" id "tsu": used by another tenant`}},
		{"bad id", func(ts []tenant.Tenant) []tenant.Tenant {
			ts[1].ID = "Bad ID"
			return ts
		}, []string{"id \"Bad ID\""}},
		{"domain twice", func(ts []tenant.Tenant) []tenant.Tenant {
			ts[1].MailDomains = []string{"CITY.tsu.example.jp"}
			return ts
		}, []string{`mail_domains[0] "CITY.tsu.example.jp": already claimed by another tenant (tenant "tsu" mail_domains[0])`}},
		{"site twice", func(ts []tenant.Tenant) []tenant.Tenant {
			ts[1].Sites[0].Host = "www.city.tsu.example.jp"
			return ts
		}, []string{`sites[0].host`, `tenant "tsu" sites[0].host`}},
		{"egress missing", func(ts []tenant.Tenant) []tenant.Tenant {
			ts[1].EgressAddr = nil
			return ts
		}, []string{`tenant "yokkaichi" egress_addr: missing`}},
		{"bad contact", func(ts []tenant.Tenant) []tenant.Tenant {
			ts[0].Contacts = []tenant.Contact{{Name: "x", Email: "not-mail", Webhook: "ftp://x"}, {Name: ""}}
			return ts
		}, []string{"contacts[0].email", "contacts[0].webhook", "contacts[1].name", "contacts[1]"}},
		{"too many accounts", func(ts []tenant.Tenant) []tenant.Tenant {
			for i := range 6 {
				ts[0].Accounts = append(ts[0].Accounts, tenant.Account{Name: fmt.Sprint("u", i)})
			}
			return ts
		}, []string{"at most 5 accounts"}},
		{"bad site", func(ts []tenant.Tenant) []tenant.Tenant {
			ts[0].Sites[0].Host = "a.*.example.jp"
			ts[0].Sites[1].Origins = []string{"nope"}
			return ts
		}, []string{"sites[0].host", "sites[1].origins[0]"}},
		{"bad domain", func(ts []tenant.Tenant) []tenant.Tenant {
			ts[0].Zones = []string{"bad domain.jp"}
			return ts
		}, []string{"zones[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tenant.NewSnapshot(tc.mutate(demo()), tenant.Options{})
			es := fieldErrors(t, err)
			msg := err.Error()
			for _, w := range tc.want {
				assert.Contains(t, msg, w)
			}
			for _, e := range es {
				assert.NotEmpty(t, e.Field)
			}
		})
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	ts := demo()
	ts[0].Networks = pfx("10.1.0.0/16")
	ts[1].Networks = pfx("10.1.2.0/24")
	ts[1].EgressAddr = nil
	ts[1].MailDomains = []string{"city.tsu.example.jp"}
	_, err := tenant.NewSnapshot(ts, tenant.Options{})
	es := fieldErrors(t, err)
	assert.Len(t, es, 3)
	paths := map[string]bool{}
	for _, e := range es {
		paths[e.Path()] = true
	}
	assert.True(t, paths["tenants[1].networks[0]"])
	assert.True(t, paths["tenants[1].egress_addr"])
	assert.True(t, paths["tenants[1].mail_domains[0]"])
}

func TestSnapshotIsACopy(t *testing.T) {
	ts := demo()
	s, err := tenant.NewSnapshot(ts, tenant.Options{})
	require.NoError(t, err)
	ts[0].Networks[0] = netip.MustParsePrefix("127.0.9.0/24")
	ts[0].Name = "changed"
	got, ok := s.ByAddr(netip.MustParseAddr("127.0.1.1"))
	require.True(t, ok)
	assert.Equal(t, "津市", got.Name)
	assert.Equal(t, "127.0.1.0/24", got.Networks[0].String())
}

func TestLiveSwap(t *testing.T) {
	s1, err := tenant.NewSnapshot(demo(), tenant.Options{})
	require.NoError(t, err)
	l := tenant.NewLive(s1)
	held := l.Load() // an in-flight request keeps its snapshot
	ts := demo()
	ts[0].Networks = pfx("127.0.5.0/24")
	s2, err := tenant.NewSnapshot(ts, tenant.Options{})
	require.NoError(t, err)
	assert.Same(t, s1, l.Store(s2))

	a := netip.MustParseAddr("127.0.1.5")
	_, ok := l.ByAddr(a)
	assert.False(t, ok, "new snapshot no longer has 127.0.1.0/24")
	got, ok := held.ByAddr(a)
	require.True(t, ok, "held snapshot unchanged")
	assert.Equal(t, "tsu", got.ID)

	var zero tenant.Live
	_, ok = zero.ByAddr(a)
	assert.False(t, ok)
	_, _, ok = zero.BySite("x")
	assert.False(t, ok)
}

func TestLookupsDoNotAllocate(t *testing.T) {
	s, err := tenant.NewSnapshot(demo(), tenant.Options{})
	require.NoError(t, err)
	a := netip.MustParseAddr("127.0.2.77")
	assert.Zero(t, testing.AllocsPerRun(100, func() { s.ByAddr(a) }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { s.ByDomain("Mail.City.Tsu.Example.JP.") }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { s.BySite("x.bousai.tsu.example.jp:443") }))
}
