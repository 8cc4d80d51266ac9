// Command siem-sink forwards seccloud events to an integrator's SIEM over
// HTTP: a detect.BatchWriter POSTs each batch as ECS JSON lines, behind a
// detect.Async that batches, retries with backoff and never blocks the data
// path. Here the events come from seccloud's forward proxy.
//
//	go run ./examples/siem-sink -demo-siem
//	curl --interface 127.0.1.5 -x http://127.0.0.1:3128 http://127.0.0.1:8000/
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/tenant"
)

// SIEMConfig configures a SIEMWriter.
type SIEMConfig struct {
	// URL receives the POSTs (http or https). Required.
	URL string
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// Client sends the requests; nil means a client with a 10 s timeout.
	Client *http.Client
}

// SIEMWriter is a detect.BatchWriter that POSTs a batch of events as ECS
// JSON lines (Content-Type application/x-ndjson). A 2xx answer means the
// batch is stored. 408, 429 and 5xx answers and network errors are
// returned as errors, so detect.Async retries the batch with backoff; any
// other answer is a detect.Permanent error (the batch is given up and
// counted). Every request of one batch, retries included, carries the same
// Idempotency-Key (the body's SHA-256), so a SIEM can drop duplicates.
//
// Async calls it from one goroutine; it is not safe for concurrent use.
type SIEMWriter struct {
	cfg SIEMConfig
	buf bytes.Buffer
}

var _ detect.BatchWriter = (*SIEMWriter)(nil)

// NewSIEMWriter validates cfg.
func NewSIEMWriter(cfg SIEMConfig) (*SIEMWriter, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("siem-sink: SIEMConfig.URL %q: want an http(s) URL", cfg.URL)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	return &SIEMWriter{cfg: cfg}, nil
}

// WriteEvents implements detect.BatchWriter.
func (w *SIEMWriter) WriteEvents(ctx context.Context, events []detect.Event) error {
	w.buf.Reset()
	var line []byte
	for i := range events {
		line = append(detect.AppendECS(line[:0], &events[i]), '\n')
		w.buf.Write(line)
	}
	sum := sha256.Sum256(w.buf.Bytes())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(w.buf.Bytes()))
	if err != nil {
		return detect.Permanent(fmt.Errorf("siem-sink: %w", err))
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Idempotency-Key", hex.EncodeToString(sum[:16]))
	if w.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+w.cfg.Token)
	}
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("siem-sink: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return fmt.Errorf("siem-sink: %s answered %s", w.cfg.URL, resp.Status)
	default:
		return detect.Permanent(fmt.Errorf("siem-sink: %s refused the batch: %s", w.cfg.URL, resp.Status))
	}
}

// Config configures the example: the proxy for one tenant, its events
// forwarded to the SIEM.
type Config struct {
	// Listen is the proxy's address; Network the tenant's source prefix.
	Listen  string
	Network netip.Prefix
	// SIEM is where events go.
	SIEM SIEMConfig
	// Interval is the longest an event waits for its batch; zero means
	// one second.
	Interval time.Duration
	// Logger receives operational records; nil discards them.
	Logger *slog.Logger
}

// run serves until ctx ends, then drains the proxy and flushes the events;
// ready, if not nil, receives the proxy's address.
func run(ctx context.Context, cfg Config, ready chan<- string) error {
	w, err := NewSIEMWriter(cfg.SIEM)
	if err != nil {
		return err
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	events, err := detect.NewAsync(detect.AsyncConfig{
		Writer:   w,
		Interval: cfg.Interval,
		RetryMin: 200 * time.Millisecond,
		RetryMax: time.Minute,
		Logger:   cfg.Logger, // drops and failed writes are logged here
	})
	if err != nil {
		return fmt.Errorf("siem-sink: %w", err)
	}
	dir, err := tenant.NewSnapshot([]tenant.Tenant{{ID: "demo", Name: "デモ市",
		Networks: []netip.Prefix{cfg.Network}, EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}}, tenant.Options{})
	if err != nil {
		return fmt.Errorf("siem-sink: %w", err)
	}
	srv, err := proxy.New(proxy.Config{Directory: dir, Sink: events, Logger: cfg.Logger,
		AllowDestinations: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}) // a loopback demo origin
	if err != nil {
		return fmt.Errorf("siem-sink: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("siem-sink: %w", err)
	}
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = errors.Join(err, srv.Shutdown(sctx), events.Close(sctx)) // proxy first: no Emit after Close
	st := events.Stats()
	if cfg.Logger != nil {
		cfg.Logger.Info("events", "written", st.Written, "failed", st.Failed, "dropped", st.Dropped, "write_errors", st.WriteErrors)
	}
	return err
}

// demoSIEM is a stand-in SIEM on loopback that prints what it receives.
func demoSIEM(out io.Writer) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(nil, 1<<20)
		n := 0
		for sc.Scan() {
			fmt.Fprintf(out, "SIEM received: %s\n", sc.Bytes())
			n++
		}
		fmt.Fprintf(out, "SIEM batch of %d events, Idempotency-Key %s\n", n, r.Header.Get("Idempotency-Key"))
	}))
}

func main() {
	listen := flag.String("listen", "127.0.0.1:3128", "proxy listen address")
	network := flag.String("net", "127.0.1.0/24", "the tenant's source network")
	siem := flag.String("siem", "", "the SIEM's HTTP endpoint")
	demo := flag.Bool("demo-siem", false, "start a stand-in SIEM on loopback that prints what it receives")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg := Config{Listen: *listen, SIEM: SIEMConfig{URL: *siem, Token: os.Getenv("SIEM_TOKEN")}, Logger: log}
	var err error
	if cfg.Network, err = netip.ParsePrefix(*network); err != nil {
		log.Error("-net", "err", err)
		os.Exit(2)
	}
	if *demo {
		s := demoSIEM(os.Stdout)
		defer s.Close()
		cfg.SIEM.URL = s.URL
	}
	log.Info("proxy listening", "addr", cfg.Listen, "siem", cfg.SIEM.URL)
	if err := run(ctx, cfg, nil); err != nil {
		log.Error("siem-sink", "err", err)
		os.Exit(1)
	}
}
