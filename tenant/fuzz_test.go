package tenant_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/jichitai/seccloud/tenant"
)

// FuzzByAddr builds a directory from fuzzed prefixes and checks every lookup
// against a naive longest-prefix scan.
func FuzzByAddr(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0, 8, 0, 10, 1, 0, 0, 16, 0, 10, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 0, 0, 1, 255, 255, 255, 255, 32, 1, 127, 0, 1, 9})
	f.Add([]byte{192, 168, 0, 0, 24, 2, 192, 168, 0, 128, 25, 2, 192, 168, 0, 200})
	f.Fuzz(func(t *testing.T, data []byte) {
		// Records of 6 bytes: 4 address bytes, bits, tenant (0-3); the
		// rest are probe addresses of 4 bytes.
		var nets [4][]netip.Prefix
		for len(data) >= 6 && len(nets[0])+len(nets[1])+len(nets[2])+len(nets[3]) < 64 {
			a := netip.AddrFrom4([4]byte(data[:4]))
			p := netip.PrefixFrom(a, int(data[4]%33)).Masked()
			ti := data[5] % 4
			nets[ti] = append(nets[ti], p)
			data = data[6:]
			if len(data) > 0 && data[0] == 0xff {
				data = data[1:]
				break
			}
		}
		var ts []tenant.Tenant
		for i := range nets {
			ts = append(ts, tenant.Tenant{ID: string(rune('a' + i)), Name: "t", Networks: nets[i], Policy: tenant.Policy{EgressOptional: true}})
		}
		s, err := tenant.NewSnapshot(ts, tenant.Options{})
		if err != nil {
			// Must be refused only for a real overlap between two tenants.
			if !hasCrossOverlap(nets) {
				t.Fatalf("refused without cross-tenant overlap: %v", err)
			}
			return
		}
		if hasCrossOverlap(nets) {
			t.Fatalf("accepted overlapping networks")
		}
		probe := func(a netip.Addr) {
			want := ""
			best := -1
			for i := range nets {
				for _, p := range nets[i] {
					if p.Contains(a) && p.Bits() > best {
						best, want = p.Bits(), ts[i].ID
					}
				}
			}
			got, ok := s.ByAddr(a)
			if (want != "") != ok || (ok && got.ID != want) {
				t.Fatalf("ByAddr(%s) = %v,%v want %q", a, got, ok, want)
			}
		}
		for len(data) >= 4 {
			probe(netip.AddrFrom4([4]byte(data[:4])))
			data = data[4:]
		}
		// Edges of every prefix.
		for i := range nets {
			for _, p := range nets[i] {
				probe(p.Addr())
				last := binary.BigEndian.Uint32(p.Addr().AsSlice()) | (uint32(1)<<(32-p.Bits()) - 1)
				if p.Bits() == 0 {
					last = ^uint32(0)
				}
				var b [4]byte
				binary.BigEndian.PutUint32(b[:], last)
				probe(netip.AddrFrom4(b))
				binary.BigEndian.PutUint32(b[:], last+1)
				probe(netip.AddrFrom4(b))
			}
		}
	})
}

func hasCrossOverlap(nets [4][]netip.Prefix) bool {
	for i := range nets {
		for j := i + 1; j < len(nets); j++ {
			for _, p := range nets[i] {
				for _, q := range nets[j] {
					if p.Overlaps(q) {
						return true
					}
				}
			}
		}
	}
	return false
}

// FuzzNormalizeDomain checks that a normalised name is stable and that
// lookups on arbitrary names never panic.
func FuzzNormalizeDomain(f *testing.F) {
	for _, s := range []string{"example.jp", "三重.jp.", "A.B.C", "", ".", "a..b", "xn--ehqz56n.jp", "*.x"} {
		f.Add(s)
	}
	s, err := tenant.NewSnapshot([]tenant.Tenant{{ID: "a", Name: "a", MailDomains: []string{"example.jp"},
		Sites: []tenant.Site{{Host: "*.example.jp", Origins: []string{"127.0.0.1:1"}}}, Policy: tenant.Policy{EgressOptional: true}}}, tenant.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		s.ByDomain(name)
		s.BySite(name)
		n, err := tenant.NormalizeDomain(name)
		if err != nil {
			return
		}
		n2, err := tenant.NormalizeDomain(n)
		if err != nil || n2 != n {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", name, n, n2, err)
		}
		if _, ok := s.ByDomain(n); ok != (n == "example.jp" || len(n) > len(".example.jp") && n[len(n)-len(".example.jp"):] == ".example.jp") {
			t.Fatalf("ByDomain(%q) = %v", n, ok)
		}
	})
}
