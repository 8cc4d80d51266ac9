package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// redisServer is a real redis-server (Debian package redis-server) on a
// random loopback port, started by a test.
type redisServer struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
}

// startRedis starts redis-server, or skips the test when the binary is
// missing, unless the CI environment variable is set: then it fails.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not found (install the Debian package redis-server): %v", err)
		}
		t.Skip("redis-server not found; install the Debian package redis-server to run this test")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	r := &redisServer{t: t, port: port, dir: t.TempDir()}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server",
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--loglevel", "warning")
	require.NoError(r.t, r.cmd.Start())
	c := redis.NewClient(&redis.Options{Addr: r.addr(), DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s did not answer within 15s", r.addr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *redisServer) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

func (r *redisServer) client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr:         r.addr(),
		DialTimeout:  200 * time.Millisecond,
		ReadTimeout:  200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond,
		MaxRetries:   -1,
		PoolSize:     128,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRedisStoreTake(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t)
	s, err := NewRedisStore(RedisStoreConfig{Client: c, Prefix: "test:"})
	require.NoError(t, err)
	ctx := context.Background()
	lim := Limit{Rate: 1, Burst: 3}
	for want := 2; want >= 0; want-- {
		r, err := s.Take(ctx, "k", lim, 1)
		require.NoError(t, err)
		assert.True(t, r.Allowed)
		assert.Equal(t, want, r.Remaining)
	}
	r, err := s.Take(ctx, "k", lim, 1)
	require.NoError(t, err)
	assert.False(t, r.Allowed)
	assert.Greater(t, r.RetryAfter, 900*time.Millisecond)
	assert.LessOrEqual(t, r.RetryAfter, time.Second)

	ttl, err := c.PTTL(ctx, "test:k").Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, time.Duration(0), "keys expire when their bucket is full again")
	assert.LessOrEqual(t, ttl, 3*time.Second+time.Millisecond)

	_, err = s.Take(ctx, "k", lim, 4)
	require.ErrorIs(t, err, ErrExceedsBurst)
	_, err = s.Take(ctx, "k", Limit{Rate: -1, Burst: 1}, 1)
	require.Error(t, err)
}

func TestRedisStoreTakeMany(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t)
	s, err := NewRedisStore(RedisStoreConfig{Client: c})
	require.NoError(t, err)
	ctx := context.Background()
	// The script is unknown to the server: TakeMany loads it.
	require.NoError(t, c.ScriptFlush(ctx).Err())
	reqs := []Request{
		{Key: "client:127.0.1.5", Limit: Limit{Rate: 10, Burst: 1}, N: 1},
		{Key: "tenant:a", Limit: Limit{Rate: 100, Burst: 50}, N: 1},
		{Key: "client:127.0.1.5", Limit: Limit{Rate: 10, Burst: 1}, N: 1},
	}
	res, err := s.TakeMany(ctx, reqs)
	require.NoError(t, err)
	require.Len(t, res, 3)
	assert.True(t, res[0].Allowed)
	assert.True(t, res[1].Allowed)
	assert.Equal(t, 49, res[1].Remaining)
	assert.False(t, res[2].Allowed, "pipelined requests are applied in order")

	_, err = s.TakeMany(ctx, []Request{{Key: "x", Limit: Limit{Rate: 1, Burst: 1}, N: -1}})
	require.ErrorIs(t, err, ErrInvalidN)

	_, err = NewRedisStore(RedisStoreConfig{})
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "Client", ce.Field)
}

// TestRedisSharedAcrossNodes: two nodes, each with its own client, share
// one bucket.
func TestRedisSharedAcrossNodes(t *testing.T) {
	srv := startRedis(t)
	var admitted int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 2 {
		s, err := NewRedisStore(RedisStoreConfig{Client: srv.client(t)})
		require.NoError(t, err)
		sh, err := NewShared(SharedConfig{Store: s, Limit: Limit{Rate: 0.001, Burst: 20}, Nodes: 2, Timeout: time.Second})
		require.NoError(t, err)
		wg.Go(func() {
			for range 50 {
				if sh.Allow(context.Background(), "tenant:a").Allowed {
					mu.Lock()
					admitted++
					mu.Unlock()
				}
			}
			assert.False(t, sh.Degraded())
		})
	}
	wg.Wait()
	assert.Equal(t, 20, admitted, "the two nodes together admit one burst")
}

// recordHandler counts log records by level.
type recordHandler struct {
	mu   sync.Mutex
	msgs map[slog.Level][]string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.msgs == nil {
		h.msgs = map[slog.Level][]string{}
	}
	h.msgs[r.Level] = append(h.msgs[r.Level], r.Message)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }
func (h *recordHandler) count(l slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs[l])
}

// TestSharedFallbackAndRecovery stops redis-server under a Shared limiter:
// decisions continue with local limits (not fail-open), the outage is
// logged once, and when the server is back the limiter returns to it by
// itself.
func TestSharedFallbackAndRecovery(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t)
	store, err := NewRedisStore(RedisStoreConfig{Client: c})
	require.NoError(t, err)
	logs := &recordHandler{}
	sh, err := NewShared(SharedConfig{
		Store:         store,
		Limit:         Limit{Rate: 0.001, Burst: 6},
		Nodes:         2,
		Timeout:       300 * time.Millisecond,
		RetryInterval: 50 * time.Millisecond,
		Logger:        slog.New(logs),
	})
	require.NoError(t, err)
	ctx := context.Background()

	allowed := func(key string, times int) int {
		n := 0
		for range times {
			if sh.Allow(ctx, key).Allowed {
				n++
			}
		}
		return n
	}
	assert.Equal(t, 6, allowed("a", 10), "shared limit from redis")
	assert.False(t, sh.Degraded())
	exists, err := c.Exists(ctx, "ratelimit:a").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), exists)

	srv.stop()
	// Local fallback: Burst/Nodes = 3 per node, still limited.
	assert.Equal(t, 3, allowed("b", 50))
	assert.True(t, sh.Degraded())
	time.Sleep(120 * time.Millisecond) // let a few probes fail
	assert.Equal(t, 3, allowed("c", 50))
	assert.Equal(t, 1, logs.count(slog.LevelWarn), "the outage is logged once")
	assert.Equal(t, 0, logs.count(slog.LevelInfo))

	srv.start()
	restarted := time.Now()
	defer func() { t.Logf("recovered %v after the restart", time.Since(restarted)) }()
	require.Eventually(t, func() bool {
		sh.Allow(ctx, "d")
		return !sh.Degraded()
	}, 15*time.Second, 10*time.Millisecond, "recovers by itself")
	exists, err = c.Exists(ctx, "ratelimit:d").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), exists, "decisions are made in redis again")
	assert.Equal(t, 1, logs.count(slog.LevelInfo), "the recovery is logged once")
	assert.Equal(t, 1, logs.count(slog.LevelWarn))
}

func TestMemoryStore(t *testing.T) {
	now := t0
	s, err := NewMemoryStore(MemoryStoreConfig{MaxKeys: 10, Now: func() time.Time { return now }})
	require.NoError(t, err)
	ctx := context.Background()
	lim := Limit{Rate: 2, Burst: 2}
	r, err := s.Take(ctx, "k", lim, 2)
	require.NoError(t, err)
	assert.Equal(t, Result{Allowed: true, Remaining: 0}, r)
	r, err = s.Take(ctx, "k", lim, 1)
	require.NoError(t, err)
	assert.Equal(t, Result{Allowed: false, Remaining: 0, RetryAfter: 500 * time.Millisecond}, r)
	now = now.Add(500 * time.Millisecond)
	r, err = s.Take(ctx, "k", lim, 1)
	require.NoError(t, err)
	assert.True(t, r.Allowed)

	for i := range 100 {
		_, err = s.Take(ctx, fmt.Sprint(i), lim, 1)
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, s.t.len(), 10)

	_, err = s.Take(ctx, "k", lim, 3)
	require.ErrorIs(t, err, ErrExceedsBurst)
	_, err = s.Take(ctx, "k", Limit{}, 1)
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "Limit.Rate", ce.Field)
	_, err = NewMemoryStore(MemoryStoreConfig{MaxKeys: -1})
	require.ErrorAs(t, err, &ce)
}

func TestNewSharedRefusesBadConfig(t *testing.T) {
	mem, err := NewMemoryStore(MemoryStoreConfig{})
	require.NoError(t, err)
	ok := Limit{Rate: 1, Burst: 1}
	tests := []struct {
		name  string
		cfg   SharedConfig
		field string
	}{
		{"no store", SharedConfig{Limit: ok}, "Store"},
		{"bad rate", SharedConfig{Store: mem, Limit: Limit{Burst: 1}}, "Limit.Rate"},
		{"bad burst", SharedConfig{Store: mem, Limit: Limit{Rate: 1}}, "Limit.Burst"},
		{"negative nodes", SharedConfig{Store: mem, Limit: ok, Nodes: -1}, "Nodes"},
		{"negative timeout", SharedConfig{Store: mem, Limit: ok, Timeout: -1}, "Timeout"},
		{"negative retry", SharedConfig{Store: mem, Limit: ok, RetryInterval: -1}, "RetryInterval"},
		{"negative max keys", SharedConfig{Store: mem, Limit: ok, MaxKeys: -1}, "MaxKeys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewShared(tt.cfg)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.field, ce.Field)
		})
	}
}

func TestSharedWithMemoryStore(t *testing.T) {
	mem, err := NewMemoryStore(MemoryStoreConfig{Now: fixedClock(t0)})
	require.NoError(t, err)
	sh, err := NewShared(SharedConfig{Store: mem, Limit: Limit{Rate: 1, Burst: 2}})
	require.NoError(t, err)
	ctx := context.Background()
	assert.True(t, sh.Allow(ctx, "k").Allowed)
	assert.True(t, sh.AllowN(ctx, "k", 1).Allowed)
	assert.False(t, sh.Allow(ctx, "k").Allowed)
	assert.False(t, sh.AllowN(ctx, "k", 3).Allowed)
	assert.False(t, sh.AllowN(ctx, "k", -1).Allowed)
	assert.False(t, sh.Degraded())
}

// flakyStore fails while down is set and counts its calls.
type flakyStore struct {
	mu    sync.Mutex
	down  bool
	calls int
	inner Store
}

func (f *flakyStore) Take(ctx context.Context, key string, lim Limit, n int) (Result, error) {
	f.mu.Lock()
	f.calls++
	down := f.down
	f.mu.Unlock()
	if down {
		return Result{}, fmt.Errorf("connection refused")
	}
	return f.inner.Take(ctx, key, lim, n)
}

func (f *flakyStore) set(down bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	c := f.calls
	f.calls = 0
	return c
}

// TestSharedProbesOncePerInterval checks with a fake clock that, while the
// store is down, it is tried once per RetryInterval and not on every call.
func TestSharedProbesOncePerInterval(t *testing.T) {
	now := t0
	clock := func() time.Time { return now }
	mem, err := NewMemoryStore(MemoryStoreConfig{Now: clock})
	require.NoError(t, err)
	fs := &flakyStore{inner: mem}
	logs := &recordHandler{}
	sh, err := NewShared(SharedConfig{Store: fs, Limit: Limit{Rate: 1, Burst: 1000}, RetryInterval: time.Second, Logger: slog.New(logs), Now: clock})
	require.NoError(t, err)
	ctx := context.Background()
	fs.set(true)
	for range 100 {
		require.True(t, sh.Allow(ctx, "k").Allowed)
	}
	assert.Equal(t, 1, fs.set(true), "one failed call, then local decisions")
	now = now.Add(time.Second)
	for range 100 {
		sh.Allow(ctx, "k")
	}
	assert.Equal(t, 1, fs.set(false), "one probe per RetryInterval")
	assert.True(t, sh.Degraded())
	now = now.Add(time.Second)
	sh.Allow(ctx, "k")
	assert.False(t, sh.Degraded())
	for range 10 {
		sh.Allow(ctx, "k")
	}
	assert.Equal(t, 11, fs.set(false), "back to the store")
	assert.Equal(t, 1, logs.count(slog.LevelWarn))
	assert.Equal(t, 1, logs.count(slog.LevelInfo))
}

type discardRedisLog struct{}

func (discardRedisLog) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the fallback tests cause many.
	redis.SetLogger(discardRedisLog{})
	os.Exit(m.Run())
}

// Forget gives a key its full burst back, on every node sharing the store.
func TestSharedForget(t *testing.T) {
	r := startRedis(t)
	redisStore, err := NewRedisStore(RedisStoreConfig{Client: r.client(t), Prefix: "forget:"})
	require.NoError(t, err)
	mem, err := NewMemoryStore(MemoryStoreConfig{})
	require.NoError(t, err)
	for name, st := range map[string]Store{"redis": redisStore, "memory": mem} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			node1, err := NewShared(SharedConfig{Store: st, Limit: Limit{Rate: 0.001, Burst: 3}, Timeout: time.Second})
			require.NoError(t, err)
			node2, err := NewShared(SharedConfig{Store: st, Limit: Limit{Rate: 0.001, Burst: 3}, Timeout: time.Second})
			require.NoError(t, err)
			for range 3 {
				require.True(t, node1.Allow(ctx, "user").Allowed)
			}
			assert.False(t, node2.Allow(ctx, "user").Allowed, "empty on the other node too")
			assert.Zero(t, node2.AllowN(ctx, "user", 0).Remaining)
			require.NoError(t, node2.Forget(ctx, "user"))
			assert.Equal(t, 3, node1.AllowN(ctx, "user", 0).Remaining, "full again on the first node")
			assert.True(t, node1.Allow(ctx, "user").Allowed)
		})
	}
}
