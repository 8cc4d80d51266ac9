package ratelimit

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Limit is a rate and burst passed to a Store with each request, with the
// meaning of Config.Rate and Config.Burst.
type Limit struct {
	Rate  float64
	Burst int
}

// Result is a Store's decision.
type Result struct {
	// Allowed reports whether the tokens were taken.
	Allowed bool
	// Remaining is the number of whole tokens left in the bucket after
	// the decision.
	Remaining int
	// RetryAfter is, when Allowed is false, how long until the tokens
	// asked for are available; zero when Allowed is true.
	RetryAfter time.Duration
}

// Store keeps GCRA buckets by key for limiters that several nodes share.
// MemoryStore is the in-process default; RedisStore shares state between
// nodes. Implementations must be safe for concurrent use.
type Store interface {
	// Take decides whether key may take n tokens of a bucket with limit
	// lim, and takes them if so. An error means no decision was made
	// (the store is unreachable, or the arguments are invalid).
	Take(ctx context.Context, key string, lim Limit, n int) (Result, error)
}

// Forgetter is implemented by stores that can drop a key's bucket, so
// that its next request starts with a full burst (Shared.Forget).
type Forgetter interface {
	Forget(ctx context.Context, key string) error
}

var (
	_ Store     = (*MemoryStore)(nil)
	_ Store     = (*RedisStore)(nil)
	_ Forgetter = (*MemoryStore)(nil)
	_ Forgetter = (*RedisStore)(nil)
)

// checkTake validates a Store request and returns its GCRA parameters.
func checkTake(lim Limit, n int) (gcra, error) {
	g, err := newGCRA(lim.Rate, lim.Burst, "Limit.Rate", "Limit.Burst")
	if err != nil {
		return g, err
	}
	if n < 0 {
		return g, fmt.Errorf("%w: %d", ErrInvalidN, n)
	}
	if n > lim.Burst {
		return g, fmt.Errorf("%w: n=%d, burst=%d", ErrExceedsBurst, n, lim.Burst)
	}
	return g, nil
}

// MemoryStoreConfig configures a MemoryStore.
type MemoryStoreConfig struct {
	// MaxKeys bounds the number of keys kept, with the eviction policy of
	// Keyed. Zero means DefaultMaxKeys.
	MaxKeys int
	// Now is the store's clock. Nil means time.Now.
	Now func() time.Time
}

// MemoryStore is a Store in process memory: the default when one node
// enforces a limit alone. The zero MemoryStore is not usable; create one
// with NewMemoryStore. It is safe for concurrent use.
type MemoryStore struct {
	clk clock
	t   *table[string]
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(cfg MemoryStoreConfig) (*MemoryStore, error) {
	maxKeys, err := checkMaxKeys(cfg.MaxKeys)
	if err != nil {
		return nil, err
	}
	return &MemoryStore{clk: newClock(cfg.Now), t: newTable[string](maxKeys)}, nil
}

// Take implements Store. It fails only on invalid arguments.
func (m *MemoryStore) Take(_ context.Context, key string, lim Limit, n int) (Result, error) {
	g, err := checkTake(lim, n)
	if err != nil {
		return Result{}, err
	}
	now := m.clk.nowNs()
	cost := g.cost(n)
	tat, ok := m.t.take(key, &g, now, cost)
	return result(&g, tat, now, cost, ok), nil
}

// Forget implements Forgetter: key starts again with a full bucket.
func (m *MemoryStore) Forget(_ context.Context, key string) error {
	m.t.remove(key)
	return nil
}

func result(g *gcra, tat, now, cost int64, ok bool) Result {
	r := Result{Allowed: ok, Remaining: int(math.Floor(g.tokens(tat, now) + 1e-9))}
	if !ok {
		r.RetryAfter = time.Duration(max(tat, now) + cost - g.tau - now)
	}
	return r
}
