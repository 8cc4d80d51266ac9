package waf

import (
	"net/netip"
	"strings"
)

// appendXFF returns the X-Forwarded-For value sent to the origin: the
// addresses of the incoming header lines that parse as IP addresses (with
// or without a port), then client. Anything else in the incoming header
// (garbage, obfuscated forms, CR/LF) is dropped, so the origin only ever
// sees a clean comma-separated list of addresses. The result is capped at
// maxXFF entries, keeping the right-most (closest to us) ones.
func appendXFF(prev []string, client netip.Addr) string {
	var addrs []string
	for _, v := range prev {
		for e := range strings.SplitSeq(v, ",") {
			if a, ok := parseNodeAddr(strings.TrimSpace(e)); ok {
				addrs = append(addrs, a.String())
			}
		}
	}
	addrs = append(addrs, client.Unmap().String())
	if len(addrs) > maxXFF {
		addrs = addrs[len(addrs)-maxXFF:]
	}
	return strings.Join(addrs, ", ")
}

// maxXFF bounds the forwarded chains we pass on.
const maxXFF = 32

func parseNodeAddr(e string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(e); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(e); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// forwardedElement returns our RFC 7239 Forwarded element:
// for=client;host=host;proto=proto, with IPv6 addresses quoted as
// "[2001:db8::1]" and the host quoted when it is not a token.
func forwardedElement(client netip.Addr, host, proto string) string {
	var b strings.Builder
	b.WriteString("for=")
	client = client.Unmap()
	if client.Is6() {
		b.WriteString(`"[` + client.String() + `]"`)
	} else {
		b.WriteString(client.String())
	}
	if host != "" && !hasCTL(host) {
		b.WriteString(";host=")
		b.WriteString(quoteIfNeeded(host))
	}
	b.WriteString(";proto=")
	b.WriteString(proto)
	return b.String()
}

// appendForwarded returns the Forwarded value sent to the origin: the
// incoming elements when the whole incoming header parses as RFC 7239
// (otherwise it is dropped, all of it: a half-trusted chain is worse than
// none), then ours. Capped at maxXFF elements like X-Forwarded-For.
func appendForwarded(prev []string, client netip.Addr, host, proto string) string {
	var elems []string
	for _, v := range prev {
		es, ok := parseForwarded(v)
		if !ok {
			elems = nil
			break
		}
		elems = append(elems, es...)
	}
	elems = append(elems, forwardedElement(client, host, proto))
	if len(elems) > maxXFF {
		elems = elems[len(elems)-maxXFF:]
	}
	return strings.Join(elems, ", ")
}

// parseForwarded splits one Forwarded header value into its elements,
// each re-serialised canonically, and reports whether the whole value is
// valid RFC 7239 syntax: elements separated by commas, pairs by
// semicolons, token=token or token="quoted string" (no CR, LF or other
// controls inside).
func parseForwarded(v string) ([]string, bool) {
	var elems []string
	var cur []string
	i := 0
	skipWS := func() {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
	}
	for {
		skipWS()
		// token
		j := i
		for j < len(v) && isTchar(v[j]) {
			j++
		}
		if j == i || j >= len(v) || v[j] != '=' {
			return nil, false
		}
		key := strings.ToLower(v[i:j])
		i = j + 1
		var val string
		if i < len(v) && v[i] == '"' {
			i++
			var b strings.Builder
			for {
				if i >= len(v) {
					return nil, false
				}
				c := v[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' {
					i++
					if i >= len(v) {
						return nil, false
					}
					c = v[i]
				}
				if c < 0x20 && c != '\t' || c == 0x7f {
					return nil, false
				}
				b.WriteByte(c)
				i++
			}
			val = b.String()
		} else {
			j = i
			for j < len(v) && isTchar(v[j]) {
				j++
			}
			if j == i {
				return nil, false
			}
			val = v[i:j]
			i = j
		}
		cur = append(cur, key+"="+quoteIfNeeded(val))
		skipWS()
		if i >= len(v) {
			elems = append(elems, strings.Join(cur, ";"))
			return elems, true
		}
		switch v[i] {
		case ';':
		case ',':
			elems = append(elems, strings.Join(cur, ";"))
			cur = cur[:0:0]
		default:
			return nil, false
		}
		i++
	}
}

// quoteIfNeeded returns s as a token when it is one, else as a quoted
// string with '"' and '\' escaped.
func quoteIfNeeded(s string) string {
	tok := s != ""
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			tok = false
			break
		}
	}
	if tok {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}

// isTchar reports whether c is an RFC 9110 token character.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// hasCTL reports whether s holds a control character (never valid in a
// header value's quoted string).
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}
