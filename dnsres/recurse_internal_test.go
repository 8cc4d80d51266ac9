package dnsres

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestSubstituteDNAME(t *testing.T) {
	cases := []struct{ name, owner, target, want string }{
		{"www.old.example.", "old.example.", "new.test.", "www.new.test."},
		{"a.b.old.example.", "OLD.example.", "New.Test.", "a.b.new.test."},
		{"www.example.", ".", "alt.", "www.example.alt."},
		{"www.old.example.", "old.example.", ".", "www."},
	}
	for _, tc := range cases {
		d := &dns.DNAME{Hdr: dns.RR_Header{Name: tc.owner, Rrtype: dns.TypeDNAME, Class: dns.ClassINET}, Target: tc.target}
		got, ok := substituteDNAME(tc.name, d)
		if !ok || got != tc.want {
			t.Errorf("substituteDNAME(%q, %s → %s) = %q, %v; want %q", tc.name, tc.owner, tc.target, got, ok, tc.want)
		}
	}
	long := strings.Repeat("x", 63) + "."
	d := &dns.DNAME{Hdr: dns.RR_Header{Name: "o.", Rrtype: dns.TypeDNAME, Class: dns.ClassINET}, Target: long + long + long}
	if got, ok := substituteDNAME(long+long+"o.", d); ok {
		t.Errorf("a name over 255 octets was accepted: %q", got)
	}
}

// FuzzSubstituteDNAME: for any name below any owner, the substitution
// either fails or yields a valid name of at most 255 octets ending in the
// target, and dnameOver finds the DNAME only for names strictly below it.
func FuzzSubstituteDNAME(f *testing.F) {
	f.Add("www.old.example.", "old.example.", "new.test.")
	f.Add("x.", ".", "y.")
	f.Add("a.b.c.", "b.c.", ".")
	f.Fuzz(func(t *testing.T, name, owner, target string) {
		name, owner, target = lowerFQDN(name), lowerFQDN(owner), lowerFQDN(target)
		if _, ok := dns.IsDomainName(name); !ok {
			return
		}
		if _, ok := dns.IsDomainName(owner); !ok {
			return
		}
		if _, ok := dns.IsDomainName(target); !ok {
			return
		}
		d := &dns.DNAME{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeDNAME, Class: dns.ClassINET}, Target: target}
		below := name != owner && dns.IsSubDomain(owner, name)
		if got := dnameOver([]dns.RR{d}, name); (got != nil) != below {
			t.Fatalf("dnameOver(%q) with owner %q: %v, want below=%v", name, owner, got, below)
		}
		if !below {
			return
		}
		out, ok := substituteDNAME(name, d)
		if !ok {
			return
		}
		if _, valid := dns.IsDomainName(out); !valid || len(out) > 254 {
			t.Fatalf("substituteDNAME(%q, %q → %q) = %q: not a valid name", name, owner, target, out)
		}
		if target != "." && !strings.HasSuffix(out, target) {
			t.Fatalf("substituteDNAME(%q, %q → %q) = %q: does not end in the target", name, owner, target, out)
		}
		if dns.CountLabel(out) != dns.CountLabel(name)-dns.CountLabel(owner)+dns.CountLabel(target) {
			t.Fatalf("substituteDNAME(%q, %q → %q) = %q: label count", name, owner, target, out)
		}
	})
}

func TestRegisteredDomain(t *testing.T) {
	for in, want := range map[string]string{
		"a.b.example.co.jp.": "example.co.jp.",
		"WWW.Flood.Test":     "flood.test.",
		"city.lg.jp.":        "city.lg.jp.",
		"jp.":                "jp.",
		".":                  ".",
	} {
		if got := registeredDomain(in); got != want {
			t.Errorf("registeredDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkFetchLimiter is the cost the per-zone and per-server limits
// add to each upstream query (acquire + release), from many goroutines.
func BenchmarkFetchLimiter(b *testing.B) {
	zones := newFetchLimiter[string](DefaultFetchesPerZone, nil, nil)
	names := []string{"example.jp.", "city.lg.jp.", "bench.test.", "."}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			z := names[i&3]
			i++
			if zones.acquire(z) {
				zones.release(z)
			}
		}
	})
}
