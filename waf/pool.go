package waf

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jichitai/seccloud/tenant"
)

// origin is one origin server of a site with its health state. All fields
// after the URL are updated atomically: the data path takes no lock.
type origin struct {
	url  *url.URL // scheme and host only
	name string   // as written in the site

	active   atomic.Int64 // requests in flight
	fails    atomic.Int32 // consecutive failures
	ejectTil atomic.Int64 // unix ns; ejected while now < ejectTil
	down     atomic.Bool  // failed its last active health check
}

// available reports whether o may be chosen at now.
func (o *origin) available(now int64) bool {
	return !o.down.Load() && now >= o.ejectTil.Load()
}

// pool is the set of origins of one site.
type pool struct {
	host    string // the site's Host, sent in health checks
	origins []*origin
	next    atomic.Uint32
	lastUse atomic.Int64 // unix ns of the last request
}

func newPool(host string, origins []string) (*pool, error) {
	p := &pool{host: strings.TrimPrefix(host, "*.")}
	for _, o := range origins {
		u, err := parseOrigin(o)
		if err != nil {
			return nil, err
		}
		p.origins = append(p.origins, &origin{url: u, name: o})
	}
	if len(p.origins) == 0 {
		return nil, fmt.Errorf("waf: site %s has no origins", host)
	}
	return p, nil
}

// parseOrigin turns "host:port" or "http(s)://host[:port]" into a URL with
// scheme and host only.
func parseOrigin(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("waf: origin %q: %w", s, err)
		}
		return &url.URL{Scheme: "http", Host: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("waf: origin %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("waf: origin %q: want http(s)://host[:port]", s)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// pick chooses an available origin not in tried. When no origin is
// available (all ejected or down) it falls back to any origin not in
// tried — serving through a possibly-recovered origin beats a certain 502.
// It returns nil when every origin was tried.
func (p *pool) pick(b Balance, now int64, tried []*origin) *origin {
	n := len(p.origins)
	start := int(p.next.Add(1)-1) % n
	var best *origin
	for pass := 0; pass < 2 && best == nil; pass++ {
		for i := range n {
			o := p.origins[(start+i)%n]
			if contains(tried, o) || (pass == 0 && !o.available(now)) {
				continue
			}
			if b == RoundRobin {
				return o
			}
			if best == nil || o.active.Load() < best.active.Load() {
				best = o
			}
		}
	}
	return best
}

func contains(os []*origin, o *origin) bool {
	for _, x := range os {
		if x == o {
			return true
		}
	}
	return false
}

// pools holds the pools of the sites seen so far, keyed by site host and
// origin list, so a directory reload that changes a site's origins gets a
// fresh pool. Pools unused for a while are dropped by the health loop.
type pools struct {
	bySite sync.Map // *tenant.Site -> *pool: the fast path, no allocation
	nSite  atomic.Int64
	mu     sync.Mutex
	m      map[string]*pool
}

func (ps *pools) forSite(s *tenant.Site) (*pool, error) {
	if p, ok := ps.bySite.Load(s); ok {
		return p.(*pool), nil
	}
	p, err := ps.get(s.Host, s.Origins)
	if err != nil {
		return nil, err
	}
	// A Directory that returns a fresh *Site per call would grow the
	// pointer cache without bound: start it over when it gets large.
	if ps.nSite.Add(1) > maxSitePtrs {
		ps.bySite.Clear()
		ps.nSite.Store(0)
	}
	ps.bySite.Store(s, p)
	return p, nil
}

const maxSitePtrs = 4096

func (ps *pools) get(host string, origins []string) (*pool, error) {
	key := host + "\x00" + strings.Join(origins, "\x00")
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.m[key]; ok {
		return p, nil
	}
	p, err := newPool(host, origins)
	if err != nil {
		return nil, err
	}
	if ps.m == nil {
		ps.m = map[string]*pool{}
	}
	ps.m[key] = p
	return p, nil
}

// snapshot returns the current pools, dropping those unused since before
// idleBefore.
func (ps *pools) snapshot(idleBefore int64) []*pool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]*pool, 0, len(ps.m))
	for k, p := range ps.m {
		if p.lastUse.Load() < idleBefore {
			delete(ps.m, k)
			ps.bySite.Range(func(s, q any) bool {
				if q == p {
					ps.bySite.Delete(s)
				}
				return true
			})
			continue
		}
		out = append(out, p)
	}
	return out
}

// failed records a failure of o at now and reports whether it ejected o.
func (o *origin) failed(now time.Time, maxFails int, ejectFor time.Duration) bool {
	if int(o.fails.Add(1)) >= maxFails {
		o.fails.Store(0)
		o.ejectTil.Store(now.Add(ejectFor).UnixNano())
		return true
	}
	return false
}

func (o *origin) succeeded() { o.fails.Store(0) }
