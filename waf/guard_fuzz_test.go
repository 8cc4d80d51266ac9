package waf

import (
	"strings"
	"testing"
)

// FuzzGuardParsers feeds the gate's normalisers and detectors arbitrary
// input: none may panic, and their results keep their invariants.
func FuzzGuardParsers(f *testing.F) {
	for _, s := range []string{"/admin/../x", "a=1%0d%0aSet-Cookie:x", "x\r\nBcc: a@b", "sid=1; Path=/; secure", "\\admin", "%zz\n", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := cleanPath(s)
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "/../") || strings.Contains(p, "\\") {
			t.Fatalf("cleanPath(%q) = %q", s, p)
		}
		if mailHeaderInjection(s) && !strings.ContainsAny(s, "\r\n") {
			t.Fatalf("mail header injection without CR/LF: %q", s)
		}
		if headerLikeLine(s) && !strings.ContainsAny(s, "\r\n%") {
			t.Fatalf("header line without newline: %q", s)
		}
		for _, https := range []bool{false, true} {
			c := hardenCookie(s, https, "Lax")
			if !strings.HasPrefix(c, s) {
				t.Fatalf("hardenCookie changed the original: %q -> %q", s, c)
			}
			lc := strings.ToLower(c)
			if !strings.Contains(lc, "httponly") || (https && !strings.Contains(lc, "secure")) {
				t.Fatalf("hardenCookie(%q, %v) = %q", s, https, c)
			}
		}
	})
}
