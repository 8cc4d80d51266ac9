package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// ConcurrencyConfig configures a Concurrency limiter.
type ConcurrencyConfig struct {
	// MaxInFlight is the number of slots per key: how many requests of one
	// key may hold a slot at the same time. Required, >= 1.
	MaxInFlight int
	// MaxQueue is how many requests per key may wait for a slot when all
	// are taken. Zero means no queue: Acquire fails at once with
	// ErrQueueFull.
	MaxQueue int
	// QueueTimeout bounds the time a request waits in the queue, on top of
	// its context. Zero means only the context bounds it.
	QueueTimeout time.Duration
	// MaxKeys bounds the number of keys that hold or wait for a slot at
	// the same time. Keys without any are forgotten at once, so this is a
	// bound on simultaneously active keys. Zero means DefaultMaxKeys.
	MaxKeys int
}

// Concurrency limits how many requests of each key are in flight at once,
// with an optional bounded FIFO queue for the requests that find every
// slot taken. A slot freed by Release goes straight to the oldest waiter.
//
// The zero Concurrency is not usable; create one with NewConcurrency. A
// Concurrency is safe for concurrent use.
type Concurrency[K comparable] struct {
	cfg     ConcurrencyConfig
	maxKeys int
	mu      sync.Mutex
	keys    map[K]*cslot
}

type cslot struct {
	inFlight int
	waiters  []*cwaiter // FIFO
}

type cwaiter struct {
	ready   chan struct{} // closed when the slot is handed over
	granted bool          // guarded by Concurrency.mu
}

// NewConcurrency returns a Concurrency limiter. It refuses an invalid
// configuration with a *ConfigError naming the field.
func NewConcurrency[K comparable](cfg ConcurrencyConfig) (*Concurrency[K], error) {
	switch {
	case cfg.MaxInFlight <= 0:
		return nil, cfgErr("MaxInFlight", "must be >= 1, got %d", cfg.MaxInFlight)
	case cfg.MaxInFlight > maxKeysLimit:
		return nil, cfgErr("MaxInFlight", "must be <= %d, got %d", maxKeysLimit, cfg.MaxInFlight)
	case cfg.MaxQueue < 0:
		return nil, cfgErr("MaxQueue", "must be >= 0, got %d", cfg.MaxQueue)
	case cfg.MaxQueue > maxKeysLimit:
		return nil, cfgErr("MaxQueue", "must be <= %d, got %d", maxKeysLimit, cfg.MaxQueue)
	case cfg.QueueTimeout < 0:
		return nil, cfgErr("QueueTimeout", "must be >= 0, got %v", cfg.QueueTimeout)
	}
	maxKeys, err := checkMaxKeys(cfg.MaxKeys)
	if err != nil {
		return nil, err
	}
	return &Concurrency[K]{cfg: cfg, maxKeys: maxKeys, keys: make(map[K]*cslot)}, nil
}

// TryAcquire takes a slot for key if one is free, without queueing. Every
// successful TryAcquire must be followed by one Release.
func (c *Concurrency[K]) TryAcquire(key K) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.keys[key]
	if !ok {
		if len(c.keys) >= c.maxKeys {
			return false
		}
		c.keys[key] = &cslot{inFlight: 1}
		return true
	}
	if s.inFlight < c.cfg.MaxInFlight && len(s.waiters) == 0 {
		s.inFlight++
		return true
	}
	return false
}

// Acquire takes a slot for key, waiting in the key's queue if every slot is
// taken. It returns nil when the caller holds a slot, which it must give
// back with Release. Otherwise it returns an error wrapping ErrQueueFull,
// ErrQueueTimeout or ErrTooManyKeys, or the context's error.
func (c *Concurrency[K]) Acquire(ctx context.Context, key K) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	s, ok := c.keys[key]
	if !ok {
		if len(c.keys) >= c.maxKeys {
			c.mu.Unlock()
			return fmt.Errorf("%w: %d keys active", ErrTooManyKeys, c.maxKeys)
		}
		c.keys[key] = &cslot{inFlight: 1}
		c.mu.Unlock()
		return nil
	}
	if s.inFlight < c.cfg.MaxInFlight && len(s.waiters) == 0 {
		s.inFlight++
		c.mu.Unlock()
		return nil
	}
	if len(s.waiters) >= c.cfg.MaxQueue {
		c.mu.Unlock()
		return fmt.Errorf("%w: %d waiting", ErrQueueFull, len(s.waiters))
	}
	w := &cwaiter{ready: make(chan struct{})}
	s.waiters = append(s.waiters, w)
	c.mu.Unlock()

	var timeout <-chan time.Time
	if c.cfg.QueueTimeout > 0 {
		t := time.NewTimer(c.cfg.QueueTimeout)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = fmt.Errorf("%w after %v", ErrQueueTimeout, c.cfg.QueueTimeout)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.granted {
		// The slot arrived while we were giving up: keep it.
		return nil
	}
	for i, x := range s.waiters {
		if x == w {
			s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
			break
		}
	}
	return err
}

// Release gives back a slot of key taken by Acquire or TryAcquire, handing
// it to the oldest waiter if there is one. Releasing a key that holds no
// slot does nothing.
func (c *Concurrency[K]) Release(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.keys[key]
	if !ok {
		return
	}
	if len(s.waiters) > 0 {
		w := s.waiters[0]
		s.waiters[0] = nil
		s.waiters = s.waiters[1:]
		w.granted = true
		close(w.ready)
		return
	}
	s.inFlight--
	if s.inFlight <= 0 {
		delete(c.keys, key)
	}
}

// InFlight returns the number of slots key holds.
func (c *Concurrency[K]) InFlight(key K) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.keys[key]; ok {
		return s.inFlight
	}
	return 0
}

// Waiting returns the number of requests of key waiting in the queue.
func (c *Concurrency[K]) Waiting(key K) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.keys[key]; ok {
		return len(s.waiters)
	}
	return 0
}
