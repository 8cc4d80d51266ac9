package ratelimit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewConcurrencyRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   ConcurrencyConfig
		field string
	}{
		{"zero in flight", ConcurrencyConfig{}, "MaxInFlight"},
		{"absurd in flight", ConcurrencyConfig{MaxInFlight: 1 << 40}, "MaxInFlight"},
		{"negative queue", ConcurrencyConfig{MaxInFlight: 1, MaxQueue: -1}, "MaxQueue"},
		{"negative timeout", ConcurrencyConfig{MaxInFlight: 1, QueueTimeout: -1}, "QueueTimeout"},
		{"negative keys", ConcurrencyConfig{MaxInFlight: 1, MaxKeys: -1}, "MaxKeys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewConcurrency[string](tt.cfg)
			var ce *ConfigError
			require.True(t, errors.As(err, &ce), "got %v", err)
			assert.Equal(t, tt.field, ce.Field)
		})
	}
}

func TestConcurrencyNoQueue(t *testing.T) {
	c, err := NewConcurrency[string](ConcurrencyConfig{MaxInFlight: 2, MaxKeys: 2})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, c.Acquire(ctx, "a"))
	require.True(t, c.TryAcquire("a"))
	assert.False(t, c.TryAcquire("a"))
	require.ErrorIs(t, c.Acquire(ctx, "a"), ErrQueueFull)
	assert.Equal(t, 2, c.InFlight("a"))

	require.NoError(t, c.Acquire(ctx, "b"))
	require.ErrorIs(t, c.Acquire(ctx, "c"), ErrTooManyKeys)
	assert.False(t, c.TryAcquire("c"))

	c.Release("a")
	assert.Equal(t, 1, c.InFlight("a"))
	c.Release("a")
	c.Release("a") // extra release: no effect
	assert.Equal(t, 0, c.InFlight("a"))
	require.NoError(t, c.Acquire(ctx, "c"), "a's entry was forgotten, room for c")
}

func TestConcurrencyQueueFIFOAndHandOver(t *testing.T) {
	c, err := NewConcurrency[string](ConcurrencyConfig{MaxInFlight: 1, MaxQueue: 3})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, c.Acquire(ctx, "k"))

	order := make(chan int, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			require.NoError(t, c.Acquire(ctx, "k"))
			order <- i
		})
		require.Eventually(t, func() bool { return c.Waiting("k") == i+1 }, 5*time.Second, time.Millisecond)
	}
	require.ErrorIs(t, c.Acquire(ctx, "k"), ErrQueueFull)
	assert.False(t, c.TryAcquire("k"), "TryAcquire does not jump the queue")
	for want := range 3 {
		c.Release("k")
		assert.Equal(t, want, <-order)
		assert.Equal(t, 1, c.InFlight("k"), "the slot was handed over")
	}
	wg.Wait()
	c.Release("k")
	assert.Equal(t, 0, c.InFlight("k"))
}

func TestConcurrencyQueueTimeoutAndCancel(t *testing.T) {
	c, err := NewConcurrency[string](ConcurrencyConfig{MaxInFlight: 1, MaxQueue: 5, QueueTimeout: 20 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, c.Acquire(context.Background(), "k"))
	require.ErrorIs(t, c.Acquire(context.Background(), "k"), ErrQueueTimeout)
	assert.Equal(t, 0, c.Waiting("k"))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, c.Acquire(ctx, "k"), context.Canceled)

	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Acquire(ctx, "k") }()
	require.Eventually(t, func() bool { return c.Waiting("k") == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Equal(t, 0, c.Waiting("k"))
	assert.Equal(t, 1, c.InFlight("k"))
}

func TestConcurrencyNeverExceedsMax(t *testing.T) {
	const maxInFlight = 3
	c, err := NewConcurrency[int](ConcurrencyConfig{MaxInFlight: maxInFlight, MaxQueue: 100})
	require.NoError(t, err)
	var inFlight, peak atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 200 {
				if err := c.Acquire(context.Background(), 7); err != nil {
					continue
				}
				n := inFlight.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				inFlight.Add(-1)
				c.Release(7)
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, peak.Load(), int64(maxInFlight))
	assert.Equal(t, 0, c.InFlight(7))
}
