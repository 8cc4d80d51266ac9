package ratelimit

import (
	"math"
	"time"
)

// Bounds on the configuration of every limiter. Larger values are refused
// by the constructors: they are almost certainly mistakes (a unit error) and
// they would push the arithmetic towards overflow.
const (
	// MaxRate is the largest accepted rate, in tokens per second
	// (1e11 bytes per second is 800 Gbit/s).
	MaxRate = 1e11
	// MaxBurst is the largest accepted burst, in tokens.
	MaxBurst = 1 << 40
	// maxTau bounds Burst/Rate, the time an empty bucket takes to refill
	// (2^60 ns, about 36 years).
	maxTau = int64(1) << 60
	// timeLimit bounds every instant, in nanoseconds from the limiter's
	// epoch (2^61 ns, about 73 years). Times further away are clamped, so
	// that now+tau+maxTau never overflows an int64.
	timeLimit = int64(1) << 61
)

// gcra holds the parameters of the generic cell rate algorithm. The state
// of one bucket is a single int64: the theoretical arrival time (TAT) in
// nanoseconds from an epoch. A bucket whose TAT is at or before now is
// full. Taking n tokens moves the TAT n*interval forward; it is allowed
// when the new TAT is no more than tau ahead of now.
type gcra struct {
	interval float64 // nanoseconds per token
	tau      int64   // nanoseconds to refill a whole bucket: ceil(burst*interval)
	burst    int
	cost1    int64 // cost of one token
}

// newGCRA validates rate and burst; prefix is prepended to field names in
// errors ("" or "Tenants[2].").
func newGCRA(rate float64, burst int, rateField, burstField string) (gcra, error) {
	switch {
	case math.IsNaN(rate) || math.IsInf(rate, 0):
		return gcra{}, cfgErr(rateField, "must be a finite number, got %v", rate)
	case rate <= 0:
		return gcra{}, cfgErr(rateField, "must be > 0, got %v", rate)
	case rate > MaxRate:
		return gcra{}, cfgErr(rateField, "must be <= %g tokens per second, got %g", float64(MaxRate), rate)
	case burst <= 0:
		return gcra{}, cfgErr(burstField, "must be >= 1, got %d", burst)
	case burst > MaxBurst:
		return gcra{}, cfgErr(burstField, "must be <= %d, got %d", int64(MaxBurst), burst)
	}
	interval := 1e9 / rate
	tauF := math.Ceil(float64(burst) * interval)
	if tauF > float64(maxTau) {
		return gcra{}, cfgErr(rateField, "%s/%s is %.3g s, longer than the %d s a bucket may take to refill", burstField, rateField, tauF/1e9, maxTau/1e9)
	}
	g := gcra{interval: interval, tau: int64(tauF), burst: burst}
	g.cost1 = g.cost(1)
	return g, nil
}

// cost returns the time that n tokens occupy, rounded up to a nanosecond.
// It requires 0 <= n <= burst; the result is then at most tau.
func (g *gcra) cost(n int) int64 {
	c := int64(math.Ceil(float64(n) * g.interval))
	if c > g.tau {
		c = g.tau
	}
	return c
}

// take decides whether cost fits in the bucket whose state is tat, at time
// now. It returns the new state and true, or the old state and false.
func (g *gcra) take(tat, now, cost int64) (int64, bool) {
	if tat < now {
		tat = now
	}
	nt := tat + cost
	if nt-now > g.tau {
		return tat, false
	}
	return nt, true
}

// reserve always takes cost, returning the new state and how long the
// caller must wait before using the tokens. ok is false when the wait
// would exceed maxTau (a backlog of decades: refuse rather than overflow).
func (g *gcra) reserve(tat, now, cost int64) (nt, wait int64, ok bool) {
	if tat < now {
		tat = now
	}
	nt = tat + cost
	wait = nt - g.tau - now
	if wait < 0 {
		wait = 0
	}
	if wait > maxTau {
		return tat, 0, false
	}
	return nt, wait, true
}

// tokens returns how many tokens the bucket holds at now.
func (g *gcra) tokens(tat, now int64) float64 {
	used := tat - now
	if used < 0 {
		used = 0
	}
	free := g.tau - used
	if free <= 0 {
		return 0
	}
	return math.Min(float64(g.burst), float64(free)/g.interval)
}

// clampNs converts a duration from the epoch to bounded nanoseconds.
func clampNs(d time.Duration) int64 {
	n := int64(d)
	if n > timeLimit {
		return timeLimit
	}
	if n < -timeLimit {
		return -timeLimit
	}
	return n
}

// clock turns times into bounded nanoseconds since an epoch. With now nil
// it reads the monotonic clock through time.Since, the cheapest call.
type clock struct {
	epoch time.Time
	now   func() time.Time
}

func newClock(now func() time.Time) clock {
	if now == nil {
		return clock{epoch: time.Now()}
	}
	return clock{epoch: now(), now: now}
}

func (c *clock) nowNs() int64 {
	if c.now == nil {
		return clampNs(time.Since(c.epoch))
	}
	return clampNs(c.now().Sub(c.epoch))
}

func (c *clock) at(t time.Time) int64 { return clampNs(t.Sub(c.epoch)) }
