package console

import (
	"time"

	"github.com/jichitai/seccloud/ratelimit"
)

// LoginLimiter is one kind of login bucket kept by key (an account, or a
// client address): the failed-login lockouts and the login throttle.
// *ratelimit.Keyed[string] is the in-memory implementation; the appliance
// passes one kept in Redis when several nodes must lock an account
// together. Implementations must be safe for concurrent use; a limiter
// that keeps its state elsewhere may ignore t and use its own clock.
type LoginLimiter interface {
	// AllowN takes n tokens from key's bucket if it holds them.
	AllowN(t time.Time, key string, n int) bool
	// Tokens returns the tokens left in key's bucket.
	Tokens(t time.Time, key string) float64
	// Forget gives key a full bucket again.
	Forget(key string)
}

var _ LoginLimiter = (*ratelimit.Keyed[string])(nil)

// Login limiter names passed to Config.Limiters.
const (
	LimiterLockout       = "lockout"         // failed logins per account
	LimiterAddrLockout   = "address-lockout" // failed logins per client address
	LimiterLoginThrottle = "login-throttle"  // login attempts per client address
)

// LimiterFactory makes the login limiter called name (LimiterLockout, ...)
// with rate tokens per second and burst tokens.
type LimiterFactory func(name string, rate float64, burst int) (LoginLimiter, error)

// newLimiter makes a login limiter with Config.Limiters, or in memory.
func (c *Console) newLimiter(name string, rate float64, burst int) (LoginLimiter, error) {
	if c.cfg.Limiters != nil {
		return c.cfg.Limiters(name, rate, burst)
	}
	return ratelimit.NewKeyed[string](ratelimit.KeyedConfig{Rate: rate, Burst: burst, MaxKeys: 100_000})
}
