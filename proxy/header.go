package proxy

import (
	"net/netip"
	"strings"
)

// hopByHop reports whether the canonical header key k is a hop-by-hop
// header (RFC 7230 section 6.1, RFC 2616 section 13.5.1, plus the
// non-standard Proxy-Connection) that a proxy must not forward.
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// connectionToken reports whether k is named as a token in one of the
// Connection header values (those headers are hop-by-hop too).
func connectionToken(k string, conn []string) bool {
	for _, v := range conn {
		for v != "" {
			var tok string
			if i := strings.IndexByte(v, ','); i >= 0 {
				tok, v = v[:i], v[i+1:]
			} else {
				tok, v = v, ""
			}
			if strings.EqualFold(strings.TrimSpace(tok), k) {
				return true
			}
		}
	}
	return false
}

// hasToken reports whether the comma-separated header values hold token
// (case-insensitive).
func hasToken(vals []string, token string) bool { return connectionToken(token, vals) }

// terminalFromXFF returns the terminal address from X-Forwarded-For values
// set by trusted downstream proxies: walking the addresses from the right
// (the one appended last, by the proxy talking to us) it skips addresses of
// trusted proxies and returns the first other one. Entries may carry a port
// ("192.0.2.1:5000", "[2001:db8::1]:5000"). An entry that does not parse
// stops the walk with ok false: what lies left of garbage cannot be
// attributed.
func terminalFromXFF(vals []string, trusted func(netip.Addr) bool) (netip.Addr, bool) {
	var last netip.Addr
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			var e string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				e, v = v[j+1:], v[:j]
			} else {
				e, v = v, ""
			}
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			a, ok := parseXFFAddr(e)
			if !ok {
				return netip.Addr{}, false
			}
			if !trusted(a) {
				return a, true
			}
			last = a
		}
	}
	return last, last.IsValid()
}

func parseXFFAddr(e string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(e); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(e); err == nil {
		if ap.Addr().Zone() != "" {
			return netip.Addr{}, false
		}
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// originForm turns the raw absolute-URI request target "http://host/p?q"
// into the origin-form "/p?q" sent upstream ("/" when empty). It returns
// false when target is not an absolute URI with an authority.
func originForm(target string) (string, bool) {
	i := strings.Index(target, "://")
	if i <= 0 {
		return "", false
	}
	rest := target[i+3:]
	j := strings.IndexAny(rest, "/?#")
	if j < 0 {
		return "/", true
	}
	p := rest[j:]
	if k := strings.IndexByte(p, '#'); k >= 0 {
		p = p[:k]
	}
	switch {
	case p == "":
		return "/", true
	case p[0] == '?':
		return "/" + p, true
	}
	return p, true
}
