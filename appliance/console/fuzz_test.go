package console

import (
	"strings"
	"testing"
	"time"
)

// FuzzCheckPassword: any stored hash string is refused or checked, never
// a panic or a huge allocation.
func FuzzCheckPassword(f *testing.F) {
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA", "pw")
	f.Add("$argon2id$v=19$m=99999999,t=1,p=1$AA$AA", "pw")
	f.Add("$argon2i$v=19$m=64,t=1,p=1$AA$AA", "")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, phc, pw string) {
		_ = checkPassword(phc, pw)
	})
}

// FuzzLocalPath: whatever next= or back= says, the redirect stays on the
// site.
func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/dashboard", "//evil.example", "/\\evil", "https://evil", "/a\r\nSet-Cookie: x", "/\t/evil.example", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := localPath(s)
		// What a browser would make of it: tabs and newlines dropped.
		b := strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, p)
		if !strings.HasPrefix(b, "/") || strings.HasPrefix(b, "//") || strings.HasPrefix(b, "/\\") || strings.ContainsAny(p, "\r\n\t") {
			t.Fatalf("localPath(%q) = %q leaves the site", s, p)
		}
	})
}

// FuzzParseTime: the events search's time fields never panic.
func FuzzParseTime(f *testing.F) {
	c := &Console{cfg: Config{Location: time.UTC}}
	for _, s := range []string{"2025-04-01", "2025-04-01T09:00", "2025-04-01T09:00:00+09:00", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = c.parseTime(s, time.Time{})
	})
}
