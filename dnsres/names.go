package dnsres

import (
	"github.com/miekg/dns"
)

// wireName returns the lower-cased wire form of the question name (a
// sub-slice of the request's key: do not retain).
func (r *Request) wireName() []byte { return r.key[:r.nameLen] }

// toWire returns the wire form of a presentation name (lower-cased by the
// caller), or false if it is not a valid name.
func toWire(name string) (string, bool) {
	var buf [256]byte
	n, err := dns.PackDomainName(dns.Fqdn(name), buf[:], 0, nil, false)
	if err != nil {
		return "", false
	}
	return string(buf[:n]), true
}

// eachSuffix calls fn with name (wire form) and each of its parent names
// down to (and including, if root) the root, longest first, until fn
// returns true. It allocates nothing.
func eachSuffix(name []byte, root bool, fn func(suffix []byte) bool) bool {
	for off := 0; off < len(name); {
		if name[off] == 0 {
			return root && fn(name[off:])
		}
		if fn(name[off:]) {
			return true
		}
		off += 1 + int(name[off])
	}
	return false
}
