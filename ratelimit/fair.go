package ratelimit

import (
	"context"
	"fmt"
	"math"
	"sync"
)

// FairConfig configures a Fair scheduler.
type FairConfig struct {
	// Capacity is the global capacity shared by all tenants, in tokens
	// (usually bytes) per second. Required, as for Config.Rate.
	Capacity float64
	// Burst is the global bucket size in tokens, and the largest single
	// request (WaitN's n). Required, as for Config.Burst.
	Burst int
	// Tenants lists the tenants. At least one is required.
	Tenants []FairTenantConfig
}

// FairTenantConfig describes one tenant of a Fair scheduler.
type FairTenantConfig struct {
	// ID names the tenant; required and unique.
	ID string
	// Weight sets the tenant's share under contention: an active tenant
	// is guaranteed Capacity*Weight/(sum of the active tenants' weights).
	// Zero means 1. It must be finite and in (0, 1e6].
	Weight float64
	// Ceiling is a hard upper bound on the tenant's rate in tokens per
	// second, whatever capacity is idle. Zero means none. It must be
	// finite and in (0, Capacity].
	Ceiling float64
}

const maxWeight = 1e6

// Fair shares a global capacity among tenants, like an HTB class tree with
// one level: each tenant has a weight and an optional ceiling. Under
// contention each backlogged tenant gets at least its weighted share of the
// capacity; capacity that idle or capped tenants leave unused is lent to the
// busy ones in proportion to their weights (the scheduler is
// work-conserving); a tenant whose demand is below its share gets all it
// asks for.
//
// Requests are ordered by start-time fair queueing: each tenant's request
// at the head of its FIFO gets the virtual start tag max(V, F), where F is
// the finish tag of the tenant's previous request (start + n/weight) and V
// the start tag of the request last served; the smallest tag among tenants
// under their ceiling is served when the global bucket has room. A tenant
// that was idle starts at V: idling earns no credit. When no one is
// waiting, a request that fits in the global bucket (and the tenant's
// ceiling) passes at once, without a goroutine switch.
//
// A Fair owns a goroutine; Close stops it. The zero Fair is not usable;
// create one with NewFair. A Fair is safe for concurrent use.
type Fair struct {
	mu      sync.Mutex
	s       fairSched
	clk     clock
	ids     map[string]int
	handles []*FairTenant
	wake    chan struct{}
	done    chan struct{}
	exited  chan struct{}
	closed  bool
}

// FairTenant is one tenant's handle on a Fair scheduler. It is a Budget,
// so it can shape a Reader, Writer or Conn. It is safe for concurrent use.
type FairTenant struct {
	f *Fair
	i int
}

// NewFair validates cfg and starts the scheduler. It refuses an invalid
// configuration with a *ConfigError naming the field.
func NewFair(cfg FairConfig) (*Fair, error) {
	s, err := newFairSched(cfg)
	if err != nil {
		return nil, err
	}
	f := &Fair{
		s:      *s,
		clk:    newClock(nil),
		ids:    make(map[string]int, len(cfg.Tenants)),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	for i, t := range cfg.Tenants {
		f.ids[t.ID] = i
		f.handles = append(f.handles, &FairTenant{f: f, i: i})
	}
	go f.run()
	return f, nil
}

func newFairSched(cfg FairConfig) (*fairSched, error) {
	g, err := newGCRA(cfg.Capacity, cfg.Burst, "Capacity", "Burst")
	if err != nil {
		return nil, err
	}
	if len(cfg.Tenants) == 0 {
		return nil, cfgErr("Tenants", "at least one tenant is required")
	}
	s := &fairSched{g: g, tat: -timeLimit}
	seen := make(map[string]bool, len(cfg.Tenants))
	for i, t := range cfg.Tenants {
		field := fmt.Sprintf("Tenants[%d]", i)
		switch {
		case t.ID == "":
			return nil, cfgErr(field+".ID", "must not be empty")
		case seen[t.ID]:
			return nil, cfgErr(field+".ID", "duplicate tenant %q", t.ID)
		case math.IsNaN(t.Weight) || math.IsInf(t.Weight, 0) || t.Weight < 0 || t.Weight > maxWeight:
			return nil, cfgErr(field+".Weight", "must be in (0, %g], got %v", float64(maxWeight), t.Weight)
		case math.IsNaN(t.Ceiling) || math.IsInf(t.Ceiling, 0) || t.Ceiling < 0:
			return nil, cfgErr(field+".Ceiling", "must be a finite number >= 0, got %v", t.Ceiling)
		case t.Ceiling > cfg.Capacity:
			return nil, cfgErr(field+".Ceiling", "must be <= Capacity (%g), got %g", cfg.Capacity, t.Ceiling)
		}
		seen[t.ID] = true
		st := fairState{weight: t.Weight, ceilTat: -timeLimit}
		if st.weight == 0 {
			st.weight = 1
		}
		if t.Ceiling > 0 {
			cg, err := newGCRA(t.Ceiling, cfg.Burst, field+".Ceiling", "Burst")
			if err != nil {
				return nil, err
			}
			st.ceil = &cg
		}
		s.tenants = append(s.tenants, st)
	}
	return s, nil
}

// Tenant returns the handle of tenant id, or false if id is unknown.
func (f *Fair) Tenant(id string) (*FairTenant, bool) {
	i, ok := f.ids[id]
	if !ok {
		return nil, false
	}
	return f.handles[i], true
}

// WaitN blocks until tenant id may use n tokens. It fails with an error
// wrapping ErrUnknownTenant, ErrExceedsBurst (n > Burst), ErrInvalidN or
// ErrClosed, or with the context's error.
func (f *Fair) WaitN(ctx context.Context, id string, n int) error {
	i, ok := f.ids[id]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTenant, id)
	}
	return f.waitN(ctx, i, n)
}

// WaitN blocks until the tenant may use n tokens; see Fair.WaitN.
func (t *FairTenant) WaitN(ctx context.Context, n int) error { return t.f.waitN(ctx, t.i, n) }

// Burst returns the scheduler's Burst, the largest n WaitN accepts.
func (t *FairTenant) Burst() int { return t.f.s.g.burst }

func (f *Fair) waitN(ctx context.Context, i, n int) error {
	switch {
	case n < 0:
		return fmt.Errorf("%w: %d", ErrInvalidN, n)
	case n > f.s.g.burst:
		return fmt.Errorf("%w: n=%d, burst=%d", ErrExceedsBurst, n, f.s.g.burst)
	case n == 0:
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	fw := f.s.newWaiter(i, n) // on the stack: the fast path allocates nothing
	if f.s.tryNow(&fw, f.clk.nowNs()) {
		f.mu.Unlock()
		return nil
	}
	w := &fwaiter{}
	*w = fw
	w.ready = make(chan struct{})
	f.s.push(w)
	f.mu.Unlock()
	f.poke()

	select {
	case <-w.ready:
		return w.err
	case <-ctx.Done():
	}
	f.mu.Lock()
	if w.done {
		f.mu.Unlock()
		return w.err // served (or closed) while we were giving up
	}
	f.s.remove(w)
	f.mu.Unlock()
	f.poke() // the head may have changed
	return ctx.Err()
}

func (f *Fair) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *Fair) run() {
	defer close(f.exited)
	timer := newStoppedTimer()
	for {
		f.mu.Lock()
		now := f.clk.nowNs()
		next, pending := f.s.dispatch(now, func(w *fwaiter) {
			w.done = true
			close(w.ready)
		})
		f.mu.Unlock()
		var tc <-chan struct{}
		if pending {
			tc = timer.after(next - now)
		}
		select {
		case <-f.wake:
		case <-tc:
		case <-f.done:
			timer.stop()
			return
		}
	}
}

// Close stops the scheduler. Waiting and later calls fail with ErrClosed.
func (f *Fair) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.s.drain(func(w *fwaiter) {
		w.done = true
		w.err = ErrClosed
		close(w.ready)
	})
	close(f.done)
	f.mu.Unlock()
	<-f.exited
	return nil
}

// fairSched is the deterministic core of Fair: it takes explicit times and
// owns no goroutine, so tests can simulate hours of traffic in
// milliseconds. It is not safe for concurrent use.
type fairSched struct {
	g       gcra
	tat     int64
	vtime   float64
	tenants []fairState
	queued  int
}

type fairState struct {
	weight  float64
	ceil    *gcra // nil: no ceiling
	ceilTat int64
	finish  float64
	q       []*fwaiter
	head    int
}

type fwaiter struct {
	tenant   int
	n        int
	cost     int64 // global bucket time
	ceilCost int64 // ceiling bucket time
	ready    chan struct{}
	done     bool
	err      error
}

func (s *fairSched) newWaiter(i, n int) fwaiter {
	w := fwaiter{tenant: i, n: n, cost: s.g.cost(n)}
	if c := s.tenants[i].ceil; c != nil {
		w.ceilCost = c.cost(n)
	}
	return w
}

// tryNow grants w at once if nobody waits and both buckets have room.
func (s *fairSched) tryNow(w *fwaiter, now int64) bool {
	if s.queued > 0 {
		return false
	}
	t := &s.tenants[w.tenant]
	var ct int64
	if t.ceil != nil {
		var ok bool
		if ct, ok = t.ceil.take(t.ceilTat, now, w.ceilCost); !ok {
			return false
		}
	}
	nt, ok := s.g.take(s.tat, now, w.cost)
	if !ok {
		return false
	}
	s.tat = nt
	if t.ceil != nil {
		t.ceilTat = ct
	}
	s.serve(t, w)
	s.rebase()
	return true
}

func (s *fairSched) serve(t *fairState, w *fwaiter) {
	start := math.Max(s.vtime, t.finish)
	s.vtime = start
	t.finish = start + float64(w.n)/t.weight
}

// rebase keeps the virtual clock small while nobody waits.
func (s *fairSched) rebase() {
	if s.queued > 0 || s.vtime < 1e12 {
		return
	}
	for i := range s.tenants {
		s.tenants[i].finish = math.Max(0, s.tenants[i].finish-s.vtime)
	}
	s.vtime = 0
}

func (s *fairSched) push(w *fwaiter) {
	t := &s.tenants[w.tenant]
	t.q = append(t.q, w)
	s.queued++
}

func (s *fairSched) remove(w *fwaiter) {
	t := &s.tenants[w.tenant]
	for j := t.head; j < len(t.q); j++ {
		if t.q[j] == w {
			copy(t.q[j:], t.q[j+1:])
			t.q[len(t.q)-1] = nil
			t.q = t.q[:len(t.q)-1]
			s.queued--
			break
		}
	}
	t.compact()
}

func (t *fairState) pop() *fwaiter {
	w := t.q[t.head]
	t.q[t.head] = nil
	t.head++
	t.compact()
	return w
}

func (t *fairState) compact() {
	if t.head == len(t.q) {
		t.q, t.head = t.q[:0], 0
	} else if t.head > 64 && t.head*2 > len(t.q) {
		n := copy(t.q, t.q[t.head:])
		clear(t.q[n:])
		t.q, t.head = t.q[:n], 0
	}
}

// dispatch grants every waiter that may go at now, in fair order, calling
// grant for each. If some remain, it returns the time at which dispatch
// should run again and true.
func (s *fairSched) dispatch(now int64, grant func(*fwaiter)) (next int64, pending bool) {
	for s.queued > 0 {
		best, bestStart := -1, 0.0
		next = math.MaxInt64
		for i := range s.tenants {
			t := &s.tenants[i]
			if t.head == len(t.q) {
				continue
			}
			if t.ceil != nil {
				w := t.q[t.head]
				if _, ok := t.ceil.take(t.ceilTat, now, w.ceilCost); !ok {
					next = min(next, max(t.ceilTat, now)+w.ceilCost-t.ceil.tau)
					continue
				}
			}
			if st := math.Max(s.vtime, t.finish); best < 0 || st < bestStart {
				best, bestStart = i, st
			}
		}
		if best < 0 {
			return next, true
		}
		t := &s.tenants[best]
		w := t.q[t.head]
		nt, ok := s.g.take(s.tat, now, w.cost)
		if !ok {
			return min(next, max(s.tat, now)+w.cost-s.g.tau), true
		}
		s.tat = nt
		if t.ceil != nil {
			t.ceilTat, _ = t.ceil.take(t.ceilTat, now, w.ceilCost)
		}
		s.serve(t, w)
		t.pop()
		s.queued--
		grant(w)
	}
	s.rebase()
	return 0, false
}

// drain removes every waiter, calling f for each.
func (s *fairSched) drain(f func(*fwaiter)) {
	for i := range s.tenants {
		t := &s.tenants[i]
		for t.head < len(t.q) {
			f(t.pop())
			s.queued--
		}
	}
}
