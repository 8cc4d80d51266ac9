package natsink_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/natsink"
)

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  natsink.Config
		want string
	}{
		{"no url", natsink.Config{}, "natsink: URL or Conn is required"},
		{"prefix wildcard", natsink.Config{URL: "nats://127.0.0.1:1", SubjectPrefix: "a.*"}, `natsink: SubjectPrefix "a.*": token "*"`},
		{"prefix empty token", natsink.Config{URL: "nats://127.0.0.1:1", SubjectPrefix: "a..b"}, "empty token"},
		{"stream dot", natsink.Config{URL: "nats://127.0.0.1:1", Stream: "a.b"}, `natsink: Stream "a.b"`},
		{"ack timeout", natsink.Config{URL: "nats://127.0.0.1:1", AckTimeout: -1}, "natsink: AckTimeout"},
		{"max pending", natsink.Config{URL: "nats://127.0.0.1:1", MaxPending: -1}, "natsink: MaxPending -1"},
		{"replicas", natsink.Config{URL: "nats://127.0.0.1:1", StreamReplicas: 7}, "natsink: StreamReplicas 7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := natsink.New(tc.cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestSubject(t *testing.T) {
	tests := []struct {
		module, tenant, want string
	}{
		{"dns", "tokyo-a", "seccloud.events.dns.tokyo-a"},
		{"proxy", "", "seccloud.events.proxy._"},
		{"", "t_1", "seccloud.events._.t_1"},
		{"a.b", "x*y>z", "seccloud.events.a%2Eb.x%2Ay%3Ez"},
		{"waf", "大阪", "seccloud.events.waf.%E5%A4%A7%E9%98%AA"},
		{"m", "sp ace\t%", "seccloud.events.m.sp%20ace%09%25"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			e := detect.Event{Module: tc.module, Tenant: tc.tenant}
			assert.Equal(t, tc.want, natsink.Subject("seccloud.events", &e))
		})
	}
}

func ExampleSubject() {
	e := detect.Event{Module: "dns", Tenant: "tokyo.chiyoda"}
	fmt.Println(natsink.Subject(natsink.DefaultSubjectPrefix, &e))
	// Output: seccloud.events.dns.tokyo%2Echiyoda
}

func testEvents(prefix string, from, n int) []detect.Event {
	evs := make([]detect.Event, n)
	for i := range evs {
		k := from + i
		evs[i] = detect.Event{
			Time:     time.Date(2025, 4, 1, 12, 0, 0, k, time.UTC),
			ID:       eventID(prefix, k),
			Module:   []string{"dns", "proxy", "mail", "waf.x"}[k%4],
			Tenant:   []string{"tokyo-a", "大阪市", ""}[k%3],
			Severity: detect.Severity(k % 4),
			Client:   netip.MustParseAddrPort("127.0.1.5:40000"),
			Verdict:  detect.Verdict{Action: detect.ActionBlock, Rule: "r1"},
			Message:  "日本語 \x00\xff",
		}
	}
	return evs
}

func newWriter(t testing.TB, cfg natsink.Config) *natsink.Writer {
	t.Helper()
	w, err := natsink.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func checkStored(t *testing.T, prefix string, sent []detect.Event, got []stored) {
	t.Helper()
	require.Len(t, got, len(sent))
	for i, m := range got {
		e := &sent[i]
		assert.Equal(t, natsink.Subject(prefix, e), m.Subject)
		var gotEv, wantEv detect.Event
		require.NoError(t, detect.DecodeECS(m.Data, &gotEv))
		require.NoError(t, detect.DecodeECS(detect.AppendECS(nil, e), &wantEv))
		assert.Equal(t, wantEv, gotEv)
		if e.ID != "" {
			assert.Equal(t, e.ID, m.MsgID)
		} else {
			assert.True(t, strings.HasPrefix(m.MsgID, "sha256-"), m.MsgID)
		}
	}
}

func TestWriterJetStream(t *testing.T) {
	s := startNATS(t)
	w := newWriter(t, natsink.Config{URL: s.url(), CreateStream: true, SubjectPrefix: "gw.events"})
	ctx := context.Background()
	evs := testEvents("a", 0, 300)
	evs[7].ID = "" // a content-hash Nats-Msg-Id
	require.NoError(t, w.WriteEvents(ctx, evs[:100]))
	require.NoError(t, w.WriteEvents(ctx, evs[100:]))
	// A batch retried whole (after a partial failure) is stored once.
	require.NoError(t, w.WriteEvents(ctx, evs[:100]))
	checkStored(t, "gw.events", evs, readStream(t, s.url(), natsink.DefaultStream))
	assert.Zero(t, w.Rejected())
}

func TestWriterNoStream(t *testing.T) {
	s := startNATS(t)
	w := newWriter(t, natsink.Config{URL: s.url(), AckTimeout: 2 * time.Second})
	err := w.WriteEvents(context.Background(), testEvents("n", 0, 3))
	require.ErrorContains(t, err, "natsink: 3 of 3 events not acknowledged")
}

func TestWriterNoServer(t *testing.T) {
	w := newWriter(t, natsink.Config{URL: "nats://127.0.0.1:1"})
	err := w.WriteEvents(context.Background(), testEvents("x", 0, 1))
	require.ErrorContains(t, err, "natsink: not connected to nats://127.0.0.1:1")
}

func TestWriterRejectsOversized(t *testing.T) {
	s := startNATS(t)
	w := newWriter(t, natsink.Config{URL: s.url(), CreateStream: true})
	evs := testEvents("big", 0, 3)
	evs[1].Message = strings.Repeat("x", 2<<20) // beyond the default 1 MB max payload
	require.NoError(t, w.WriteEvents(context.Background(), evs))
	assert.Equal(t, uint64(1), w.Rejected())
	checkStored(t, natsink.DefaultSubjectPrefix, []detect.Event{evs[0], evs[2]},
		readStream(t, s.url(), natsink.DefaultStream))
}

// ackRecorder wraps a BatchWriter and remembers the events it reported
// durable.
type ackRecorder struct {
	w     detect.BatchWriter
	mu    sync.Mutex
	acked []string
}

func (r *ackRecorder) WriteEvents(ctx context.Context, evs []detect.Event) error {
	if err := r.w.WriteEvents(ctx, evs); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range evs {
		r.acked = append(r.acked, evs[i].ID)
	}
	return nil
}

func (r *ackRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.acked)
}

// TestWriterRestart emits a steady flow through an Async sink, stops
// nats-server in the middle, starts it again on the same store, and checks
// every acknowledged event is in the stream exactly once and the writer
// recovered.
func TestWriterRestart(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			s := startNATS(t)
			w := newWriter(t, natsink.Config{URL: s.url(), CreateStream: true, AckTimeout: 2 * time.Second})
			rec := &ackRecorder{w: w}
			a, err := detect.NewAsync(detect.AsyncConfig{
				Writer: rec, BatchSize: 100, Interval: 5 * time.Millisecond,
				RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond,
				WriteTimeout: 5 * time.Second,
			})
			require.NoError(t, err)

			const total = 3000
			evs := testEvents("r", 0, total)
			emitted := make(chan struct{})
			go func() {
				defer close(emitted)
				for i := range evs {
					a.Emit(evs[i])
					if i%5 == 0 {
						time.Sleep(time.Millisecond)
					}
				}
			}()
			require.Eventually(t, func() bool { return rec.count() >= 500 }, 20*time.Second, time.Millisecond)
			s.stop(sig)
			ackedBefore := rec.count()
			time.Sleep(300 * time.Millisecond)
			s.start()
			<-emitted
			require.Less(t, ackedBefore, total/2, "the server stopped mid-stream")

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, a.Close(ctx))
			st := a.Stats()
			assert.Equal(t, uint64(total), st.Emitted, "the queue never filled")
			assert.Equal(t, uint64(total), st.Written, "the writer recovered")
			assert.NotZero(t, st.WriteErrors, "the restart was seen")

			got := readStream(t, s.url(), natsink.DefaultStream)
			ids := make(map[string]int, len(got))
			for _, m := range got {
				ids[m.MsgID]++
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			lost := 0
			for _, id := range rec.acked {
				if ids[id] == 0 {
					lost++
				}
			}
			assert.Zero(t, lost, "acknowledged events lost (%d acknowledged before the stop)", ackedBefore)
			for id, n := range ids {
				assert.Equal(t, 1, n, "event %s stored %d times", id, n)
			}
			assert.Len(t, got, total)
		})
	}
}

// BenchmarkWriteEventsJetStream measures events/s published with
// acknowledgement to a real nats-server (file storage), in batches of 1024.
func BenchmarkWriteEventsJetStream(b *testing.B) {
	s := startNATS(b)
	w := newWriter(b, natsink.Config{URL: s.url(), CreateStream: true, StreamMaxAge: time.Hour})
	ctx := context.Background()
	evs := testEvents("b", 0, 1024)
	for i := range evs {
		evs[i].ID = "" // content-hash ids; vary the time so none is a duplicate
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for i := range evs {
			evs[i].Time = evs[i].Time.Add(time.Microsecond)
		}
		require.NoError(b, w.WriteEvents(ctx, evs))
		n += len(evs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
