package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/jichitai/seccloud/proxy/internal/hostport"
)

// FuzzHostport: authority splitting and host normalisation never panic,
// results are canonical (normalising again changes nothing) and an IP
// result is exactly the address' canonical text.
func FuzzHostport(f *testing.F) {
	for _, s := range []string{"example.jp:80", "[::ffff:127.0.0.1]:443", "0x7f.1", "2130706433:8080", "0177.0.0.01",
		"Ｅｘａｍｐｌｅ.jp", "xn--r8jz45g.jp", "a..b", "1.2.3.4.5", "[fe80::1%25eth0]:80", "host:", "user@host:1", "例え.テスト."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, port, err := hostport.Split(s, 80)
		if err != nil {
			return
		}
		if port == 0 || h == "" {
			t.Fatalf("Split(%q) = %q, %d without error", s, h, port)
		}
		name, ip, err := hostport.Normalize(h)
		if err != nil {
			return
		}
		if ip.IsValid() {
			if name != ip.String() || ip.Is4In6() || ip.Zone() != "" {
				t.Fatalf("Normalize(%q) = %q, %v", h, name, ip)
			}
			return
		}
		if name != strings.ToLower(name) || strings.HasSuffix(name, ".") || len(name) > hostport.MaxName {
			t.Fatalf("Normalize(%q) = %q: not canonical", h, name)
		}
		again, ip2, err := hostport.Normalize(name)
		if err != nil || again != name || ip2.IsValid() {
			t.Fatalf("Normalize(%q) = %q, then %q, %v, %v", h, name, again, ip2, err)
		}
	})
}

// FuzzXFF: the terminal found in X-Forwarded-For is a valid, unzoned,
// unmapped address that appears in the header, and never a trusted one
// unless every entry is trusted.
func FuzzXFF(f *testing.F) {
	for _, s := range []string{"10.9.8.7", "6.6.6.6, 10.9.8.7, 127.0.1.10", "[2001:db8::1]:5000, unknown", "::ffff:10.0.0.1", ",,,", "10.0.0.1:80"} {
		f.Add(s)
	}
	trusted := func(a netip.Addr) bool { return netip.MustParsePrefix("127.0.1.0/24").Contains(a) }
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := terminalFromXFF([]string{s}, trusted)
		if !ok {
			return
		}
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("terminalFromXFF(%q) = %v", s, a)
		}
	})
}

// FuzzOriginForm: the origin-form sent upstream always starts with '/' and
// holds no fragment.
func FuzzOriginForm(f *testing.F) {
	for _, s := range []string{"http://h/p?q", "http://h", "http://h?x", "http://h#frag", "http://h/a#b?c", "h/p", "://x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := originForm(s)
		if !ok {
			return
		}
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "#") {
			t.Fatalf("originForm(%q) = %q", s, p)
		}
	})
}

// FuzzParseCategories: any input gives a map of canonical names or an
// error, never a panic.
func FuzzParseCategories(f *testing.F) {
	f.Add("shop.example shopping\n# c\n\nnews.example news # x\n")
	f.Add("bad line with three\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseCategories(strings.NewReader(s))
		if err != nil {
			return
		}
		for d, c := range m {
			if d == "" || c == "" || strings.ContainsAny(c, " \t#") {
				t.Fatalf("%q -> %q", d, c)
			}
		}
	})
}

// FuzzFastHead: whatever the fast response-head parser accepts,
// net/http's parser accepts too, with the same status and length.
func FuzzFastHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\n",
		"HTTP/1.0 204 No Content\r\n\r\n",
		"HTTP/1.1 304\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, head bool) {
		i := bytes.Index(b, []byte("\r\n\r\n"))
		if i < 0 {
			return
		}
		b = b[:i+4]
		method := "GET"
		if head {
			method = "HEAD"
		}
		h := fastHead{length: -1}
		if !h.parse(b, &http.Request{Method: method}) {
			return
		}
		status, length := h.status, h.length
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("fast parser accepted %q, net/http refused: %v", b, err)
		}
		if resp.StatusCode != status {
			t.Fatalf("%q: status %d, net/http %d", b, status, resp.StatusCode)
		}
		if method == "GET" && status != 204 && status != 304 && resp.ContentLength != length {
			t.Fatalf("%q: length %d, net/http %d", b, length, resp.ContentLength)
		}
	})
}
