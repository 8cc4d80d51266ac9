package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/tenant"
)

// checkDest judges one resolved destination address for tenant t: another
// tenant's network is refused unless t's policy allows that tenant (an
// allowed tenant's network passes even if it is private); otherwise the
// deny list applies, with AllowDestinations as exceptions. These checks are
// structural and enforced even for report-only tenants.
func (s *Server) checkDest(t *tenant.Tenant, a netip.Addr) (detect.Verdict, bool) {
	a = a.Unmap()
	if o, ok := s.cfg.Directory.ByAddr(a); ok && o.ID != t.ID {
		if t.AllowsTenant(o.ID) {
			return detect.Verdict{}, true
		}
		return detect.Verdict{Action: detect.ActionBlock, Rule: RuleTenantBan, RuleName: o.ID,
			Reason: "destination " + a.String() + " belongs to tenant " + o.ID + "; direct traffic between tenants is not allowed"}, false
	}
	for _, p := range s.allow {
		if p.Contains(a) {
			return detect.Verdict{}, true
		}
	}
	for _, p := range s.deny {
		if p.Contains(a) {
			return detect.Verdict{Action: detect.ActionBlock, Rule: RuleDestination, RuleName: p.String(),
				Reason: "destination " + a.String() + " is in the denied network " + p.String()}, false
		}
	}
	return detect.Verdict{}, true
}

// errResolve is a failed name lookup (answered 502 with the DNS page).
type errResolve struct{ err error }

func (e errResolve) Error() string { return "proxy: resolve: " + e.err.Error() }
func (e errResolve) Unwrap() error { return e.err }

// resolve returns the checked addresses of host (ip when host is a
// literal). When every address is refused it returns the first refusal
// and, as the only address, the one refused (for the event; never dialed).
// A resolved address on Config.Intel's list is refused, or, for a
// report-only tenant, kept with an ActionReport verdict returned for the
// event.
// The caller dials only the returned addresses: what was checked is what
// is dialed, so a DNS answer changing between check and dial cannot slip
// through (no rebinding gap).
func (s *Server) resolve(ctx context.Context, t *tenant.Tenant, host string, ip netip.Addr, buf []netip.Addr) ([]netip.Addr, detect.Verdict, error) {
	var addrs []netip.Addr
	if ip.IsValid() {
		addrs = append(buf[:0], ip)
	} else {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
		as, err := s.resolver.LookupNetIP(ctx, "ip", host)
		cancel()
		if err != nil {
			return nil, detect.Verdict{}, errResolve{err}
		}
		if len(as) == 0 {
			return nil, detect.Verdict{}, errResolve{errors.New("no address for " + host)}
		}
		addrs = as
	}
	var set *intel.Set
	if s.cfg.Intel != nil && !ip.IsValid() {
		set = s.cfg.Intel.Load()
	}
	ok := addrs[:0]
	var first, report detect.Verdict
	var refused netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		v, allowed := s.checkDest(t, a)
		if allowed && set != nil {
			if ind, hit := set.Addr(a); hit {
				iv := detect.Verdict{Action: detect.ActionBlock, Rule: RuleIntel, RuleName: "threat-intelligence address",
					Reason: host + " resolves to " + a.String() + ", which matches " + ind.Value + " (" + ind.Source + ")", Score: 100}
				if t.Policy.ReportOnly {
					iv.Action = detect.ActionReport
					report = iv
				} else {
					v, allowed = iv, false
				}
			}
		}
		if !allowed {
			if first.Action == detect.ActionNone {
				first, refused = v, a
			}
			continue
		}
		ok = append(ok, a)
	}
	if len(ok) == 0 {
		// the refused address goes into the event (destination.ip), so
		// correlations on the address (C&C) see refused attempts too
		return append(ok, refused), first, nil
	}
	return ok, report, nil
}

var errNoEgress = errors.New("proxy: the tenant has no egress address of the destination's address family")

// dial connects to the first reachable address of addrs on port, from the
// tenant's egress address.
func (s *Server) dial(ctx context.Context, t *tenant.Tenant, addrs []netip.Addr, port uint16) (net.Conn, netip.AddrPort, netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	var errs []error
	for _, a := range addrs {
		eg, ok := t.EgressFor(a)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: %w", a, errNoEgress))
			continue
		}
		d := net.Dialer{Control: dialControl}
		if eg.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(eg, 0))
		}
		dst := netip.AddrPortFrom(a, port)
		c, err := d.DialContext(ctx, "tcp", dst.String())
		if err == nil {
			return c, dst, eg, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, netip.AddrPort{}, netip.Addr{}, fmt.Errorf("proxy: dial: %w", errors.Join(errs...))
}

// upConn is an upstream HTTP/1.1 connection.
type upConn struct {
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	key    poolKey
	idleAt time.Time
	reused bool
}

func (u *upConn) close() {
	u.c.Close()
	putBufio(u.br, u.bw)
	u.br, u.bw = nil, nil
}

type poolKey struct {
	egress   netip.Addr
	dest     netip.AddrPort
	breakout bool // over the breakout line
}

// pool keeps idle upstream connections per (egress, destination), most
// recently used first.
type pool struct {
	mu     sync.Mutex
	idle   map[poolKey][]*upConn
	max    int
	ttl    time.Duration
	now    func() time.Time
	closed bool
}

func (p *pool) init(max int, ttl time.Duration, now func() time.Time) {
	p.idle, p.max, p.ttl, p.now = make(map[poolKey][]*upConn), max, ttl, now
}

// get returns an idle connection for k, or nil. Expired connections met
// on the way are closed.
func (p *pool) get(k poolKey) *upConn {
	if p.max < 0 {
		return nil
	}
	now := p.now()
	var stale []*upConn
	defer func() {
		for _, u := range stale {
			u.close()
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.idle[k]
	for len(l) > 0 {
		u := l[len(l)-1]
		l[len(l)-1] = nil
		l = l[:len(l)-1]
		if now.Sub(u.idleAt) < p.ttl {
			p.idle[k] = l
			u.reused = true
			return u
		}
		stale = append(stale, u)
	}
	delete(p.idle, k)
	return nil
}

// put returns u to the pool, or closes it when the pool is full or closed.
func (p *pool) put(u *upConn) {
	u.idleAt = p.now()
	p.mu.Lock()
	l := p.idle[u.key]
	if p.closed || p.max < 0 || len(l) >= p.max {
		p.mu.Unlock()
		u.close()
		return
	}
	p.idle[u.key] = append(l, u)
	p.mu.Unlock()
}

// expire closes connections idle for longer than the TTL.
func (p *pool) expire() {
	now := p.now()
	var old []*upConn
	p.mu.Lock()
	for k, l := range p.idle {
		keep := l[:0]
		for _, u := range l {
			if now.Sub(u.idleAt) >= p.ttl {
				old = append(old, u)
			} else {
				keep = append(keep, u)
			}
		}
		clear(l[len(keep):])
		if len(keep) == 0 {
			delete(p.idle, k)
		} else {
			p.idle[k] = keep
		}
	}
	p.mu.Unlock()
	for _, u := range old {
		u.close()
	}
}

func (p *pool) closeAll() {
	p.mu.Lock()
	p.closed = true
	all := p.idle
	p.idle = make(map[poolKey][]*upConn)
	p.mu.Unlock()
	for _, l := range all {
		for _, u := range l {
			u.close()
		}
	}
}

// idleCount returns the number of pooled connections (for tests).
func (p *pool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.idle {
		n += len(l)
	}
	return n
}
