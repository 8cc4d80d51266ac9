package console

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
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

// FuzzCleanFileName: an accepted file name is never a path, never holds
// control or format characters, and is valid UTF-8 of at most
// MaxFileName bytes.
func FuzzCleanFileName(f *testing.F) {
	for _, s := range []string{"申請書.pdf", "../../etc/passwd", `..\a`, "a\x00b", "\u202egnp.exe", `"><img src=x>.png`, ".", " x "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := CleanFileName(s)
		if err != nil {
			return
		}
		if n == "" || n == "." || n == ".." || strings.ContainsAny(n, `/\`) || strings.HasPrefix(n, "..") ||
			len(n) > MaxFileName || !utf8.ValidString(n) {
			t.Fatalf("accepted %q as %q", s, n)
		}
		for _, r := range n {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("accepted %q with %U", n, r)
			}
		}
		if filepath.Base(n) != n {
			t.Fatalf("%q is not its own base name", n)
		}
	})
}

// FuzzPurgeTarget: an accepted purge target names exactly one host, in
// lower case, followed by "/": a prefix cannot reach another host's keys.
func FuzzPurgeTarget(f *testing.F) {
	for _, s := range []string{"https://www.city.example.jp/news/", "www.a.example", "//a.example/x", "https://a.example.evil/", "https://a@b/", "http://[::1]/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, host, err := purgeTarget(s, true)
		if err != nil {
			return
		}
		rest := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
		if !strings.HasPrefix(rest, host+"/") || host != strings.ToLower(host) || strings.ContainsAny(host, ":@[]/") {
			t.Fatalf("%q → key %q host %q", s, key, host)
		}
		if strings.IndexFunc(key, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			t.Fatalf("%q → key %q with a space or control character", s, key)
		}
	})
}

// FuzzParseSessions: a damaged sessions file is an error, never a panic,
// and every accepted entry is complete.
func FuzzParseSessions(f *testing.F) {
	f.Add(`[{"key":"` + strings.Repeat("ab", 32) + `","user":"u","role":"admin","csrf":"0123456789abcdef0123"}]`)
	f.Add(`[{"key":"zz"}]`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, s string) {
		list, err := parseSessions([]byte(s))
		if err != nil {
			return
		}
		for _, st := range list {
			if len(st.Key) != 64 || st.User == "" || !st.Role.Valid() || len(st.CSRF) < 16 {
				t.Fatalf("accepted incomplete %+v", st)
			}
		}
	})
}
