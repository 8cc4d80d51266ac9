package ratelimit

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// The workload of the side-by-side benchmarks: a rate high enough that
// almost every request is admitted, so each op takes the full (writing)
// path.
const (
	benchRate  = 1e8
	benchBurst = 1 << 20
	benchKeys  = 1 << 20 // "1 million keys"
)

// BenchmarkAllow is the uncontended figure: one goroutine, one limiter.
func BenchmarkAllow(b *testing.B) {
	l, _ := New(Config{Rate: benchRate, Burst: benchBurst})
	b.ReportAllocs()
	for b.Loop() {
		l.Allow()
	}
}

// BenchmarkAllowN is the limiter alone, without reading the clock.
func BenchmarkAllowN(b *testing.B) {
	l, _ := New(Config{Rate: benchRate, Burst: benchBurst})
	t := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		t = t.Add(10 * time.Nanosecond)
		l.AllowN(t, 1)
	}
}

// BenchmarkClock is the cost of the clock read that Allow makes.
func BenchmarkClock(b *testing.B) {
	epoch := time.Now()
	var d time.Duration
	b.ReportAllocs()
	for b.Loop() {
		d += time.Since(epoch)
	}
	_ = d
}

// BenchmarkSideBySide runs the same workloads on this package, on
// golang.org/x/time/rate, and on the usual hand-rolled keyed limiter (a
// mutex-guarded map of x/time/rate limiters), in one run.
func BenchmarkSideBySide(b *testing.B) {
	b.Run("single/seccloud", func(b *testing.B) {
		l, _ := New(Config{Rate: benchRate, Burst: benchBurst})
		b.ReportAllocs()
		for b.Loop() {
			l.Allow()
		}
	})
	b.Run("single/xrate", func(b *testing.B) {
		l := rate.NewLimiter(benchRate, benchBurst)
		b.ReportAllocs()
		for b.Loop() {
			l.Allow()
		}
	})
	b.Run("parallel/seccloud", func(b *testing.B) {
		l, _ := New(Config{Rate: benchRate, Burst: benchBurst})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Allow()
			}
		})
	})
	b.Run("parallel/xrate", func(b *testing.B) {
		l := rate.NewLimiter(benchRate, benchBurst)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Allow()
			}
		})
	})
	b.Run("keyed1M/seccloud", func(b *testing.B) {
		addrs := benchAddrs()
		var k *Keyed[netip.Addr]
		perKey := heapPerKey(func() {
			k, _ = NewKeyed[netip.Addr](KeyedConfig{Rate: 100, Burst: 100, MaxKeys: benchKeys})
			for _, a := range addrs {
				k.Allow(a)
			}
		})
		runKeyed(b, perKey, func(a netip.Addr) { k.Allow(a) })
	})
	b.Run("keyed1M/baseline-map-read", func(b *testing.B) {
		// Not a limiter: one read of a prebuilt Go map of a million
		// addresses, the memory-latency floor of this machine.
		addrs := benchAddrs()
		var m map[netip.Addr]int64
		perKey := heapPerKey(func() {
			m = make(map[netip.Addr]int64)
			for i, a := range addrs {
				m[a] = int64(i)
			}
		})
		var sink atomic.Int64
		runKeyed(b, perKey, func(a netip.Addr) {
			if m[a] < 0 {
				sink.Add(1)
			}
		})
	})
	b.Run("keyed1M/xrate-mutexmap", func(b *testing.B) {
		addrs := benchAddrs()
		var m *mutexMap
		perKey := heapPerKey(func() {
			m = &mutexMap{m: make(map[netip.Addr]*rate.Limiter)}
			for _, a := range addrs {
				m.Allow(a)
			}
		})
		runKeyed(b, perKey, func(a netip.Addr) { m.Allow(a) })
	})
	b.Run("keyed1M/xrate-golang-lru", func(b *testing.B) {
		addrs := benchAddrs()
		var c *lru.Cache[netip.Addr, *rate.Limiter]
		perKey := heapPerKey(func() {
			c, _ = lru.New[netip.Addr, *rate.Limiter](benchKeys)
			for _, a := range addrs {
				lruAllow(c, a)
			}
		})
		runKeyed(b, perKey, func(a netip.Addr) { lruAllow(c, a) })
	})
}

// mutexMap is the usual hand-rolled keyed limiter: unbounded.
type mutexMap struct {
	mu sync.Mutex
	m  map[netip.Addr]*rate.Limiter
}

func (m *mutexMap) Allow(a netip.Addr) bool {
	m.mu.Lock()
	l, ok := m.m[a]
	if !ok {
		l = rate.NewLimiter(100, 100)
		m.m[a] = l
	}
	m.mu.Unlock()
	return l.Allow()
}

func lruAllow(c *lru.Cache[netip.Addr, *rate.Limiter], a netip.Addr) bool {
	l, ok := c.Get(a)
	if !ok {
		l = rate.NewLimiter(100, 100)
		c.Add(a, l)
	}
	return l.Allow()
}

var (
	addrsOnce sync.Once
	addrs1M   []netip.Addr
)

func benchAddrs() []netip.Addr {
	addrsOnce.Do(func() {
		addrs1M = make([]netip.Addr, benchKeys)
		for i := range addrs1M {
			addrs1M[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		}
	})
	return addrs1M
}

// heapPerKey runs fill and returns the heap it retained per key.
func heapPerKey(fill func()) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fill()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / benchKeys
}

// runKeyed calls allow from parallel goroutines on keys picked at random
// among the million already present.
func runKeyed(b *testing.B, perKey float64, allow func(netip.Addr)) {
	addrs := benchAddrs()
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		x := seed.Add(0x9E3779B97F4A7C15) | 1
		for pb.Next() {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			allow(addrs[x&(benchKeys-1)])
		}
	})
	b.ReportMetric(perKey, "B/key")
}

func BenchmarkKeyedAllowSmall(b *testing.B) {
	k, _ := NewKeyed[string](KeyedConfig{Rate: 100, Burst: 100, MaxKeys: 1024})
	keys := make([]string, 256)
	for i := range keys {
		keys[i] = fmt.Sprintf("tenant-%03d", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k.Allow(keys[i&255])
			i++
		}
	})
}

func BenchmarkConcurrencyAcquireRelease(b *testing.B) {
	c, _ := NewConcurrency[int](ConcurrencyConfig{MaxInFlight: 1 << 20})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if c.TryAcquire(1) {
				c.Release(1)
			}
		}
	})
}

func BenchmarkFairWaitN(b *testing.B) {
	f, _ := NewFair(FairConfig{Capacity: 1e11, Burst: 1 << 20, Tenants: tenants(33)})
	defer f.Close()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("tenant-%02d", next.Add(1)%33)
		for pb.Next() {
			_ = f.WaitN(context.Background(), id, 1500)
		}
	})
}

func BenchmarkMemoryStoreTake(b *testing.B) {
	s, _ := NewMemoryStore(MemoryStoreConfig{})
	lim := Limit{Rate: benchRate, Burst: benchBurst}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = s.Take(context.Background(), "tenant:a", lim, 1)
		}
	})
}

// BenchmarkRedisStore measures decisions per second and the latency a
// decision adds, with 64 concurrent callers against a local redis-server.
func BenchmarkRedisStore(b *testing.B) {
	srv := startRedis(b)
	c := srv.client(b)
	s, _ := NewRedisStore(RedisStoreConfig{Client: c})
	lim := Limit{Rate: 1e5, Burst: 1e5}
	const callers = 64
	b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	var id atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		key := fmt.Sprintf("bench:%d", id.Add(1)%16)
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t := time.Now()
			if _, err := s.Take(context.Background(), key, lim, 1); err != nil {
				errs.Add(1)
			}
			local = append(local, time.Since(t))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if errs.Load() > 0 {
		b.Fatalf("%d errors", errs.Load())
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "decisions/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkShapeLoopback measures shaping accuracy: one loopback TCP
// stream written through a Conn shaped to the target rate for 10 seconds
// (whatever b.N is; run with -benchtime 1x). It reports the rate measured
// at the receiver and its error from the target, in percent.
func BenchmarkShapeLoopback(b *testing.B) {
	for _, tc := range []struct {
		name string
		bits float64
	}{{"100Mbit", 100e6}, {"1Gbit", 1e9}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				got := shapeLoopback(b, tc.bits, 10*time.Second)
				b.ReportMetric(got/1e6, "Mbit/s")
				b.ReportMetric(100*(got-tc.bits)/tc.bits, "err%")
			}
		})
	}
}

func shapeLoopback(b *testing.B, bits float64, d time.Duration) float64 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		n       int64
		elapsed time.Duration
	}
	out := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			out <- res{}
			return
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		var n int64
		var first time.Time
		for {
			k, err := c.Read(buf)
			if k > 0 && first.IsZero() {
				first = time.Now()
			}
			n += int64(k)
			if err != nil {
				break
			}
		}
		out <- res{n, time.Since(first)}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	burst := int(math.Max(16<<10, bits/8/200)) // 5ms of data
	lim, err := New(Config{Rate: bits / 8, Burst: burst})
	if err != nil {
		b.Fatal(err)
	}
	// Start with an empty bucket so the initial burst does not count.
	lim.AllowN(time.Now(), burst)
	sc := NewConn(c, nil, lim)
	buf := make([]byte, 256<<10)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, err := sc.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	sc.Close()
	r := <-out
	return float64(r.n) * 8 / r.elapsed.Seconds()
}
