package ratelimit

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Config configures a Limiter. Rate and Burst are required.
type Config struct {
	// Rate is the sustained rate in tokens per second: requests per second
	// for a request limiter, bytes per second for a byte limiter. It must
	// be > 0 and <= MaxRate; Every converts an interval into a Rate.
	Rate float64
	// Burst is the capacity of the bucket in tokens: the most that can be
	// taken at once, and what a limiter that has been idle for Burst/Rate
	// seconds admits back to back. It must be >= 1 and <= MaxBurst.
	Burst int
	// Now is the clock used by Allow and WaitN. Nil means the monotonic
	// clock of time.Now. The methods taking an explicit time ignore it.
	Now func() time.Time
}

// Every returns the Rate that admits one token per interval d. It returns
// 0, which New refuses, when d <= 0.
func Every(d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(time.Second) / float64(d)
}

// Limiter is a token bucket implemented with GCRA (the generic cell rate
// algorithm): its whole state is one atomic int64, updated with
// compare-and-swap, so it takes no lock and a decision costs a few
// nanoseconds.
//
// Burst semantics, precisely: the bucket holds at most Burst tokens and
// refills at Rate tokens per second, continuously (not in steps). A full
// bucket admits Burst tokens at one instant; after that, one token every
// 1/Rate seconds. Over any window of length d starting at any instant, a
// Limiter admits at most Burst + Rate*d tokens; this bound holds under any
// number of concurrent callers and whatever order their time readings
// arrive in (a caller whose clock reading is stale is judged at that
// earlier instant, which can only deny more). AllowN(t, n) with n > Burst
// is always false, and AllowN(t, 0) always true. Time is kept to the
// nanosecond, so each request costs at least 1 ns of bucket time: at rates
// above about 1e8 tokens per second take tokens in batches (AllowN) rather
// than one at a time.
//
// The zero Limiter is not usable; create one with New. A Limiter is safe
// for concurrent use.
type Limiter struct {
	tat atomic.Int64
	g   gcra
	clk clock
}

// New returns a Limiter whose bucket starts full. It refuses an invalid
// configuration with a *ConfigError naming the field.
func New(cfg Config) (*Limiter, error) {
	g, err := newGCRA(cfg.Rate, cfg.Burst, "Rate", "Burst")
	if err != nil {
		return nil, err
	}
	l := &Limiter{g: g, clk: newClock(cfg.Now)}
	l.tat.Store(-timeLimit)
	return l, nil
}

// Rate returns the configured rate in tokens per second.
func (l *Limiter) Rate() float64 { return 1e9 / l.g.interval }

// Burst returns the configured burst in tokens.
func (l *Limiter) Burst() int { return l.g.burst }

// Allow reports whether one token may be taken now, and takes it if so.
func (l *Limiter) Allow() bool {
	return l.take(l.clk.nowNs(), l.g.cost1)
}

// AllowN reports whether n tokens may be taken at time t, and takes them if
// so. It is false when n < 0 or n > Burst.
func (l *Limiter) AllowN(t time.Time, n int) bool {
	if n < 0 || n > l.g.burst {
		return false
	}
	if n == 0 {
		return true
	}
	return l.take(l.clk.at(t), l.g.cost(n))
}

func (l *Limiter) take(now, cost int64) bool {
	for {
		old := l.tat.Load()
		nt, ok := l.g.take(old, now, cost)
		if !ok {
			return false
		}
		if l.tat.CompareAndSwap(old, nt) {
			return true
		}
	}
}

// Tokens returns the number of tokens available at time t.
func (l *Limiter) Tokens(t time.Time) float64 {
	return l.g.tokens(l.tat.Load(), l.clk.at(t))
}

// Wait is WaitN(ctx, 1).
func (l *Limiter) Wait(ctx context.Context) error { return l.WaitN(ctx, 1) }

// WaitN blocks until n tokens are available and takes them. The tokens are
// reserved when WaitN is called, so waiters are served in order. It
// returns an error wrapping ErrExceedsBurst when n > Burst, ErrInvalidN
// when n < 0, and ErrDeadline, without waiting or taking anything, when the
// context's deadline comes before the tokens would. If the context is
// cancelled while waiting, the tokens are given back and ctx.Err() is
// returned. Waiting uses real timers even when Config.Now is set.
func (l *Limiter) WaitN(ctx context.Context, n int) error {
	switch {
	case n < 0:
		return fmt.Errorf("%w: %d", ErrInvalidN, n)
	case n > l.g.burst:
		return fmt.Errorf("%w: n=%d, burst=%d", ErrExceedsBurst, n, l.g.burst)
	case n == 0:
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cost := l.g.cost(n)
	deadline, hasDeadline := ctx.Deadline()
	var wait int64
	for {
		old := l.tat.Load()
		nt, w, ok := l.g.reserve(old, l.clk.nowNs(), cost)
		if !ok {
			return fmt.Errorf("%w: backlog too long", ErrDeadline)
		}
		if hasDeadline && w > 0 && time.Until(deadline) < time.Duration(w) {
			return ErrDeadline
		}
		if l.tat.CompareAndSwap(old, nt) {
			wait = w
			break
		}
	}
	if wait == 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(wait))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		l.tat.Add(-cost)
		return ctx.Err()
	}
}
