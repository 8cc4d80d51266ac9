package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jain returns Jain's fairness index of xs: 1 when all are equal, 1/n
// when one gets everything.
func jain(xs []float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 1
	}
	return sum * sum / (float64(len(xs)) * sq)
}

// simulate drives a fairSched with a virtual clock. Tenant i offers
// demand[i] tokens per second in requests of size tokens (a demand of +Inf
// keeps it backlogged). It returns the rate each tenant was granted
// between warm and end.
func simulate(t *testing.T, cfg FairConfig, demand []float64, size int, warm, end time.Duration) []float64 {
	t.Helper()
	s, err := newFairSched(cfg)
	require.NoError(t, err)
	n := len(cfg.Tenants)
	require.Len(t, demand, n)
	nextArrival := make([]int64, n)
	period := make([]int64, n)
	for i, d := range demand {
		if d <= 0 {
			nextArrival[i] = math.MaxInt64
			continue
		}
		period[i] = max(1, int64(float64(size)/d*1e9))
		nextArrival[i] = int64(i) * period[i] / int64(n) // spread phases
	}
	granted := make([]float64, n)
	count := func(w *fwaiter, now int64) {
		if now >= int64(warm) {
			granted[w.tenant] += float64(w.n)
		}
	}
	nextDispatch := int64(math.MaxInt64)
	for now := int64(0); now < int64(end); {
		for i := range n {
			for nextArrival[i] <= now {
				w := new(fwaiter)
				*w = s.newWaiter(i, size)
				if s.tryNow(w, now) {
					count(w, now)
				} else {
					s.push(w)
					nextDispatch = now
				}
				nextArrival[i] += period[i]
			}
		}
		if nextDispatch <= now {
			next, pending := s.dispatch(now, func(w *fwaiter) { count(w, now) })
			nextDispatch = math.MaxInt64
			if pending {
				nextDispatch = max(next, now+1)
			}
		}
		now = nextDispatch
		for _, a := range nextArrival {
			now = min(now, a)
		}
	}
	secs := (end - warm).Seconds()
	for i := range granted {
		granted[i] /= secs
	}
	return granted
}

func tenants(n int) []FairTenantConfig {
	ts := make([]FairTenantConfig, n)
	for i := range ts {
		ts[i] = FairTenantConfig{ID: fmt.Sprintf("tenant-%02d", i)}
	}
	return ts
}

// TestFairJain33Tenants: 33 tenants with unequal demand; 30 of them
// backlogged, at 1.5x to 10x their share, and 3 light ones below it.
func TestFairJain33Tenants(t *testing.T) {
	const capacity = 1e6
	cfg := FairConfig{Capacity: capacity, Burst: 10_000, Tenants: tenants(33)}
	share := capacity / 33
	demand := make([]float64, 33)
	for i := range 30 {
		demand[i] = share * (1.5 + 0.3*float64(i))
	}
	for i := 30; i < 33; i++ {
		demand[i] = share * 0.3
	}
	got := simulate(t, cfg, demand, 1000, time.Second, 11*time.Second)

	var total float64
	for _, g := range got {
		total += g
	}
	backlogged := got[:30]
	j := jain(backlogged)
	t.Logf("Jain index among the 30 backlogged tenants: %.5f; total %.0f of %.0f", j, total, capacity)
	assert.GreaterOrEqual(t, j, 0.98)
	for i := 30; i < 33; i++ {
		assert.InEpsilon(t, demand[i], got[i], 0.02, "light tenant %d gets all it asks", i)
	}
	assert.InEpsilon(t, capacity, total, 0.01, "work-conserving: the capacity is used")
	lent := (capacity - 3*0.3*share) / 30
	for i := range 30 {
		assert.GreaterOrEqual(t, got[i], share, "tenant %d gets at least its share", i)
		assert.InEpsilon(t, lent, got[i], 0.03, "tenant %d gets the idle capacity lent to it", i)
	}
}

func TestFairWeightsAndCeiling(t *testing.T) {
	const capacity = 1e6
	ts := tenants(33)
	var wsum float64
	for i := range ts {
		ts[i].Weight = float64(1 + i%4)
		wsum += ts[i].Weight
	}
	// Tenant 0 (weight 1) is capped at half its share.
	ceiling := capacity / wsum / 2
	ts[0].Ceiling = ceiling
	cfg := FairConfig{Capacity: capacity, Burst: 10_000, Tenants: ts}
	demand := make([]float64, 33)
	for i := range demand {
		demand[i] = capacity / 10 // above every share: all backlogged
	}
	got := simulate(t, cfg, demand, 1000, time.Second, 11*time.Second)

	// Over the 10s window the ceiling bucket admits at most
	// ceiling*10s + Burst.
	assert.LessOrEqual(t, got[0], ceiling+10_000/10.0, "tenant 0 is held to its ceiling")
	assert.GreaterOrEqual(t, got[0], ceiling-1000/10.0, "and gets it")
	norm := make([]float64, 0, 32)
	for i := 1; i < 33; i++ {
		norm = append(norm, got[i]/ts[i].Weight)
		assert.GreaterOrEqual(t, got[i], capacity*ts[i].Weight/wsum, "tenant %d gets at least its weighted share", i)
	}
	j := jain(norm)
	t.Logf("Jain index of rate/weight among the 32 uncapped tenants: %.5f", j)
	assert.GreaterOrEqual(t, j, 0.98)
}

func TestFairLendsIdleCapacity(t *testing.T) {
	const capacity = 1e6
	cfg := FairConfig{Capacity: capacity, Burst: 10_000, Tenants: tenants(33)}
	demand := make([]float64, 33)
	demand[3], demand[17] = capacity, capacity/4 // others idle
	got := simulate(t, cfg, demand, 1000, time.Second, 6*time.Second)
	assert.InEpsilon(t, capacity/4, got[17], 0.02)
	assert.InEpsilon(t, capacity*3/4, got[3], 0.02, "tenant 3 borrows everything left")
}

func TestNewFairRefusesBadConfig(t *testing.T) {
	ok := []FairTenantConfig{{ID: "a"}}
	tests := []struct {
		name  string
		cfg   FairConfig
		field string
	}{
		{"zero capacity", FairConfig{Burst: 1, Tenants: ok}, "Capacity"},
		{"zero burst", FairConfig{Capacity: 1, Tenants: ok}, "Burst"},
		{"no tenants", FairConfig{Capacity: 1, Burst: 1}, "Tenants"},
		{"empty id", FairConfig{Capacity: 1, Burst: 1, Tenants: []FairTenantConfig{{}}}, "Tenants[0].ID"},
		{"duplicate id", FairConfig{Capacity: 1, Burst: 1, Tenants: []FairTenantConfig{{ID: "a"}, {ID: "a"}}}, "Tenants[1].ID"},
		{"negative weight", FairConfig{Capacity: 1, Burst: 1, Tenants: []FairTenantConfig{{ID: "a", Weight: -1}}}, "Tenants[0].Weight"},
		{"NaN weight", FairConfig{Capacity: 1, Burst: 1, Tenants: []FairTenantConfig{{ID: "a", Weight: math.NaN()}}}, "Tenants[0].Weight"},
		{"absurd weight", FairConfig{Capacity: 1, Burst: 1, Tenants: []FairTenantConfig{{ID: "a", Weight: 1e9}}}, "Tenants[0].Weight"},
		{"negative ceiling", FairConfig{Capacity: 1, Burst: 1, Tenants: []FairTenantConfig{{ID: "a", Ceiling: -1}}}, "Tenants[0].Ceiling"},
		{"ceiling above capacity", FairConfig{Capacity: 1, Burst: 1, Tenants: []FairTenantConfig{{ID: "a", Ceiling: 2}}}, "Tenants[0].Ceiling"},
		{"tiny ceiling", FairConfig{Capacity: 1, Burst: 1 << 30, Tenants: []FairTenantConfig{{ID: "a", Ceiling: 1e-9}}}, "Tenants[0].Ceiling"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewFair(tt.cfg)
			var ce *ConfigError
			require.True(t, errors.As(err, &ce), "got %v", err)
			assert.Equal(t, tt.field, ce.Field)
		})
	}
}

func TestFairWaitN(t *testing.T) {
	f, err := NewFair(FairConfig{Capacity: 1e6, Burst: 1000, Tenants: []FairTenantConfig{{ID: "a"}, {ID: "b", Ceiling: 1000}}})
	require.NoError(t, err)
	defer f.Close()
	ctx := context.Background()
	require.NoError(t, f.WaitN(ctx, "a", 1000), "fast path")
	require.NoError(t, f.WaitN(ctx, "a", 0))
	require.ErrorIs(t, f.WaitN(ctx, "zz", 1), ErrUnknownTenant)
	require.ErrorIs(t, f.WaitN(ctx, "a", 1001), ErrExceedsBurst)
	require.ErrorIs(t, f.WaitN(ctx, "a", -1), ErrInvalidN)
	_, found := f.Tenant("zz")
	assert.False(t, found)

	// b's ceiling is 1000 tokens/s: its second 1000 waits ~1s; cancel it.
	b, found := f.Tenant("b")
	require.True(t, found)
	assert.Equal(t, 1000, b.Burst())
	require.NoError(t, b.WaitN(ctx, 1000))
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, b.WaitN(cctx, 1000), context.DeadlineExceeded)
	f.mu.Lock()
	assert.Zero(t, f.s.queued, "the cancelled waiter left the queue")
	f.mu.Unlock()
	// Meanwhile a is not held up by b.
	require.NoError(t, f.WaitN(ctx, "a", 500))
}

func TestFairCloseUnblocks(t *testing.T) {
	f, err := NewFair(FairConfig{Capacity: 1, Burst: 1, Tenants: []FairTenantConfig{{ID: "a"}}})
	require.NoError(t, err)
	require.NoError(t, f.WaitN(context.Background(), "a", 1))
	done := make(chan error)
	go func() { done <- f.WaitN(context.Background(), "a", 1) }()
	require.Eventually(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.s.queued == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, f.Close())
	require.ErrorIs(t, <-done, ErrClosed)
	require.ErrorIs(t, f.WaitN(context.Background(), "a", 1), ErrClosed)
	require.NoError(t, f.Close(), "Close twice")
}

// TestFairLive runs the real scheduler with goroutines. Shares depend on
// scheduling, so the check is loose: nobody is starved.
func TestFairLive(t *testing.T) {
	f, err := NewFair(FairConfig{Capacity: 2e6, Burst: 20_000, Tenants: tenants(4)})
	require.NoError(t, err)
	defer f.Close()
	var got [4]atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 4 {
		for range 1 + 3*i { // unequal demand: 1, 4, 7, 10 senders
			wg.Go(func() {
				for f.WaitN(ctx, fmt.Sprintf("tenant-%02d", i), 1000) == nil {
					got[i].Add(1000)
				}
			})
		}
	}
	wg.Wait()
	xs := make([]float64, 4)
	for i := range xs {
		xs[i] = float64(got[i].Load())
	}
	t.Logf("granted %v, Jain %.3f", xs, jain(xs))
	for i := range xs {
		assert.Positive(t, xs[i], "tenant %d was served", i)
	}
}
