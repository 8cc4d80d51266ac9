package waf

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAppendXFF(t *testing.T) {
	c4, c6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		name string
		prev []string
		c    netip.Addr
		want string
	}{
		{"none", nil, c4, "192.0.2.1"},
		{"mapped client", nil, netip.MustParseAddr("::ffff:192.0.2.1"), "192.0.2.1"},
		{"v6", nil, c6, "2001:db8::1"},
		{"chain", []string{"198.51.100.1, 198.51.100.2"}, c4, "198.51.100.1, 198.51.100.2, 192.0.2.1"},
		{"two lines", []string{"198.51.100.1", "198.51.100.2"}, c4, "198.51.100.1, 198.51.100.2, 192.0.2.1"},
		{"ports dropped", []string{"198.51.100.1:80, [2001:db8::2]:443"}, c4, "198.51.100.1, 2001:db8::2, 192.0.2.1"},
		{"garbage dropped", []string{"unknown, <script>, 0x7f.1, fe80::1%eth0, 198.51.100.1"}, c4, "198.51.100.1, 192.0.2.1"},
		{"too long", []string{strings.Repeat("198.51.100.1,", 100)}, c4, strings.Repeat("198.51.100.1, ", maxXFF-1) + "192.0.2.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, appendXFF(tc.prev, tc.c))
		})
	}
}

func TestAppendForwarded(t *testing.T) {
	c4, c6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		name  string
		prev  []string
		c     netip.Addr
		host  string
		proto string
		want  string
	}{
		{"v4", nil, c4, "www.example.jp", "https", "for=192.0.2.1;host=www.example.jp;proto=https"},
		{"v6 quoted", nil, c6, "www.example.jp", "http", `for="[2001:db8::1]";host=www.example.jp;proto=http`},
		{"host with port is a token", nil, c4, "www.example.jp:8443", "https", `for=192.0.2.1;host="www.example.jp:8443";proto=https`},
		{"chain kept", []string{`for=198.51.100.1;proto=http, For="[2001:db8::2]:80"`}, c4, "h", "https",
			`for=198.51.100.1;proto=http, for="[2001:db8::2]:80", for=192.0.2.1;host=h;proto=https`},
		{"obfuscated id kept", []string{"for=_hidden"}, c4, "h", "https", "for=_hidden, for=192.0.2.1;host=h;proto=https"},
		{"invalid chain dropped", []string{"for=198.51.100.1", "for=1.2.3.4;;"}, c4, "h", "https", "for=192.0.2.1;host=h;proto=https"},
		{"unterminated quote", []string{`for="[2001:db8::2]`}, c4, "h", "https", "for=192.0.2.1;host=h;proto=https"},
		{"control char", []string{"for=\"a\x01b\""}, c4, "h", "https", "for=192.0.2.1;host=h;proto=https"},
		{"escaped quote", []string{`for="a\"b"`}, c4, "h", "https", `for="a\"b", for=192.0.2.1;host=h;proto=https`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, appendForwarded(tc.prev, tc.c, tc.host, tc.proto))
		})
	}
}
