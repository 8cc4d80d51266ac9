package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/jichitai/seccloud/ratelimit"
	"github.com/jichitai/seccloud/tenant"
)

// GlobalBandwidth is the capacity of the internet line that the proxy
// shares fairly among the tenants busy at the same time (a
// ratelimit.Fair per direction): each busy tenant gets at least
// capacity × its weight (tenant.Bandwidth.Weight, 0 means 1) ÷ the busy
// tenants' weights, and what idle or capped tenants leave is lent to the
// others. Each tenant's own ceilings (tenant.Bandwidth.UpMbps/DownMbps)
// still apply on top. The zero value shares nothing.
type GlobalBandwidth struct {
	// UpMbps is the line's capacity from the tenants towards the
	// internet, in megabits per second. Zero: uploads are not shared.
	UpMbps int
	// DownMbps is the line's capacity towards the tenants. Zero:
	// downloads are not shared.
	DownMbps int
}

func (g GlobalBandwidth) validate() error {
	if g.UpMbps < 0 || g.DownMbps < 0 {
		return fmt.Errorf("proxy: Config.GlobalBandwidth must not be negative, got %+v", g)
	}
	const maxMbps = 800_000 // 1e11 bytes/s, ratelimit's largest rate
	if g.UpMbps > maxMbps || g.DownMbps > maxMbps {
		return fmt.Errorf("proxy: Config.GlobalBandwidth above %d Mbit/s, got %+v", maxMbps, g)
	}
	return nil
}

// shapers holds one pair of byte budgets per tenant (tenant.Bandwidth), so
// that all of a tenant's upstream connections share its ceiling in each
// direction: uploads (tenant → internet) charge up, downloads down. With
// a GlobalBandwidth, a direction's budget is the tenant's ceiling (if
// any) followed by its fair share of the line.
type shapers struct {
	mu     sync.Mutex
	m      map[string]*shaper
	global [2]*fairShare // up, down; nil: that direction is not shared
}

type shaper struct {
	bw       tenant.Bandwidth
	up, down ratelimit.Budget
}

func (sh *shapers) init(g GlobalBandwidth) {
	for i, mbps := range []int{g.UpMbps, g.DownMbps} {
		if mbps > 0 {
			rate := float64(mbps) * 125_000
			sh.global[i] = &fairShare{capacity: rate, burst: max(int(rate/20), 64<<10), tenants: map[string]float64{}}
		}
	}
}

// close stops the fair schedulers (after the last connection).
func (sh *shapers) close() {
	for _, fs := range sh.global {
		if fs != nil {
			fs.close()
		}
	}
}

// budgets returns the tenant's budgets; nil ones mean no shaping.
func (sh *shapers) budgets(t *tenant.Tenant) (up, down ratelimit.Budget) {
	bw := t.Bandwidth
	if bw.UpMbps <= 0 && bw.DownMbps <= 0 && sh.global[0] == nil && sh.global[1] == nil {
		return nil, nil
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[t.ID]
	if s == nil || s.bw != bw { // new tenant, or its bandwidth was reloaded
		s = &shaper{bw: bw}
		for i, mbps := range []int{bw.UpMbps, bw.DownMbps} {
			var b ratelimit.Budget
			if l := limiter(mbps); l != nil {
				b = l
			}
			if fs := sh.global[i]; fs != nil {
				fb := fs.join(t.ID, float64(min(max(bw.Weight, 1), 1_000_000)))
				if b == nil {
					b = fb
				} else {
					b = chain{b, fb}
				}
			}
			if i == 0 {
				s.up = b
			} else {
				s.down = b
			}
		}
		if sh.m == nil {
			sh.m = make(map[string]*shaper)
		}
		sh.m[t.ID] = s
	}
	return s.up, s.down
}

// limiter returns a byte-rate limiter for mbps megabits per second, with a
// burst of 1/20 s of traffic (at least 16 KiB), or nil for no ceiling.
func limiter(mbps int) *ratelimit.Limiter {
	if mbps <= 0 {
		return nil
	}
	rate := float64(mbps) * 125_000
	l, err := ratelimit.New(ratelimit.Config{Rate: rate, Burst: max(int(rate/20), 16<<10)})
	if err != nil {
		return nil
	}
	return l
}

// chain is a tenant's own ceiling followed by its share of the line.
type chain [2]ratelimit.Budget

func (c chain) WaitN(ctx context.Context, n int) error {
	if err := c[0].WaitN(ctx, n); err != nil {
		return err
	}
	return c[1].WaitN(ctx, n)
}

func (c chain) Burst() int { return min(c[0].Burst(), c[1].Burst()) }

// fairShare is one direction of the line: a ratelimit.Fair over every
// tenant seen so far. A tenant that is new or whose weight changed
// rebuilds the scheduler; waits on the old one end with ErrClosed and
// are retried on the new one, so connections never notice.
type fairShare struct {
	capacity float64 // bytes per second
	burst    int

	mu      sync.Mutex
	tenants map[string]float64 // id → weight
	closed  bool
	cur     atomic.Pointer[ratelimit.Fair]
}

// join registers tenant id with weight w and returns its budget.
func (fs *fairShare) join(id string, w float64) *fairBudget {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if old, ok := fs.tenants[id]; (!ok || old != w) && !fs.closed {
		fs.tenants[id] = w
		cfg := ratelimit.FairConfig{Capacity: fs.capacity, Burst: fs.burst}
		for tid, tw := range fs.tenants {
			cfg.Tenants = append(cfg.Tenants, ratelimit.FairTenantConfig{ID: tid, Weight: tw})
		}
		f, err := ratelimit.NewFair(cfg)
		if err == nil { // validated in New; weights are in range
			if prev := fs.cur.Swap(f); prev != nil {
				prev.Close()
			}
		}
	}
	return &fairBudget{fs: fs, id: id}
}

func (fs *fairShare) close() {
	fs.mu.Lock()
	fs.closed = true
	f := fs.cur.Swap(nil)
	fs.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

// fairBudget is a tenant's handle on the current scheduler of its line.
type fairBudget struct {
	fs *fairShare
	id string
}

func (b *fairBudget) WaitN(ctx context.Context, n int) error {
	for {
		f := b.fs.cur.Load()
		if f == nil {
			return ratelimit.ErrClosed
		}
		err := f.WaitN(ctx, b.id, n)
		if errors.Is(err, ratelimit.ErrClosed) && b.fs.cur.Load() != f {
			continue // rebuilt for a new tenant: wait on the new one
		}
		return err
	}
}

func (b *fairBudget) Burst() int { return b.fs.burst }

// shape wraps an upstream connection of t in the tenant's budgets.
func (s *Server) shape(t *tenant.Tenant, c net.Conn) net.Conn {
	up, down := s.shapers.budgets(t)
	if up == nil && down == nil {
		return c
	}
	return ratelimit.NewConn(c, down, up)
}
