package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/appliance/console"
	"github.com/jichitai/seccloud/ratelimit"
	"github.com/jichitai/seccloud/waf"
)

// Rate limits shared by the nodes (cluster.redis): the console's login
// lockouts and throttle and the WAF's per-client request rate are kept in
// Redis through ratelimit.Shared, so that a client locked out or limited
// on one node is on every node. When Redis does not answer, each node
// decides with its own local limits (ratelimit.Shared degrades by itself)
// and the health watch reports dep/cluster/redis down with an alert event.

// sharedLimits is the Redis connection the shared limiters use.
type sharedLimits struct {
	addr   string
	client *redis.Client
	log    *slog.Logger
}

// redisTimeout bounds each Redis call of a limiter: a node never waits
// longer than this for a decision before deciding locally.
const redisTimeout = 50 * time.Millisecond

// openSharedLimits connects (lazily) to cluster.redis; nil when it is not
// configured.
func openSharedLimits(cfg *config.Config, log *slog.Logger) (*sharedLimits, error) {
	addr := cfg.Cluster.Redis
	if addr == "" {
		return nil, nil
	}
	var opt *redis.Options
	if strings.HasPrefix(addr, "redis://") || strings.HasPrefix(addr, "rediss://") {
		var err error
		if opt, err = redis.ParseURL(addr); err != nil {
			return nil, fmt.Errorf("cluster.redis: %w", err)
		}
	} else {
		opt = &redis.Options{Addr: addr}
	}
	// Fail fast: a dead Redis must cost a request no more than
	// redisTimeout, and the limiter retries on its own schedule.
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.MaxRetries = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond, -1
	opt.ContextTimeoutEnabled = true
	s := &sharedLimits{addr: addr, client: redis.NewClient(opt), log: log.With("component", "shared-limits", "redis", addr)}
	s.log.Info("rate limits shared through redis")
	return s, nil
}

// shared returns a limiter of lim kept under prefix in Redis.
func (s *sharedLimits) shared(prefix string, lim ratelimit.Limit) (*ratelimit.Shared, error) {
	st, err := ratelimit.NewRedisStore(ratelimit.RedisStoreConfig{Client: s.client, Prefix: "seccloud:" + prefix + ":"})
	if err != nil {
		return nil, err
	}
	return ratelimit.NewShared(ratelimit.SharedConfig{Store: st, Limit: lim, Timeout: redisTimeout,
		Logger: s.log.With("limit", prefix)})
}

// loginLimiters is the console's console.LimiterFactory: every login
// bucket in Redis.
func (s *sharedLimits) loginLimiters() console.LimiterFactory {
	return func(name string, rate float64, burst int) (console.LoginLimiter, error) {
		sh, err := s.shared("console:"+name, ratelimit.Limit{Rate: rate, Burst: burst})
		if err != nil {
			return nil, fmt.Errorf("cluster.redis: %s: %w", name, err)
		}
		return sharedLogin{sh: sh, log: s.log}, nil
	}
}

// wafClientLimit sets the WAF's per-client rate to a shared limiter.
func (s *sharedLimits) wafClientLimit(d *waf.DDoSConfig) error {
	if d.Disabled {
		return nil
	}
	lim := ratelimit.Limit{Rate: d.ClientRate, Burst: d.ClientBurst}
	if lim.Rate == 0 {
		lim.Rate = waf.DefaultClientRate
	}
	if lim.Burst == 0 {
		lim.Burst = waf.DefaultClientBurst
	}
	sh, err := s.shared("waf:client", lim)
	if err != nil {
		return fmt.Errorf("cluster.redis: waf: %w", err)
	}
	d.Shared = sh
	return nil
}

// dependency reports whether Redis answers.
func (s *sharedLimits) dependency() dependency {
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		return dependency{Name: "cluster/redis", Detail: "limits are local to this node: " + err.Error()}
	}
	return dependency{Name: "cluster/redis", Up: true, Detail: s.addr}
}

func (s *sharedLimits) close() error {
	if s == nil {
		return nil
	}
	return s.client.Close()
}

// sharedLogin adapts ratelimit.Shared to console.LoginLimiter. The time
// argument is ignored: Redis's clock decides (the local fallback uses this
// node's clock).
type sharedLogin struct {
	sh  *ratelimit.Shared
	log *slog.Logger
}

func (l sharedLogin) AllowN(_ time.Time, key string, n int) bool {
	return l.sh.AllowN(context.Background(), key, n).Allowed
}

func (l sharedLogin) Tokens(_ time.Time, key string) float64 {
	return float64(l.sh.AllowN(context.Background(), key, 0).Remaining)
}

func (l sharedLogin) Forget(key string) {
	if err := l.sh.Forget(context.Background(), key); err != nil {
		l.log.Warn("shared login bucket not reset", "err", err)
	}
}
