package waf

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzForwardedHeaders feeds arbitrary incoming X-Forwarded-For and
// Forwarded values to the builders. The output must be a valid header
// value (no CR, LF or NUL), re-parse as RFC 7239 and end with our own
// element, and X-Forwarded-For must be a clean list of addresses.
func FuzzForwardedHeaders(f *testing.F) {
	for _, s := range []string{"", "for=192.0.2.1", `for="[2001:db8::1]:80";proto=https, for=_x`,
		"198.51.100.1, 2001:db8::1", `for="a\"b`, "for=1;;", "\r\nX-Injected: 1"} {
		f.Add(s, "www.example.jp")
	}
	client := netip.MustParseAddr("192.0.2.9")
	f.Fuzz(func(t *testing.T, in, host string) {
		fw := appendForwarded([]string{in}, client, host, "https")
		if strings.ContainsAny(fw, "\r\n\x00") {
			t.Fatalf("Forwarded %q holds a control character", fw)
		}
		els, ok := parseForwarded(fw)
		if !ok {
			t.Fatalf("Forwarded %q does not parse", fw)
		}
		if want := forwardedElement(client, host, "https"); els[len(els)-1] != want {
			t.Fatalf("last element %q, want %q", els[len(els)-1], want)
		}
		xff := appendXFF([]string{in}, client)
		for e := range strings.SplitSeq(xff, ", ") {
			if _, err := netip.ParseAddr(e); err != nil {
				t.Fatalf("X-Forwarded-For %q holds %q", xff, e)
			}
		}
		if !strings.HasSuffix(xff, client.String()) {
			t.Fatalf("X-Forwarded-For %q does not end with the client", xff)
		}
	})
}
