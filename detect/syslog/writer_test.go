package syslog_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/syslog"
)

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  syslog.Config
		want string
	}{
		{"minimal", syslog.Config{Addr: "127.0.0.1:514"}, ""},
		{"no addr", syslog.Config{}, "syslog: Addr is required"},
		{"bad addr", syslog.Config{Addr: "127.0.0.1"}, `syslog: Addr "127.0.0.1"`},
		{"facility", syslog.Config{Addr: "h:1", Facility: 24}, "syslog: Facility 24 out of range"},
		{"dial timeout", syslog.Config{Addr: "h:1", DialTimeout: -1}, "syslog: DialTimeout"},
		{"write timeout", syslog.Config{Addr: "h:1", WriteTimeout: -1}, "syslog: WriteTimeout"},
		{"sdid space", syslog.Config{Addr: "h:1", SDID: "a b"}, `syslog: SDID "a b": invalid character ' '`},
		{"sdid long", syslog.Config{Addr: "h:1", SDID: strings.Repeat("a", 33)}, "must be 1 to 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := syslog.New(tc.cfg)
			if tc.want == "" {
				require.NoError(t, err)
				require.NoError(t, w.Close())
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestDefaultSeverity(t *testing.T) {
	tests := []struct {
		name string
		e    detect.Event
		want syslog.Severity
	}{
		{"succeeded", detect.Event{Severity: detect.SeveritySucceeded}, syslog.SevAlert},
		{"reached", detect.Event{Severity: detect.SeverityReached}, syslog.SevError},
		{"stopped", detect.Event{Severity: detect.SeverityStopped}, syslog.SevWarning},
		{"blocked scan", detect.Event{Verdict: detect.Verdict{Action: detect.ActionBlock}}, syslog.SevNotice},
		{"report-only", detect.Event{Verdict: detect.Verdict{Action: detect.ActionReport}}, syslog.SevNotice},
		{"alert kind", detect.Event{Kind: "alert"}, syslog.SevNotice},
		{"allowed", detect.Event{Verdict: detect.Verdict{Action: detect.ActionAllow}}, syslog.SevInfo},
		{"plain", detect.Event{}, syslog.SevInfo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, syslog.DefaultSeverity(&tc.e))
		})
	}
}

// sdEscape escapes a param value as RFC 5424 section 6.3.3 asks.
func sdEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(s)
}

// checkReceived compares what rsyslog parsed with the events sent.
func checkReceived(t *testing.T, sent []detect.Event, got []received, input string) {
	t.Helper()
	require.Len(t, got, len(sent))
	for i, m := range got {
		e := &sent[i]
		assert.Equal(t, input, m.Input)
		assert.Equal(t, strconv.Itoa(16*8+int(syslog.DefaultSeverity(e))), m.PRI, "PRI of %s", e.ID)
		assert.Equal(t, "gw1.example.lg.jp", m.Host)
		assert.Equal(t, "seccloud", m.App)
		assert.Equal(t, "4242", m.ProcID)
		assert.Equal(t, e.Module, m.MsgID)
		ts, err := time.Parse(time.RFC3339Nano, m.TS)
		require.NoError(t, err)
		assert.True(t, e.Time.Truncate(time.Microsecond).Equal(ts), "timestamp %s", m.TS)
		wantSD := fmt.Sprintf(`[seccloud@32473 severity="%d"`, e.Severity)
		if e.Tenant != "" {
			wantSD += ` tenant="` + sdEscape(e.Tenant) + `"`
		}
		assert.True(t, strings.HasPrefix(m.SD, wantSD), "SD %s, want prefix %s", m.SD, wantSD)
		assert.Contains(t, m.SD, ` id="`+e.ID+`"`)

		// MSG is the ECS JSON: it decodes to the same event as the
		// encoder's own round trip.
		var gotEv, wantEv detect.Event
		require.NoError(t, detect.DecodeECS([]byte(m.Msg), &gotEv), "msg %q", m.Msg)
		require.NoError(t, detect.DecodeECS(detect.AppendECS(nil, e), &wantEv))
		assert.Equal(t, wantEv, gotEv)
		assert.Contains(t, m.Msg, "日本語")
	}
}

func newTestWriter(t *testing.T, addr string, tlsCfg *tls.Config) *syslog.Writer {
	t.Helper()
	w, err := syslog.New(syslog.Config{
		Addr: addr, TLS: tlsCfg, Hostname: "gw1.example.lg.jp", ProcID: "4242",
		WriteTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func TestWriterRsyslog(t *testing.T) {
	r := startRsyslog(t)
	for _, tc := range []struct {
		name, input string
		addr        string
		tls         *tls.Config
	}{
		{"tcp", "plain", r.plainAddr, nil},
		{"tls", "tls", r.tlsAddr, r.tlsConfig()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestWriter(t, tc.addr, tc.tls)
			evs := testEvents(300, tc.name)
			ctx := context.Background()
			// Several batches over the same connection.
			for i := 0; i < len(evs); i += 128 {
				require.NoError(t, w.WriteEvents(ctx, evs[i:min(i+128, len(evs))]))
			}
			checkReceived(t, evs, r.waitFor(tc.input, len(evs)), tc.input)
		})
	}
}

func TestWriterTLSVerifiesServer(t *testing.T) {
	r := startRsyslog(t)
	w := newTestWriter(t, r.tlsAddr, &tls.Config{MinVersion: tls.VersionTLS12}) // system roots: the test CA is unknown
	err := w.WriteEvents(context.Background(), testEvents(1, "x"))
	require.ErrorContains(t, err, "syslog: tls handshake with "+r.tlsAddr)
}

// TestWriterReconnect stops rsyslog, keeps emitting through an Async sink,
// restarts rsyslog and checks every event arrived.
func TestWriterReconnect(t *testing.T) {
	r := startRsyslog(t)
	w := newTestWriter(t, r.plainAddr, nil)
	a, err := detect.NewAsync(detect.AsyncConfig{
		Writer: w, Interval: 10 * time.Millisecond,
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	evs := testEvents(60, "re")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, e := range evs[:20] {
		a.Emit(e)
	}
	require.NoError(t, a.Flush(ctx))
	r.waitFor("plain", 20)

	r.stop()
	// Let the writer see the close: syslog over TCP has no
	// acknowledgement, so a batch written into the dying connection
	// would be lost (see the Writer documentation).
	time.Sleep(200 * time.Millisecond)
	for _, e := range evs[20:40] {
		a.Emit(e)
	}
	require.Eventually(t, func() bool { return a.Stats().WriteErrors > 0 }, 10*time.Second, 5*time.Millisecond)

	r.start()
	for _, e := range evs[40:] {
		a.Emit(e)
	}
	require.NoError(t, a.Close(ctx))
	st := a.Stats()
	assert.Equal(t, detect.AsyncStats{Emitted: 60, Written: 60, WriteErrors: st.WriteErrors}, st)
	checkReceived(t, evs, r.waitFor("plain", 60), "plain")
}

func TestWriterContextCancelled(t *testing.T) {
	// A receiver that accepts and never reads, with small socket buffers:
	// the write blocks until the context ends.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
			time.Sleep(10 * time.Second)
		}
	}()
	w, err := syslog.New(syslog.Config{
		Addr: l.Addr().String(),
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				_ = c.(*net.TCPConn).SetWriteBuffer(4096)
			}
			return c, err
		},
	})
	require.NoError(t, err)
	defer w.Close()
	// Connect first, so only the write meets the deadline.
	require.NoError(t, w.WriteEvents(context.Background(), testEvents(1, "small")))
	big := testEvents(1, "big")
	big[0].Message = strings.Repeat("x", 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = w.WriteEvents(ctx, big)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "syslog: write 1 events to "+l.Addr().String())
	assert.Less(t, time.Since(start), 5*time.Second)
}

func ExampleNew() {
	// A fake receiver: print what arrives. In production leave Dial nil
	// and set Addr (and TLS) to the SIEM's syslog listener.
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b, _ := io.ReadAll(server)
		fmt.Printf("%s\n", b)
	}()
	w, err := syslog.New(syslog.Config{
		Addr:     "siem.example.lg.jp:6514",
		Hostname: "gw1",
		ProcID:   "42",
		Dial:     func(context.Context, string, string) (net.Conn, error) { return client, nil },
	})
	if err != nil {
		panic(err)
	}
	err = w.WriteEvents(context.Background(), []detect.Event{{
		Time:     time.Date(2025, 4, 1, 3, 4, 5, 0, time.UTC),
		Module:   "dns",
		Tenant:   "tokyo-a",
		Severity: detect.SeverityStopped,
		Verdict:  detect.Verdict{Action: detect.ActionSinkhole, Rule: "intel-domain"},
	}})
	if err != nil {
		panic(err)
	}
	w.Close()
	<-done
	// Output:
	// 353 <132>1 2025-04-01T03:04:05.000000Z gw1 seccloud 42 dns [seccloud@32473 severity="1" tenant="tokyo-a" verdict="sinkhole" rule="intel-domain"] {"@timestamp":"2025-04-01T03:04:05Z","ecs":{"version":"8.11.0"},"event":{"kind":"event","module":"dns","severity":1},"organization":{"id":"tokyo-a"},"rule":{"id":"intel-domain"},"seccloud":{"verdict":"sinkhole"}}
}

// BenchmarkWriteEventsRsyslog measures events/s sent to a real rsyslogd in
// batches of 1024 (plain TCP and TLS).
func BenchmarkWriteEventsRsyslog(b *testing.B) {
	r := startRsyslog(b)
	for _, tc := range []struct {
		name string
		addr string
		tls  *tls.Config
	}{
		{"tcp", r.plainAddr, nil},
		{"tls", r.tlsAddr, r.tlsConfig()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w, err := syslog.New(syslog.Config{Addr: tc.addr, TLS: tc.tls})
			require.NoError(b, err)
			defer w.Close()
			evs := testEvents(1024, "bench")
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				require.NoError(b, w.WriteEvents(context.Background(), evs))
				n += len(evs)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
