package ratelimit

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"zero rate", Config{Rate: 0, Burst: 1}, "Rate"},
		{"negative rate", Config{Rate: -1, Burst: 1}, "Rate"},
		{"NaN rate", Config{Rate: math.NaN(), Burst: 1}, "Rate"},
		{"infinite rate", Config{Rate: math.Inf(1), Burst: 1}, "Rate"},
		{"absurd rate", Config{Rate: 1e300, Burst: 1}, "Rate"},
		{"tiny rate", Config{Rate: 1e-300, Burst: 1}, "Rate"},
		{"zero burst", Config{Rate: 1, Burst: 0}, "Burst"},
		{"negative burst", Config{Rate: 1, Burst: -5}, "Burst"},
		{"absurd burst", Config{Rate: 1, Burst: math.MaxInt}, "Burst"},
		{"refill too long", Config{Rate: 1e-3, Burst: 1 << 40}, "Rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(tt.cfg)
			require.Error(t, err)
			assert.Nil(t, l)
			var ce *ConfigError
			require.True(t, errors.As(err, &ce), "error %v is not a *ConfigError", err)
			assert.Equal(t, tt.field, ce.Field)
			assert.Contains(t, err.Error(), "ratelimit: invalid "+tt.field)
		})
	}
}

func TestLimiterBurstSemantics(t *testing.T) {
	l, err := New(Config{Rate: 10, Burst: 5, Now: fixedClock(t0)})
	require.NoError(t, err)
	assert.Equal(t, 10.0, l.Rate())
	assert.Equal(t, 5, l.Burst())
	assert.Equal(t, 5.0, l.Tokens(t0), "a new bucket is full")

	for i := range 5 {
		assert.True(t, l.AllowN(t0, 1), "token %d of the burst", i)
	}
	assert.False(t, l.AllowN(t0, 1), "burst exhausted")
	assert.False(t, l.Allow(), "Allow uses Config.Now")

	// One token every 100ms, continuously.
	assert.False(t, l.AllowN(t0.Add(99*time.Millisecond), 1))
	assert.True(t, l.AllowN(t0.Add(100*time.Millisecond), 1))
	assert.False(t, l.AllowN(t0.Add(100*time.Millisecond), 1))

	// After Burst/Rate = 500ms idle, the bucket is full again, not fuller.
	t1 := t0.Add(10 * time.Second)
	assert.InDelta(t, 5.0, l.Tokens(t1), 1e-9)
	assert.True(t, l.AllowN(t1, 5))
	assert.False(t, l.AllowN(t1, 1))

	// n > Burst never passes; n = 0 always does; negative n never.
	t2 := t1.Add(time.Hour)
	assert.False(t, l.AllowN(t2, 6))
	assert.True(t, l.AllowN(t2, 0))
	assert.False(t, l.AllowN(t2, -1))
	assert.True(t, l.AllowN(t2, 5), "refused requests take nothing")
}

func TestLimiterTimeGoingBackwards(t *testing.T) {
	l, err := New(Config{Rate: 1, Burst: 2})
	require.NoError(t, err)
	require.True(t, l.AllowN(t0, 2))
	// A stale reading is judged at that instant: the bucket is emptier
	// then, so nothing more passes.
	for i := range 10 {
		assert.False(t, l.AllowN(t0.Add(-time.Duration(i)*time.Second), 1))
	}
	assert.True(t, l.AllowN(t0.Add(time.Second), 1))
}

func TestLimiterExtremeTimes(t *testing.T) {
	l, err := New(Config{Rate: 1e9, Burst: 1})
	require.NoError(t, err)
	far := []time.Time{{}, time.Unix(math.MinInt64/2, 0), time.Unix(math.MaxInt64/2, 0), t0.AddDate(-500, 0, 0), t0.AddDate(500, 0, 0)}
	for _, tm := range far {
		assert.NotPanics(t, func() {
			l.AllowN(tm, 1)
			l.Tokens(tm)
		})
	}
	// After the far future, the near present is "in the past": denied,
	// never admitted by an overflow.
	assert.False(t, l.AllowN(t0, 1))
}

// TestLimiterContentionBound hammers one limiter from many goroutines with
// the real clock and checks the GCRA bound: over the whole run no more than
// Burst + Rate*elapsed requests pass (golang/go#71360 let through 5000x).
func TestLimiterContentionBound(t *testing.T) {
	const rate, burst = 2000.0, 50
	l, err := New(Config{Rate: rate, Burst: burst})
	require.NoError(t, err)
	var admitted atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for time.Since(start) < 300*time.Millisecond {
				if l.Allow() {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	bound := burst + rate*elapsed.Seconds() + 1
	t.Logf("admitted %d in %v, bound %.0f", admitted.Load(), elapsed, bound)
	assert.LessOrEqual(t, float64(admitted.Load()), bound)
	assert.Positive(t, admitted.Load())
}

// TestLimiterContentionExplicitTimes reproduces the shape of #71360
// deterministically: goroutines present instants out of order (stale
// readings); the admitted count must stay within Burst + Rate*(span).
func TestLimiterContentionExplicitTimes(t *testing.T) {
	const rate, burst = 100.0, 10
	l, err := New(Config{Rate: rate, Burst: burst})
	require.NoError(t, err)
	const span = time.Second
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 2000 {
				// Each goroutine walks the span in its own order,
				// some backwards.
				off := time.Duration((i*7919+g*104729)%2000) * span / 2000
				if l.AllowN(t0.Add(off), 1) {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	bound := int64(burst + rate*span.Seconds())
	assert.LessOrEqual(t, admitted.Load(), bound)
	assert.GreaterOrEqual(t, admitted.Load(), int64(burst))
}

func TestLimiterWaitN(t *testing.T) {
	l, err := New(Config{Rate: 50, Burst: 10})
	require.NoError(t, err)
	ctx := context.Background()

	require.NoError(t, l.WaitN(ctx, 10), "a full bucket does not wait")
	require.NoError(t, l.WaitN(ctx, 0))
	require.ErrorIs(t, l.WaitN(ctx, 11), ErrExceedsBurst)
	require.ErrorIs(t, l.WaitN(ctx, -1), ErrInvalidN)

	// The next 10 tokens take 200ms: a deadline of 1ms is refused at once
	// and takes nothing.
	before := l.Tokens(time.Now())
	dctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	require.ErrorIs(t, l.WaitN(dctx, 10), ErrDeadline)
	assert.GreaterOrEqual(t, l.Tokens(time.Now()), before)

	require.NoError(t, l.Wait(ctx))

	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	require.ErrorIs(t, l.WaitN(cctx, 1), context.Canceled)
}

func TestLimiterWaitNCancelGivesBack(t *testing.T) {
	l, err := New(Config{Rate: 1, Burst: 1})
	require.NoError(t, err)
	require.True(t, l.AllowN(time.Now(), 1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.WaitN(ctx, 1) }()
	// The waiter has reserved the next token (about 1s away): another
	// WaitN would now need about 2s.
	require.Eventually(t, func() bool { return l.tat.Load() > l.clk.nowNs()+int64(1500*time.Millisecond) }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Less(t, l.tat.Load(), l.clk.nowNs()+int64(1100*time.Millisecond), "the reservation was given back")
}

func TestEvery(t *testing.T) {
	assert.Equal(t, 10.0, Every(100*time.Millisecond))
	assert.Equal(t, 0.0, Every(0))
	assert.Equal(t, 0.0, Every(-time.Second))
}

func TestHighRateResolution(t *testing.T) {
	// 1 Gbit/s in bytes: 8ns per byte, kept exactly.
	l, err := New(Config{Rate: 125e6, Burst: 64 << 10})
	require.NoError(t, err)
	admitted := 0
	for i := range 10000 { // every 100µs, well within Burst/Rate = 524µs
		for l.AllowN(t0.Add(time.Duration(i)*100*time.Microsecond), 1500) {
			admitted += 1500
		}
	}
	// 999.9ms worth plus one burst.
	assert.InDelta(t, 125e6*0.9999+64<<10, float64(admitted), 1500)
}
