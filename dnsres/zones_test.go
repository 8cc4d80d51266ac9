package dnsres_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/dnsres"
)

const goodZone = `$ORIGIN city.example.
$TTL 3600
@    IN SOA ns1 hostmaster 2026040101 3600 600 604800 300
@    IN NS  ns1
ns1  IN A   192.0.2.53
www  IN A   192.0.2.80
web  IN CNAME www
*.wild IN A 192.0.2.99
sub  IN NS  ns.sub
ns.sub IN A 192.0.2.54
`

func TestZoneAnswers(t *testing.T) {
	z, err := dnsres.ParseZone(strings.NewReader(goodZone), "city.example.", "city.zone")
	require.NoError(t, err)
	cases := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		aa     bool
		answer int
		ns     int
		extra  int
	}{
		{"exact", "www.city.example.", dns.TypeA, dns.RcodeSuccess, true, 1, 0, 0},
		{"cname followed in zone", "web.city.example.", dns.TypeA, dns.RcodeSuccess, true, 2, 0, 0},
		{"nodata", "www.city.example.", dns.TypeMX, dns.RcodeSuccess, true, 0, 1, 0},
		{"nxdomain", "nope.city.example.", dns.TypeA, dns.RcodeNameError, true, 0, 1, 0},
		{"wildcard", "a.wild.city.example.", dns.TypeA, dns.RcodeSuccess, true, 1, 0, 0},
		{"referral with glue", "host.sub.city.example.", dns.TypeA, dns.RcodeSuccess, false, 0, 1, 1},
		{"apex soa", "city.example.", dns.TypeSOA, dns.RcodeSuccess, true, 1, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := z.Answer(tc.qname, tc.qtype)
			assert.Equal(t, tc.rcode, m.Rcode)
			assert.Equal(t, tc.aa, m.Authoritative)
			assert.Len(t, m.Answer, tc.answer)
			assert.Len(t, m.Ns, tc.ns)
			assert.Len(t, m.Extra, tc.extra)
		})
	}
	m := z.Answer("x.wild.city.example.", dns.TypeA)
	assert.Equal(t, "x.wild.city.example.", m.Answer[0].Header().Name, "wildcard owner rewritten")
}

func TestZoneParseErrorHasFileAndLine(t *testing.T) {
	bad := strings.Replace(goodZone, "www  IN A   192.0.2.80", "www  IN A   192.0.2.300", 1)
	_, err := dnsres.ParseZone(strings.NewReader(bad), "city.example.", "zones/city.zone")
	var ze *dnsres.ZoneError
	require.True(t, errors.As(err, &ze), "%v", err)
	assert.Equal(t, "zones/city.zone", ze.File)
	assert.Equal(t, 6, ze.Line)
	assert.Contains(t, err.Error(), "zones/city.zone:6:")

	_, err = dnsres.ParseZone(strings.NewReader("$ORIGIN a.example.\nwww 60 IN A 192.0.2.1\n"), "a.example.", "a.zone")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no SOA")
}

func TestZonesReloadKeepsOldZoneOnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "city.zone")
	require.NoError(t, os.WriteFile(path, []byte(goodZone), 0o600))
	zs := dnsres.NewZones()
	require.NoError(t, zs.Load(map[string]string{"city.example": path}))
	z, ok := zs.Zone("city.example.")
	require.True(t, ok)
	assert.EqualValues(t, 2026040101, z.Serial())

	require.NoError(t, os.WriteFile(path, []byte(goodZone+"broken line (\n"), 0o600))
	err := zs.Load(map[string]string{"city.example": path})
	require.Error(t, err)
	assert.Contains(t, err.Error(), path+":")
	z2, ok := zs.Zone("city.example.")
	require.True(t, ok, "old zone kept")
	assert.Same(t, z, z2)
}

func TestManyZones(t *testing.T) {
	var zones []*dnsres.Zone
	for i := 0; i < 1000; i++ {
		zones = append(zones, dnsres.DefaultZone(strings.Repeat("x", i%5+1)+string(rune('a'+i%26))+".example"+itoa(i)+".", "ns.example."))
	}
	zs := dnsres.NewZones(zones...)
	assert.Equal(t, 1000, zs.Len())
}

func itoa(i int) string {
	return strings.TrimLeft(strings.Repeat("0", 4)+string(rune('0'+i/1000%10))+string(rune('0'+i/100%10))+string(rune('0'+i/10%10))+string(rune('0'+i%10)), "")
}
