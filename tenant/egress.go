package tenant

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// EgressFor returns t's egress address of dst's address family. ok is
// false when t has egress addresses but none of that family. A tenant
// without any egress address (Policy.EgressOptional) gets the zero Addr
// and ok: the kernel chooses.
func (t *Tenant) EgressFor(dst netip.Addr) (netip.Addr, bool) {
	if len(t.EgressAddr) == 0 {
		return netip.Addr{}, true
	}
	for _, e := range t.EgressAddr {
		if e.Unmap().Is4() == dst.Unmap().Is4() {
			return e.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// ErrNoEgress is returned by DialEgress when the tenant has no egress
// address of any of the destination's address families.
var ErrNoEgress = errors.New("tenant: no egress address of the destination's address family")

// DialEgress connects to addr (host:port; a host name is resolved with
// d.Resolver, or the system resolver) from t's egress address of each
// destination address's family, trying the addresses in order. A nil t
// dials as d does. d is not modified; nil means a zero net.Dialer.
func DialEgress(ctx context.Context, d *net.Dialer, t *Tenant, network, addr string) (net.Conn, error) {
	if d == nil {
		d = &net.Dialer{}
	}
	if t == nil {
		return d.DialContext(ctx, network, addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("tenant: dial %s: %w", addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("tenant: dial %s: bad port: %w", addr, err)
	}
	var dsts []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		dsts = []netip.Addr{a}
	} else {
		r := d.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		if dsts, err = r.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, fmt.Errorf("tenant: dial %s: %w", addr, err)
		}
	}
	var errs []error
	for _, dst := range dsts {
		eg, ok := t.EgressFor(dst)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: %w", dst, ErrNoEgress))
			continue
		}
		dd := *d
		if eg.IsValid() {
			dd.LocalAddr = &net.TCPAddr{IP: eg.AsSlice()}
		}
		c, err := dd.DialContext(ctx, network, netip.AddrPortFrom(dst.Unmap(), uint16(p)).String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("tenant: dial %s from tenant %s: %w", addr, t.ID, errors.Join(errs...))
}
