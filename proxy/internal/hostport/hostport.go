// Package hostport normalises the host and port of a proxy request target
// (absolute-URI authority or CONNECT authority-form) so that policy checks
// and dialing see one canonical form: lower-case names without a trailing
// dot, IDN names in their A-label form, and IP literals in every encoding a
// C resolver accepts (inet_aton's decimal, octal, hex and short forms,
// IPv4-mapped IPv6) turned into a netip.Addr.
package hostport

import (
	"errors"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// Errors returned by Split and Normalize.
var (
	ErrEmpty   = errors.New("empty host")
	ErrPort    = errors.New("invalid port")
	ErrHost    = errors.New("invalid host")
	ErrIPv6    = errors.New("invalid IPv6 literal")
	ErrNumeric = errors.New("invalid numeric host")
)

// MaxName is the longest host name accepted, in octets (RFC 1035).
const MaxName = 253

// Split splits an authority "host[:port]" or "[v6]:port" into host and port.
// The brackets of an IPv6 literal are removed. A missing or empty port gives
// defPort. Userinfo ("user@host") is refused.
func Split(authority string, defPort uint16) (host string, port uint16, err error) {
	if authority == "" {
		return "", 0, ErrEmpty
	}
	if strings.IndexByte(authority, '@') >= 0 {
		return "", 0, ErrHost
	}
	rest := ""
	if authority[0] == '[' {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return "", 0, ErrIPv6
		}
		host, rest = authority[1:end], authority[end+1:]
		if rest != "" && rest[0] != ':' {
			return "", 0, ErrHost
		}
		if strings.IndexByte(host, ':') < 0 {
			return "", 0, ErrIPv6
		}
	} else {
		i := strings.IndexByte(authority, ':')
		if i < 0 {
			host = authority
		} else {
			host, rest = authority[:i], authority[i:]
			if strings.IndexByte(rest[1:], ':') >= 0 {
				return "", 0, ErrIPv6 // unbracketed IPv6
			}
		}
	}
	if host == "" {
		return "", 0, ErrEmpty
	}
	port = defPort
	if len(rest) > 1 {
		p, ok := parsePort(rest[1:])
		if !ok {
			return "", 0, ErrPort
		}
		port = p
	}
	if port == 0 {
		return "", 0, ErrPort
	}
	return host, port, nil
}

func parsePort(s string) (uint16, bool) {
	if len(s) == 0 || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n == 0 || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// Normalize returns the canonical form of host (without brackets or port):
// either an IP address (ip valid, name its text form) or a lower-case DNS
// name without a trailing dot, in A-label form (ip invalid). IPv4-mapped
// IPv6 addresses are unmapped; IPv6 zones are refused. A name whose last
// label is numeric or hex ("0x7f.1", "2130706433", "1.2.3.4.5") must be a
// valid inet_aton IPv4 literal or it is refused, so that no encoding of an
// address slips past the checks as a "name".
func Normalize(host string) (name string, ip netip.Addr, err error) {
	if host == "" {
		return "", netip.Addr{}, ErrEmpty
	}
	if strings.IndexByte(host, ':') >= 0 {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", netip.Addr{}, ErrIPv6
		}
		a = a.Unmap()
		return a.String(), a, nil
	}
	if host[len(host)-1] == '.' {
		host = host[:len(host)-1]
		if host == "" || host[len(host)-1] == '.' {
			return "", netip.Addr{}, ErrHost
		}
	}
	if !isASCII(host) {
		a, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return "", netip.Addr{}, ErrHost
		}
		host = a
	}
	last := host
	if i := strings.LastIndexByte(host, '.'); i >= 0 {
		last = host[i+1:]
	}
	if numericLabel(last) {
		a, ok := ParseIPv4(host)
		if !ok {
			return "", netip.Addr{}, ErrNumeric
		}
		return a.String(), a, nil
	}
	if len(host) > MaxName {
		return "", netip.Addr{}, ErrHost
	}
	lower := true
	label := 0
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			label++
		case c >= 'A' && c <= 'Z':
			lower = false
			label++
		case c == '.':
			if label == 0 {
				return "", netip.Addr{}, ErrHost
			}
			label = 0
			continue
		default:
			return "", netip.Addr{}, ErrHost
		}
		if label > 63 {
			return "", netip.Addr{}, ErrHost
		}
	}
	if label == 0 {
		return "", netip.Addr{}, ErrHost
	}
	if !lower {
		host = strings.ToLower(host)
	}
	return host, netip.Addr{}, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// numericLabel reports whether a label looks like part of a numeric IPv4
// literal: all decimal digits, or "0x" followed by hex digits.
func numericLabel(l string) bool {
	if l == "" {
		return false
	}
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		for i := 2; i < len(l); i++ {
			if !isHex(l[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// ParseIPv4 parses s the way inet_aton(3) does: one to four parts separated
// by dots, each decimal, octal (leading 0) or hex (leading 0x); the last
// part fills the remaining bytes. "127.1", "0x7f000001", "017700000001" and
// "2130706433" are all 127.0.0.1.
func ParseIPv4(s string) (netip.Addr, bool) {
	var parts [4]uint64
	n := 0
	for {
		if n == 4 {
			return netip.Addr{}, false
		}
		i := strings.IndexByte(s, '.')
		p := s
		if i >= 0 {
			p = s[:i]
		}
		v, ok := parseAtonPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		parts[n] = v
		n++
		if i < 0 {
			break
		}
		s = s[i+1:]
	}
	var v uint64
	for i := 0; i < n-1; i++ {
		if parts[i] > 0xff {
			return netip.Addr{}, false
		}
		v |= parts[i] << (24 - 8*i)
	}
	lastBits := 32 - 8*(n-1)
	if parts[n-1] >= 1<<lastBits {
		return netip.Addr{}, false
	}
	v |= parts[n-1]
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseAtonPart(p string) (uint64, bool) {
	if p == "" || len(p) > 34 {
		return 0, false
	}
	base := uint64(10)
	switch {
	case len(p) > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:]
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	}
	var v uint64
	for i := 0; i < len(p); i++ {
		c := p[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		v = v*base + d
		if v > 0xffffffff {
			return 0, false
		}
	}
	return v, true
}
