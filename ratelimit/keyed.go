package ratelimit

import (
	"time"
)

// DefaultMaxKeys is the key capacity used when KeyedConfig.MaxKeys (or
// MemoryStoreConfig.MaxKeys) is zero.
const DefaultMaxKeys = 100_000

// maxKeysLimit bounds MaxKeys (indices are int32).
const maxKeysLimit = 1 << 30

// KeyedConfig configures a Keyed limiter: one bucket of Rate and Burst per
// key. Rate and Burst have the meaning they have in Config.
type KeyedConfig struct {
	// Rate is the sustained rate per key, in tokens per second. Required.
	Rate float64
	// Burst is the bucket capacity per key, in tokens. Required.
	Burst int
	// MaxKeys is the hard cap on the number of keys remembered. Zero means
	// DefaultMaxKeys. The cap is split evenly between up to 64 shards, so
	// the number of keys held never exceeds it (it may stay slightly
	// below when MaxKeys is not a multiple of the shard count).
	MaxKeys int
	// Now is the clock used by Allow. Nil means time.Now.
	Now func() time.Time
}

// Keyed limits each key (a client address, a tenant, a sender) to its own
// token bucket, with the burst semantics of Limiter.
//
// Memory is bounded by MaxKeys. When the table is full, a new key evicts an
// old one rather than being refused or admitted unchecked:
//
//   - keys whose bucket has refilled completely go first; forgetting them
//     loses nothing, since an unknown key is treated as a full bucket;
//   - otherwise the key chosen is one not used recently, by the CLOCK
//     approximation of LRU: a key used since the clock hand last passed it
//     survives one more turn.
//
// So a flood of new keys can never make the table grow, and never lets
// traffic through unchecked: a key that keeps sending (an abuser being
// limited) is referenced on every request and stays, and its state is kept.
// What a flood larger than MaxKeys can do is make the limiter forget keys
// that have been quiet for a while but whose bucket had not refilled yet;
// those start again with a full bucket. Size MaxKeys above the number of
// keys active within Burst/Rate seconds and this never happens.
//
// The zero Keyed is not usable; create one with NewKeyed. A Keyed is safe
// for concurrent use.
type Keyed[K comparable] struct {
	g   gcra
	clk clock
	t   *table[K]
}

// NewKeyed returns a Keyed limiter. It refuses an invalid configuration
// with a *ConfigError naming the field.
func NewKeyed[K comparable](cfg KeyedConfig) (*Keyed[K], error) {
	g, err := newGCRA(cfg.Rate, cfg.Burst, "Rate", "Burst")
	if err != nil {
		return nil, err
	}
	maxKeys, err := checkMaxKeys(cfg.MaxKeys)
	if err != nil {
		return nil, err
	}
	return &Keyed[K]{g: g, clk: newClock(cfg.Now), t: newTable[K](maxKeys)}, nil
}

func checkMaxKeys(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultMaxKeys, nil
	case n < 0:
		return 0, cfgErr("MaxKeys", "must be >= 0, got %d", n)
	case n > maxKeysLimit:
		return 0, cfgErr("MaxKeys", "must be <= %d, got %d", maxKeysLimit, n)
	}
	return n, nil
}

// Allow reports whether key may take one token now, and takes it if so.
func (k *Keyed[K]) Allow(key K) bool {
	_, ok := k.t.take(key, &k.g, k.clk.nowNs(), k.g.cost1)
	return ok
}

// AllowN reports whether key may take n tokens at time t, and takes them if
// so. It is false when n < 0 or n > Burst.
func (k *Keyed[K]) AllowN(t time.Time, key K, n int) bool {
	if n < 0 || n > k.g.burst {
		return false
	}
	if n == 0 {
		return true
	}
	_, ok := k.t.take(key, &k.g, k.clk.at(t), k.g.cost(n))
	return ok
}

// Tokens returns the tokens available to key at time t.
func (k *Keyed[K]) Tokens(t time.Time, key K) float64 {
	return k.g.tokens(k.t.peek(key), k.clk.at(t))
}

// Forget drops key's state: its bucket is full again.
func (k *Keyed[K]) Forget(key K) { k.t.remove(key) }

// Len returns the number of keys currently remembered (at most MaxKeys).
func (k *Keyed[K]) Len() int { return k.t.len() }

// Rate returns the configured rate per key in tokens per second.
func (k *Keyed[K]) Rate() float64 { return 1e9 / k.g.interval }

// Burst returns the configured burst per key.
func (k *Keyed[K]) Burst() int { return k.g.burst }
