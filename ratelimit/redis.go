package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript applies GCRA to one key atomically. Times are integer
// microseconds taken from the server's TIME, so the nodes' clocks never
// matter. The state (the TAT) is stored as a decimal integer and expires
// when the bucket would be full again, so idle keys cost no memory.
//
// KEYS[1] = bucket key; ARGV[1] = cost of the request, ARGV[2] = tau, both
// in microseconds. Returns {allowed (0/1), retry_after_us, used_us} where
// used_us is how far the bucket's TAT is ahead of now after the decision.
const gcraScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local nt = tat + cost
if nt - now > tau then
  return {0, nt - tau - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', nt), 'PX', math.floor((nt - now) / 1000) + 1)
return {1, 0, nt - now}
`

// RedisStoreConfig configures a RedisStore.
type RedisStoreConfig struct {
	// Client is the Redis client (a *redis.Client, *redis.ClusterClient
	// or *redis.Ring). Required. The store does not close it.
	Client redis.UniversalClient
	// Prefix is prepended to every key. Empty means "ratelimit:".
	Prefix string
}

// RedisStore is a Store in Redis, so that several nodes enforce one limit
// together. Each decision is one round trip running a Lua script that
// applies GCRA atomically with the server's clock; TakeMany sends several
// decisions in one pipelined round trip. Time is kept in microseconds, so
// rates above 1e5 tokens per second should take tokens in batches.
//
// The zero RedisStore is not usable; create one with NewRedisStore. It is
// safe for concurrent use.
type RedisStore struct {
	c      redis.UniversalClient
	prefix string
	script *redis.Script
}

// NewRedisStore returns a RedisStore. It does not contact the server.
func NewRedisStore(cfg RedisStoreConfig) (*RedisStore, error) {
	if cfg.Client == nil {
		return nil, cfgErr("Client", "is required")
	}
	p := cfg.Prefix
	if p == "" {
		p = "ratelimit:"
	}
	return &RedisStore{c: cfg.Client, prefix: p, script: redis.NewScript(gcraScript)}, nil
}

// Request is one decision asked of TakeMany.
type Request struct {
	Key   string
	Limit Limit
	N     int
}

type redisArgs struct {
	key        string
	costUs     int64
	tauUs      int64
	intervalUs float64
	n          int
}

func (s *RedisStore) args(key string, lim Limit, n int) (redisArgs, error) {
	if _, err := checkTake(lim, n); err != nil {
		return redisArgs{}, err
	}
	iv := 1e6 / lim.Rate
	return redisArgs{
		key:        s.prefix + key,
		costUs:     int64(math.Ceil(float64(n) * iv)),
		tauUs:      int64(math.Ceil(float64(lim.Burst) * iv)),
		intervalUs: iv,
		n:          n,
	}, nil
}

func (a *redisArgs) result(v any) (Result, error) {
	xs, ok := v.([]any)
	if !ok || len(xs) != 3 {
		return Result{}, fmt.Errorf("ratelimit: unexpected reply from redis script: %v", v)
	}
	var ns [3]int64
	for i, x := range xs {
		if ns[i], ok = x.(int64); !ok {
			return Result{}, fmt.Errorf("ratelimit: unexpected reply from redis script: %v", v)
		}
	}
	free := float64(a.tauUs-max(ns[2], 0)) / a.intervalUs
	r := Result{Allowed: ns[0] == 1, Remaining: max(0, int(math.Floor(free+1e-9)))}
	if !r.Allowed {
		r.RetryAfter = time.Duration(ns[1]) * time.Microsecond
	}
	return r, nil
}

// Take implements Store with one round trip (EVALSHA, falling back to EVAL
// the first time the server does not know the script).
func (s *RedisStore) Take(ctx context.Context, key string, lim Limit, n int) (Result, error) {
	a, err := s.args(key, lim, n)
	if err != nil {
		return Result{}, err
	}
	v, err := s.script.Run(ctx, s.c, []string{a.key}, a.costUs, a.tauUs).Result()
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	return a.result(v)
}

// Forget implements Forgetter: it deletes key's bucket (one DEL).
func (s *RedisStore) Forget(ctx context.Context, key string) error {
	if err := s.c.Del(ctx, s.prefix+key).Err(); err != nil {
		return fmt.Errorf("ratelimit: redis: %w", err)
	}
	return nil
}

// TakeMany makes several decisions in one pipelined round trip, for
// example the per-client and per-tenant limits of one request. Each
// decision is atomic on its own; they are not atomic together. It returns
// one Result per Request, or an error if the round trip failed or any
// Request is invalid.
func (s *RedisStore) TakeMany(ctx context.Context, reqs []Request) ([]Result, error) {
	args := make([]redisArgs, len(reqs))
	for i, r := range reqs {
		a, err := s.args(r.Key, r.Limit, r.N)
		if err != nil {
			return nil, fmt.Errorf("ratelimit: request %d: %w", i, err)
		}
		args[i] = a
	}
	cmds, err := s.pipeline(ctx, args)
	if err != nil && isNoScript(err) {
		if err = s.script.Load(ctx, s.c).Err(); err == nil {
			cmds, err = s.pipeline(ctx, args)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ratelimit: redis: %w", err)
	}
	out := make([]Result, len(reqs))
	for i, c := range cmds {
		if out[i], err = args[i].result(c.Val()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *RedisStore) pipeline(ctx context.Context, args []redisArgs) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(args))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, a := range args {
			cmds[i] = s.script.EvalSha(ctx, p, []string{a.key}, a.costUs, a.tauUs)
		}
		return nil
	})
	return cmds, err
}

func isNoScript(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "NOSCRIPT")
}
