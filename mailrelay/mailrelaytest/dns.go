package mailrelaytest

import (
	"context"
	"net"
	"strings"
	"sync"

	"github.com/jichitai/seccloud/mailrelay"
)

// DNS is a fake resolver for mailrelay.AuthConfig and DeliveryConfig: it
// answers from its maps and never touches the network. Names are matched
// case-insensitively without a trailing dot; a missing name answers "not
// found". Set the maps before use; it is safe for concurrent lookups.
type DNS struct {
	mu  sync.RWMutex
	TXT map[string][]string
	A   map[string][]string // IPv4 and IPv6 addresses as text
	MX  map[string][]*net.MX
	PTR map[string][]string // keyed by address text
}

func key(n string) string { return strings.ToLower(strings.TrimSuffix(n, ".")) }

func notFound(n string) error { return &net.DNSError{Err: "no such host", Name: n, IsNotFound: true} }

// LookupTXT implements the resolver interfaces.
func (d *DNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if v, ok := d.TXT[key(name)]; ok {
		return v, nil
	}
	return nil, notFound(name)
}

// LookupIP implements the resolver interfaces.
func (d *DNS) LookupIP(_ context.Context, network, host string) ([]net.IP, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []net.IP
	for _, s := range d.A[key(host)] {
		ip := net.ParseIP(s)
		if ip == nil {
			continue
		}
		if (ip.To4() != nil) == (network == "ip4") || network == "ip" {
			out = append(out, ip)
		}
	}
	if len(out) == 0 {
		return nil, notFound(host)
	}
	return out, nil
}

// LookupMX implements the resolver interfaces.
func (d *DNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if v, ok := d.MX[key(name)]; ok {
		return v, nil
	}
	return nil, notFound(name)
}

// LookupAddr implements the resolver interfaces.
func (d *DNS) LookupAddr(_ context.Context, addr string) ([]string, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if v, ok := d.PTR[addr]; ok {
		return v, nil
	}
	return nil, notFound(addr)
}

var (
	_ mailrelay.Resolver   = (*DNS)(nil)
	_ mailrelay.MXResolver = (*DNS)(nil)
)
