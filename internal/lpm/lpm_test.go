package lpm_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/jichitai/seccloud/internal/lpm"
)

func TestLookup(t *testing.T) {
	tab, conflicts := lpm.Build([]lpm.Entry{
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Owner: 1},
		{Prefix: netip.MustParsePrefix("10.1.0.0/16"), Owner: 2},
		{Prefix: netip.MustParsePrefix("10.1.2.0/24"), Owner: 1},
		{Prefix: netip.MustParsePrefix("2001:db8::/32"), Owner: 3},
		{Prefix: netip.MustParsePrefix("::/0"), Owner: 4},
		{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Owner: 5},
	})
	assert.Len(t, conflicts, 3) // 10.1/16 in 10/8, 10.1.2/24 in 10.1/16, 2001:db8::/32 in ::/0
	for addr, want := range map[string]int32{
		"10.9.9.9": 1, "10.1.9.9": 2, "10.1.2.200": 1, "10.1.3.0": 2, "11.0.0.0": -1,
		"2001:db8:ffff::1": 3, "2001:db9::": 4, "192.0.2.1": 5, "192.0.2.2": -1, "::1": 4, "::ffff:0:0": -1, "::ffff:10.1.2.3": 1,
	} {
		assert.Equal(t, want, tab.Lookup(netip.MustParseAddr(addr)), addr)
	}
	assert.Equal(t, int32(-1), tab.Lookup(netip.Addr{}))
	var zero lpm.Table
	assert.Equal(t, int32(-1), zero.Lookup(netip.MustParseAddr("10.0.0.1")))
}

func TestEqualPrefixLaterWins(t *testing.T) {
	tab, conflicts := lpm.Build([]lpm.Entry{
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Owner: 1},
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Owner: 2},
	})
	assert.Len(t, conflicts, 1)
	assert.Equal(t, int32(2), tab.Lookup(netip.MustParseAddr("10.0.0.1")))
}

// FuzzLookup compares the table with a naive scan over IPv6 and IPv4
// prefixes with overlapping owners.
func FuzzLookup(f *testing.F) {
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 32, 1, 0x20, 0x01, 0x0d, 0xb8, 48, 2, 0, 0, 0, 0, 0, 3})
	f.Add([]byte{10, 0, 0, 0, 0x88, 1, 10, 1, 0, 0, 0x90, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		var es []lpm.Entry
		for len(data) >= 6 && len(es) < 48 {
			var p netip.Prefix
			if data[4]&0x80 != 0 { // IPv4
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte(data[:4])), int(data[4]&0x7f)%33)
			} else { // IPv6 with the 4 bytes at the top
				var b [16]byte
				copy(b[:], data[:4])
				p = netip.PrefixFrom(netip.AddrFrom16(b), int(data[4])%129)
			}
			es = append(es, lpm.Entry{Prefix: p.Masked(), Owner: int32(data[5] % 5), Tag: int32(len(es))})
			data = data[6:]
		}
		tab, _ := lpm.Build(es)
		naive := func(a netip.Addr) int32 {
			a = a.Unmap()
			best, owner := -1, int32(-1)
			for _, e := range es {
				if e.Prefix.Contains(a) && e.Prefix.Bits() >= best {
					best, owner = e.Prefix.Bits(), e.Owner
				}
			}
			return owner
		}
		probe := func(a netip.Addr) {
			if got, want := tab.Lookup(a), naive(a); got != want {
				t.Fatalf("Lookup(%s) = %d, want %d (entries %v)", a, got, want, es)
			}
		}
		for len(data) >= 4 {
			probe(netip.AddrFrom4([4]byte(data[:4])))
			var b [16]byte
			copy(b[:], data[:4])
			probe(netip.AddrFrom16(b))
			data = data[4:]
		}
		for _, e := range es {
			probe(e.Prefix.Addr())
			probe(e.Prefix.Addr().Prev())
			probe(e.Prefix.Addr().Next())
		}
	})
}
