package store_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
	"github.com/jichitai/seccloud/detect/store/internal/gen"
)

// pool is a set of realistic events (33 tenants; proxy, dns, mail, waf)
// reused by the benchmarks with fresh times.
func pool(n int) []detect.Event {
	return gen.New(42, 33).Batch(make([]detect.Event, 0, n), n, day0, time.Millisecond)
}

// dayStep spreads 2,000,000 events over a UTC day.
const dayStep = 24 * time.Hour / 2_000_000

// BenchmarkIngest writes realistic events in batches of 1000 (what the
// asynchronous sink hands over) through one writer, compression on. One op
// is one event. It reports events/s and disk bytes per event of the sealed
// segments.
func BenchmarkIngest(b *testing.B) {
	benchIngest(b, 1)
}

// BenchmarkIngestParallel is BenchmarkIngest with one writer per CPU.
func BenchmarkIngestParallel(b *testing.B) {
	benchIngest(b, 0)
}

func benchIngest(b *testing.B, writers int) {
	evs := pool(100_000)
	dir := b.TempDir()
	now := day0.Add(time.Hour)
	s, err := store.Open(store.Config{Dir: dir, Now: func() time.Time { return now }})
	require.NoError(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	const batch = 1000
	if writers == 1 {
		buf := make([]detect.Event, batch)
		for i := 0; i < b.N; i += batch {
			n := min(batch, b.N-i)
			for j := range n {
				buf[j] = evs[(i+j)%len(evs)]
				buf[j].Time = day0.Add(time.Duration(i+j) * dayStep)
			}
			if err := s.WriteEvents(context.Background(), buf[:n]); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		var next atomicCounter
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]detect.Event, 0, batch)
			for pb.Next() {
				i := next.add()
				e := evs[i%int64(len(evs))]
				e.Time = day0.Add(time.Duration(i) * dayStep)
				buf = append(buf, e)
				if len(buf) == batch {
					if err := s.WriteEvents(context.Background(), buf); err != nil {
						b.Error(err)
						return
					}
					buf = buf[:0]
				}
			}
			if len(buf) > 0 {
				if err := s.WriteEvents(context.Background(), buf); err != nil {
					b.Error(err)
				}
			}
		})
	}
	el, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
	// On a shared machine wall time depends on the neighbours; CPU time
	// (user+system of this process, GC included) does not.
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
	require.NoError(b, s.Close())
	// Seal everything and measure the segments.
	now = day0.Add(365 * 24 * time.Hour)
	s, err = store.Open(store.Config{Dir: dir, Now: func() time.Time { return now }})
	require.NoError(b, err)
	require.NoError(b, s.Close())
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	var total int64
	for _, p := range segs {
		st, err := os.Stat(p)
		require.NoError(b, err)
		total += st.Size()
	}
	b.ReportMetric(float64(total)/float64(b.N), "disk-B/event")
}

// BenchmarkQueryOneTenantDay queries one tenant's day from a store of 3
// days × 300,000 events (the 30 days × 2 M figure is BenchmarkBigQuery,
// build tag bigstore).
func BenchmarkQueryOneTenantDay(b *testing.B) {
	dir := b.TempDir()
	evs := pool(100_000)
	s, err := store.Open(store.Config{Dir: dir, Now: func() time.Time { return day0.Add(10 * 24 * time.Hour) }})
	require.NoError(b, err)
	buf := make([]detect.Event, 1000)
	const perDay = 300_000
	for i := 0; i < 3*perDay; i += len(buf) {
		for j := range buf {
			buf[j] = evs[(i+j)%len(evs)]
			buf[j].Time = day0.Add(time.Duration((i+j)/perDay)*24*time.Hour + time.Duration((i+j)%perDay)*(24*time.Hour/perDay))
		}
		require.NoError(b, s.WriteEvents(context.Background(), buf))
	}
	require.NoError(b, s.Close())
	s, err = store.Open(store.Config{Dir: dir, Now: func() time.Time { return day0.Add(10 * 24 * time.Hour) }})
	require.NoError(b, err)
	defer s.Close()
	f := store.Filter{Tenant: "t07", Since: day0.Add(24 * time.Hour), Until: day0.Add(48 * time.Hour)}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		n = 0
		if err := s.Query(context.Background(), f, func(detect.Event) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "events/query")
}

// cpuTime returns the user+system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
