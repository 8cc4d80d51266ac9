package ratelimit

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewKeyedRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   KeyedConfig
		field string
	}{
		{"zero rate", KeyedConfig{Burst: 1}, "Rate"},
		{"zero burst", KeyedConfig{Rate: 1}, "Burst"},
		{"negative max keys", KeyedConfig{Rate: 1, Burst: 1, MaxKeys: -1}, "MaxKeys"},
		{"absurd max keys", KeyedConfig{Rate: 1, Burst: 1, MaxKeys: 1 << 40}, "MaxKeys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewKeyed[string](tt.cfg)
			var ce *ConfigError
			require.True(t, errors.As(err, &ce), "got %v", err)
			assert.Equal(t, tt.field, ce.Field)
		})
	}
}

func TestKeyedIndependentBuckets(t *testing.T) {
	k, err := NewKeyed[netip.Addr](KeyedConfig{Rate: 1, Burst: 3, Now: fixedClock(t0)})
	require.NoError(t, err)
	a, b := netip.MustParseAddr("127.0.1.5"), netip.MustParseAddr("127.0.2.5")
	for range 3 {
		assert.True(t, k.Allow(a))
	}
	assert.False(t, k.Allow(a))
	assert.True(t, k.Allow(b), "b has its own bucket")
	assert.Equal(t, 0.0, k.Tokens(t0, a))
	assert.Equal(t, 2.0, k.Tokens(t0, b))
	assert.Equal(t, 3.0, k.Tokens(t0, netip.MustParseAddr("::1")), "unknown keys have a full bucket")
	assert.True(t, k.AllowN(t0.Add(time.Second), a, 1))
	assert.False(t, k.AllowN(t0.Add(time.Second), a, 4), "n > Burst")
	assert.False(t, k.AllowN(t0.Add(time.Second), a, -1))
	assert.True(t, k.AllowN(t0.Add(time.Second), a, 0))
	assert.Equal(t, 2, k.Len())
	k.Forget(a)
	assert.Equal(t, 1, k.Len())
	assert.True(t, k.AllowN(t0, a, 3), "forgotten key is full again")
	assert.Equal(t, 1.0, k.Rate())
	assert.Equal(t, 3, k.Burst())
}

// TestKeyedEvictionBound floods a small table with many times its capacity
// of keys: it never holds more than MaxKeys, and an abusive key that keeps
// sending stays limited throughout (eviction does not let everyone
// through).
func TestKeyedEvictionBound(t *testing.T) {
	for _, maxKeys := range []int{1, 7, 100, 4096} {
		t.Run(fmt.Sprint(maxKeys), func(t *testing.T) {
			k, err := NewKeyed[string](KeyedConfig{Rate: 1, Burst: 2, MaxKeys: maxKeys})
			require.NoError(t, err)
			now := t0
			for i := range 20 * maxKeys {
				now = now.Add(time.Microsecond)
				k.AllowN(now, fmt.Sprint("flood-", i), 1)
				if i%97 == 0 {
					require.LessOrEqual(t, k.Len(), maxKeys)
				}
			}
			assert.LessOrEqual(t, k.Len(), maxKeys)
			assert.Positive(t, k.Len())
		})
	}
}

func TestKeyedAbuserStaysLimitedDuringFlood(t *testing.T) {
	k, err := NewKeyed[string](KeyedConfig{Rate: 1, Burst: 5, MaxKeys: 64 * 64})
	require.NoError(t, err)
	now := t0
	for k.AllowN(now, "abuser", 1) {
	}
	admitted := 0
	// 100k new keys, each sending once, within 50ms: none of the
	// abuser's bucket refills meanwhile (1 token per second).
	for i := range 100_000 {
		now = now.Add(500 * time.Nanosecond)
		k.AllowN(now, fmt.Sprint("bot-", i), 1)
		if i%8 == 0 && k.AllowN(now, "abuser", 1) {
			admitted++
		}
	}
	assert.Zero(t, admitted, "the abuser kept its state through the flood")
	assert.LessOrEqual(t, k.Len(), 64*64)
}

func TestKeyedEvictsRefilledKeysFirst(t *testing.T) {
	// One shard of 64 keys.
	k, err := NewKeyed[int](KeyedConfig{Rate: 1000, Burst: 1, MaxKeys: 64})
	require.NoError(t, err)
	require.Len(t, k.t.shards, 1)
	// Key 0 is limited at t0+1s (empty bucket for 1ms); keys 1..63
	// were used long before and are full again.
	for i := 1; i < 64; i++ {
		require.True(t, k.AllowN(t0, i, 1))
		k.AllowN(t0, i, 1) // reference them again
	}
	t1 := t0.Add(time.Second)
	require.True(t, k.AllowN(t1, 0, 1))
	for i := 100; i < 163; i++ {
		require.True(t, k.AllowN(t1, i, 1))
	}
	assert.Equal(t, 64, k.Len())
	assert.False(t, k.AllowN(t1, 0, 1), "key 0 was kept: only refilled keys were evicted")
}

func TestKeyedConcurrentBound(t *testing.T) {
	const keys, burst = 16, 4
	k, err := NewKeyed[int](KeyedConfig{Rate: 1, Burst: burst, MaxKeys: 1024})
	require.NoError(t, err)
	var admitted [keys]atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 5000 {
				key := (i + g) % keys
				if k.AllowN(t0, key, 1) {
					admitted[key].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for i := range keys {
		assert.Equal(t, int64(burst), admitted[i].Load(), "key %d", i)
	}
}
