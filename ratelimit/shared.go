package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"
)

// SharedConfig configures a Shared limiter.
type SharedConfig struct {
	// Store keeps the shared state. Required: a *RedisStore to share a
	// limit between nodes, or a *MemoryStore.
	Store Store
	// Limit is the limit per key, enforced by all the nodes together.
	// Required, as for Config.Rate and Config.Burst.
	Limit Limit
	// Nodes is the number of nodes sharing the limit. While the store is
	// unreachable each node enforces Limit/Nodes locally (Burst rounded
	// up), so the nodes together stay near Limit. Zero means 1.
	Nodes int
	// Timeout bounds each call to the store. Zero means 50ms.
	Timeout time.Duration
	// RetryInterval is how often, while the store is unreachable, one
	// request tries it again. Zero means 1s.
	RetryInterval time.Duration
	// MaxKeys bounds the keys of the local fallback limiter, as
	// KeyedConfig.MaxKeys. Zero means DefaultMaxKeys.
	MaxKeys int
	// Logger receives one warning when the store becomes unreachable and
	// one notice when it is back. Nil discards them.
	Logger *slog.Logger
	// Now is the clock of the local fallback. Nil means time.Now.
	Now func() time.Time
}

// Shared is a keyed limiter whose state lives in a Store, so that several
// nodes enforce one limit together. It never fails: when the store does
// not answer (an error or a timeout), Shared logs it once, decides with a
// local Keyed limiter of Limit/Nodes, and, every RetryInterval, lets one
// request try the store again; the first success switches back and logs the
// recovery. Callers are never all held up by a dead store: while degraded,
// only the probing request waits for the store.
//
// The zero Shared is not usable; create one with NewShared. A Shared is
// safe for concurrent use.
type Shared struct {
	store     Store
	lim       Limit
	timeout   time.Duration
	retry     int64
	log       *slog.Logger
	local     *Keyed[string]
	degraded  atomic.Bool
	probing   atomic.Bool
	nextProbe atomic.Int64
}

// NewShared returns a Shared limiter. It refuses an invalid configuration
// with a *ConfigError naming the field.
func NewShared(cfg SharedConfig) (*Shared, error) {
	if cfg.Store == nil {
		return nil, cfgErr("Store", "is required")
	}
	if _, err := newGCRA(cfg.Limit.Rate, cfg.Limit.Burst, "Limit.Rate", "Limit.Burst"); err != nil {
		return nil, err
	}
	switch {
	case cfg.Nodes < 0 || cfg.Nodes > 10000:
		return nil, cfgErr("Nodes", "must be in [0, 10000], got %d", cfg.Nodes)
	case cfg.Timeout < 0:
		return nil, cfgErr("Timeout", "must be >= 0, got %v", cfg.Timeout)
	case cfg.RetryInterval < 0:
		return nil, cfgErr("RetryInterval", "must be >= 0, got %v", cfg.RetryInterval)
	}
	nodes := max(cfg.Nodes, 1)
	local, err := NewKeyed[string](KeyedConfig{
		Rate:    cfg.Limit.Rate / float64(nodes),
		Burst:   int(math.Ceil(float64(cfg.Limit.Burst) / float64(nodes))),
		MaxKeys: cfg.MaxKeys,
		Now:     cfg.Now,
	})
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) && ce.Field == "Rate" {
			return nil, cfgErr("Nodes", "Limit.Rate/Nodes is invalid: %v", ce.Reason)
		}
		return nil, err
	}
	s := &Shared{
		store:   cfg.Store,
		lim:     cfg.Limit,
		timeout: cfg.Timeout,
		retry:   int64(cfg.RetryInterval),
		log:     cfg.Logger,
		local:   local,
	}
	if s.timeout == 0 {
		s.timeout = 50 * time.Millisecond
	}
	if s.retry == 0 {
		s.retry = int64(time.Second)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Allow is AllowN(ctx, key, 1).
func (s *Shared) Allow(ctx context.Context, key string) Result { return s.AllowN(ctx, key, 1) }

// AllowN decides whether key may take n tokens, and takes them if so. A
// request with n < 0 or n > Limit.Burst is denied.
func (s *Shared) AllowN(ctx context.Context, key string, n int) Result {
	if n < 0 || n > s.lim.Burst {
		return Result{}
	}
	if s.degraded.Load() {
		now := s.local.clk.nowNs()
		if now < s.nextProbe.Load() || !s.probing.CompareAndSwap(false, true) {
			return s.decideLocally(key, n)
		}
		defer s.probing.Store(false)
		r, err := s.ask(ctx, key, n)
		if err != nil {
			// Count the interval from the end of the failed probe: a
			// store that fails slowly must not be probed back to back.
			s.nextProbe.Store(s.local.clk.nowNs() + s.retry)
			return s.decideLocally(key, n)
		}
		if s.degraded.CompareAndSwap(true, false) {
			s.log.Info("ratelimit: store reachable again, shared limits restored")
		}
		return r
	}
	r, err := s.ask(ctx, key, n)
	if err == nil {
		return r
	}
	if ctx.Err() == nil && s.degraded.CompareAndSwap(false, true) {
		s.nextProbe.Store(s.local.clk.nowNs() + s.retry)
		s.log.Warn("ratelimit: store unreachable, falling back to local limits", "err", err)
	}
	return s.decideLocally(key, n)
}

// Forget drops key's bucket, locally and in the store when the store is a
// Forgetter, so that key starts again with a full burst (an account whose
// login finally succeeded). An error means the store's copy may remain;
// the local copy is always dropped.
func (s *Shared) Forget(ctx context.Context, key string) error {
	s.local.Forget(key)
	f, ok := s.store.(Forgetter)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := f.Forget(ctx, key); err != nil {
		return fmt.Errorf("ratelimit: store: %w", err)
	}
	return nil
}

// Degraded reports whether decisions are currently made locally because
// the store is unreachable.
func (s *Shared) Degraded() bool { return s.degraded.Load() }

func (s *Shared) ask(ctx context.Context, key string, n int) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	r, err := s.store.Take(ctx, key, s.lim, n)
	if err != nil {
		return r, fmt.Errorf("ratelimit: store: %w", err)
	}
	return r, nil
}

func (s *Shared) decideLocally(key string, n int) Result {
	k := s.local
	now := k.clk.nowNs()
	cost := k.g.cost(n)
	if n > k.g.burst {
		return Result{RetryAfter: time.Duration(cost)}
	}
	tat, ok := k.t.take(key, &k.g, now, cost)
	return result(&k.g, tat, now, cost, ok)
}
