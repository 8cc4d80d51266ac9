package proxy

import (
	"net"
	"sync"

	"github.com/jichitai/seccloud/ratelimit"
	"github.com/jichitai/seccloud/tenant"
)

// shapers holds one pair of byte budgets per tenant (tenant.Bandwidth), so
// that all of a tenant's upstream connections share its ceiling in each
// direction: uploads (tenant → internet) charge up, downloads down.
type shapers struct {
	mu sync.Mutex
	m  map[string]*shaper
}

type shaper struct {
	bw       tenant.Bandwidth
	up, down *ratelimit.Limiter
}

// budgets returns the tenant's budgets; nil ones mean no ceiling.
func (sh *shapers) budgets(t *tenant.Tenant) (up, down ratelimit.Budget) {
	bw := t.Bandwidth
	if bw.UpMbps <= 0 && bw.DownMbps <= 0 {
		return nil, nil
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[t.ID]
	if s == nil || s.bw != bw { // new tenant, or its ceilings were reloaded
		s = &shaper{bw: bw, up: limiter(bw.UpMbps), down: limiter(bw.DownMbps)}
		if sh.m == nil {
			sh.m = make(map[string]*shaper)
		}
		sh.m[t.ID] = s
	}
	if s.up != nil {
		up = s.up
	}
	if s.down != nil {
		down = s.down
	}
	return up, down
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

// shape wraps an upstream connection of t in the tenant's budgets.
func (s *Server) shape(t *tenant.Tenant, c net.Conn) net.Conn {
	up, down := s.shapers.budgets(t)
	if up == nil && down == nil {
		return c
	}
	return ratelimit.NewConn(c, down, up)
}
