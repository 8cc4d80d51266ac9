package detect_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
)

// asyncRecorder is a BatchWriter that records batches; fail decides the
// result of each call (nil = success).
type asyncRecorder struct {
	mu      sync.Mutex
	batches [][]string // event IDs per successful batch
	calls   int
	fail    func(call int) error
	gate    chan struct{} // when non-nil, each call waits for a token or ctx
}

func (r *asyncRecorder) WriteEvents(ctx context.Context, evs []detect.Event) error {
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fail != nil {
		if err := r.fail(r.calls); err != nil {
			return err
		}
	}
	ids := make([]string, len(evs))
	for i := range evs {
		ids[i] = evs[i].ID
	}
	r.batches = append(r.batches, ids)
	return nil
}

func (r *asyncRecorder) snapshot() (sizes []int, ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.batches {
		sizes = append(sizes, len(b))
		ids = append(ids, b...)
	}
	return sizes, ids
}

func asyncEvent(i int) detect.Event {
	return detect.Event{ID: strconv.Itoa(i), Module: "dns", Tenant: "t1"}
}

func asyncIDs(from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, strconv.Itoa(i))
	}
	return s
}

func TestNewAsyncConfig(t *testing.T) {
	w := &asyncRecorder{}
	tests := []struct {
		name string
		cfg  detect.AsyncConfig
		want string // substring of the error; "" = valid
	}{
		{"defaults", detect.AsyncConfig{Writer: w}, ""},
		{"no writer", detect.AsyncConfig{}, "Writer is required"},
		{"negative queue", detect.AsyncConfig{Writer: w, QueueSize: -1}, "QueueSize -1 is negative"},
		{"negative batch", detect.AsyncConfig{Writer: w, BatchSize: -2}, "BatchSize -2 is negative"},
		{"negative interval", detect.AsyncConfig{Writer: w, Interval: -time.Second}, "Interval -1s is negative"},
		{"negative attempts", detect.AsyncConfig{Writer: w, MaxAttempts: -1}, "MaxAttempts"},
		{"queue < batch", detect.AsyncConfig{Writer: w, QueueSize: 10, BatchSize: 20}, "QueueSize 10 is smaller than BatchSize 20"},
		{"queue < default batch", detect.AsyncConfig{Writer: w, QueueSize: 10}, "QueueSize 10 is smaller than BatchSize 1024"},
		{"retry max < min", detect.AsyncConfig{Writer: w, RetryMin: time.Second, RetryMax: time.Millisecond}, "RetryMax 1ms is smaller than RetryMin 1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := detect.NewAsync(tc.cfg)
			if tc.want == "" {
				require.NoError(t, err)
				require.NoError(t, a.Close(context.Background()))
				return
			}
			require.ErrorContains(t, err, tc.want)
			assert.Contains(t, err.Error(), "detect: async: ")
			assert.Nil(t, a)
		})
	}
}

func TestAsyncBatchesBySize(t *testing.T) {
	w := &asyncRecorder{}
	a, err := detect.NewAsync(detect.AsyncConfig{Writer: w, BatchSize: 100, QueueSize: 1000, Interval: time.Hour})
	require.NoError(t, err)
	for i := range 250 {
		a.Emit(asyncEvent(i))
	}
	require.Eventually(t, func() bool { s, _ := w.snapshot(); return len(s) == 2 }, 5*time.Second, time.Millisecond)
	require.NoError(t, a.Flush(context.Background()))
	sizes, ids := w.snapshot()
	assert.Equal(t, []int{100, 100, 50}, sizes)
	assert.Equal(t, asyncIDs(0, 250), ids)
	require.NoError(t, a.Close(context.Background()))
	assert.Equal(t, detect.AsyncStats{Emitted: 250, Written: 250}, a.Stats())
}

func TestAsyncBatchesByInterval(t *testing.T) {
	w := &asyncRecorder{}
	a, err := detect.NewAsync(detect.AsyncConfig{Writer: w, Interval: 20 * time.Millisecond})
	require.NoError(t, err)
	defer a.Close(context.Background())
	start := time.Now()
	for i := range 3 {
		a.Emit(asyncEvent(i))
	}
	require.Eventually(t, func() bool { _, ids := w.snapshot(); return len(ids) == 3 }, 5*time.Second, time.Millisecond)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Equal(t, uint64(3), a.Stats().Written)
}

// asyncLogBuffer is a concurrency-safe log destination.
type asyncLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *asyncLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *asyncLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestAsyncDropsWhenFull(t *testing.T) {
	w := &asyncRecorder{gate: make(chan struct{})}
	var logs asyncLogBuffer
	a, err := detect.NewAsync(detect.AsyncConfig{
		Writer: w, QueueSize: 4, BatchSize: 2, Interval: time.Hour,
		LogInterval: time.Millisecond,
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
	})
	require.NoError(t, err)
	for i := range 10 {
		a.Emit(asyncEvent(i)) // never blocks although the writer is stuck
	}
	st := a.Stats()
	assert.Equal(t, uint64(4), st.Emitted)
	assert.Equal(t, uint64(6), st.Dropped)
	assert.Equal(t, uint64(4), st.Queued)

	close(w.gate) // the destination comes back
	require.NoError(t, a.Flush(context.Background()))
	_, ids := w.snapshot()
	assert.Equal(t, asyncIDs(0, 4), ids, "the oldest events are kept")
	require.Eventually(t, func() bool {
		return bytes.Contains([]byte(logs.String()), []byte("dropped=6"))
	}, 5*time.Second, time.Millisecond, "drops are logged with their count: %s", logs.String())

	require.NoError(t, a.Close(context.Background()))
	a.Emit(asyncEvent(99)) // after Close: dropped
	assert.Equal(t, detect.AsyncStats{Emitted: 4, Written: 4, Dropped: 7}, a.Stats())
}

func TestAsyncRetries(t *testing.T) {
	boom := errors.New("destination down")
	tests := []struct {
		name        string
		maxAttempts int
		fail        func(call int) error
		want        detect.AsyncStats
		wantIDs     []string
	}{
		{
			name: "recovers",
			fail: func(call int) error {
				if call <= 3 {
					return boom
				}
				return nil
			},
			want:    detect.AsyncStats{Emitted: 5, Written: 5, WriteErrors: 3},
			wantIDs: asyncIDs(0, 5),
		},
		{
			name:        "max attempts",
			maxAttempts: 2,
			fail:        func(int) error { return boom },
			want:        detect.AsyncStats{Emitted: 5, Failed: 5, WriteErrors: 2},
		},
		{
			name: "permanent",
			fail: func(int) error { return fmt.Errorf("wrap: %w", detect.Permanent(boom)) },
			want: detect.AsyncStats{Emitted: 5, Failed: 5, WriteErrors: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &asyncRecorder{fail: tc.fail}
			a, err := detect.NewAsync(detect.AsyncConfig{
				Writer: w, Interval: time.Hour, MaxAttempts: tc.maxAttempts,
				RetryMin: time.Millisecond, RetryMax: 4 * time.Millisecond,
			})
			require.NoError(t, err)
			for i := range 5 {
				a.Emit(asyncEvent(i))
			}
			require.NoError(t, a.Flush(context.Background()))
			require.NoError(t, a.Close(context.Background()))
			assert.Equal(t, tc.want, a.Stats())
			_, ids := w.snapshot()
			assert.Equal(t, tc.wantIDs, ids)
		})
	}
}

func TestAsyncCloseDeadline(t *testing.T) {
	w := &asyncRecorder{gate: make(chan struct{})} // never opens
	a, err := detect.NewAsync(detect.AsyncConfig{Writer: w, BatchSize: 2, QueueSize: 10, Interval: time.Hour})
	require.NoError(t, err)
	for i := range 5 {
		a.Emit(asyncEvent(i))
	}

	fctx, fcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer fcancel()
	require.ErrorIs(t, a.Flush(fctx), context.DeadlineExceeded)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = a.Close(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "detect: async close: 5 events not written")
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, err, a.Close(context.Background()), "Close is idempotent")
	st := a.Stats()
	assert.Equal(t, uint64(5), st.Emitted)
	assert.Equal(t, uint64(5), st.Failed)
	assert.Zero(t, st.Queued)
	assert.Zero(t, st.Written)
}

func TestAsyncConcurrent(t *testing.T) {
	w := &asyncRecorder{fail: func(call int) error {
		if call%3 == 0 {
			return errors.New("flaky")
		}
		return nil
	}}
	a, err := detect.NewAsync(detect.AsyncConfig{
		Writer: w, BatchSize: 64, QueueSize: 512, Interval: time.Millisecond,
		RetryMin: time.Microsecond, RetryMax: time.Millisecond,
	})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				a.Emit(asyncEvent(g*10000 + i))
				if i%500 == 0 {
					_ = a.Stats()
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, a.Close(context.Background()))
	st := a.Stats()
	assert.Equal(t, uint64(16000), st.Emitted+st.Dropped)
	assert.Equal(t, st.Emitted, st.Written)
	assert.Zero(t, st.Failed)
	assert.Zero(t, st.Queued)
	_, ids := w.snapshot()
	assert.Len(t, ids, int(st.Written))
}

func TestPermanent(t *testing.T) {
	assert.NoError(t, detect.Permanent(nil))
	base := errors.New("bad")
	err := fmt.Errorf("x: %w", detect.Permanent(base))
	assert.True(t, detect.IsPermanent(err))
	assert.ErrorIs(t, err, base)
	assert.Equal(t, "x: bad", err.Error())
	assert.False(t, detect.IsPermanent(base))
}

// asyncPrintWriter is a BatchWriter that prints each batch.
type asyncPrintWriter struct{}

func (asyncPrintWriter) WriteEvents(_ context.Context, evs []detect.Event) error {
	for _, e := range evs {
		fmt.Println(e.Module, e.Tenant, e.Verdict.Action)
	}
	return nil
}

func ExampleNewAsync() {
	sink, err := detect.NewAsync(detect.AsyncConfig{
		Writer:    asyncPrintWriter{}, // e.g. a syslog.Writer or a natsink.Writer
		QueueSize: 65536,
	})
	if err != nil {
		panic(err)
	}
	sink.Emit(detect.Event{Module: "dns", Tenant: "tokyo-a", Verdict: detect.Verdict{Action: detect.ActionSinkhole}})
	sink.Emit(detect.Event{Module: "proxy", Tenant: "tokyo-b", Verdict: detect.Verdict{Action: detect.ActionBlock}})

	// On shutdown: write what is queued, waiting at most 5 s.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sink.Close(ctx); err != nil {
		fmt.Println(err)
	}
	st := sink.Stats()
	fmt.Println("written", st.Written, "dropped", st.Dropped)
	// Output:
	// dns tokyo-a sinkhole
	// proxy tokyo-b block
	// written 2 dropped 0
}

type asyncDiscardWriter struct{}

func (asyncDiscardWriter) WriteEvents(context.Context, []detect.Event) error { return nil }

// asyncBlockWriter blocks until ctx ends: the destination is down.
type asyncBlockWriter struct{}

func (asyncBlockWriter) WriteEvents(ctx context.Context, _ []detect.Event) error {
	<-ctx.Done()
	return ctx.Err()
}

func asyncBenchEvent() detect.Event {
	return detect.Event{
		Time: time.Unix(1700000000, 0), Module: "proxy", Action: "http_request",
		Tenant: "t1", URL: "http://example.jp/", Verdict: detect.Verdict{Action: detect.ActionAllow},
	}
}

// BenchmarkAsyncEmit measures Emit on the hot path with a writer that keeps
// up (the queue is not full).
func BenchmarkAsyncEmit(b *testing.B) {
	a, err := detect.NewAsync(detect.AsyncConfig{Writer: asyncDiscardWriter{}, QueueSize: 1 << 16})
	require.NoError(b, err)
	defer a.Close(context.Background())
	e := asyncBenchEvent()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a.Emit(e)
		}
	})
	b.StopTimer()
	st := a.Stats()
	b.ReportMetric(float64(st.Dropped)/float64(b.N), "dropped/op")
}

// BenchmarkAsyncEmitFull measures Emit when the destination is down and
// every event is dropped.
func BenchmarkAsyncEmitFull(b *testing.B) {
	a, err := detect.NewAsync(detect.AsyncConfig{Writer: asyncBlockWriter{}, QueueSize: 1024, BatchSize: 1024})
	require.NoError(b, err)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		_ = a.Close(ctx)
	}()
	e := asyncBenchEvent()
	for range 1024 {
		a.Emit(e)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a.Emit(e)
		}
	})
}

// BenchmarkAsyncEmitAccepted measures Emit when every event is accepted:
// the queue is drained (timer stopped) before it can fill.
func BenchmarkAsyncEmitAccepted(b *testing.B) {
	const queue = 1 << 15
	a, err := detect.NewAsync(detect.AsyncConfig{Writer: asyncDiscardWriter{}, QueueSize: queue, Interval: time.Hour})
	require.NoError(b, err)
	defer a.Close(context.Background())
	e := asyncBenchEvent()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%(queue/2) == 0 {
			b.StopTimer()
			require.NoError(b, a.Flush(context.Background()))
			b.StartTimer()
		}
		a.Emit(e)
	}
	b.StopTimer()
	assert.Zero(b, a.Stats().Dropped)
}

func TestAsyncStatsInvariant(t *testing.T) {
	w := &asyncRecorder{fail: func(call int) error {
		if call%4 == 0 {
			return errors.New("flaky")
		}
		return nil
	}}
	a, err := detect.NewAsync(detect.AsyncConfig{
		Writer: w, BatchSize: 16, QueueSize: 64, Interval: time.Millisecond,
		MaxAttempts: 2, RetryMin: time.Microsecond, RetryMax: time.Microsecond,
	})
	require.NoError(t, err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
				a.Emit(asyncEvent(i))
			}
		}
	})
	for range 2000 {
		st := a.Stats()
		require.Equal(t, st.Emitted, st.Written+st.Failed+st.Queued, "%+v", st)
	}
	close(stop)
	wg.Wait()
	require.NoError(t, a.Close(context.Background()))
	st := a.Stats()
	assert.Equal(t, st.Emitted, st.Written+st.Failed)
	assert.Zero(t, st.Queued)
}
