// Command waf-alone runs seccloud's WAF reverse proxy (waf) on its own in
// front of one origin: one tenant, one site, an integrator's own
// inspection rule (a waf.Engine refusing paths under given prefixes), and
// one ECS JSON line per request on standard output, written through a
// detect.Async so the proxy never waits for the output.
//
//	go run ./examples/waf-alone -origin http://127.0.0.1:8000 -host www.city.example.jp
//	curl -H 'Host: www.city.example.jp' http://127.0.0.1:8080/
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf"
)

// Config configures the gateway. Host and Origin are required.
type Config struct {
	// Addr is the HTTP listen address; "127.0.0.1:0" picks a free port.
	Addr string
	// Host is the site's host name; Origin its origin server URL.
	Host, Origin string
	// Deny lists path prefixes refused with 403 (e.g. "/wp-admin").
	Deny []string
	// Out receives one ECS JSON line per request; nil discards them.
	Out io.Writer
	// Logger receives operational records; nil discards them.
	Logger *slog.Logger
}

// Gateway is a running WAF with its event sink.
type Gateway struct {
	srv    *waf.Server
	ln     net.Listener
	events *detect.Async
	served chan error
}

// New builds the WAF and starts serving on cfg.Addr.
func New(cfg Config) (*Gateway, error) {
	if cfg.Host == "" || cfg.Origin == "" {
		return nil, errors.New("waf-alone: Config.Host and Config.Origin are required")
	}
	dir, err := tenant.NewSnapshot([]tenant.Tenant{{
		ID: "city", Name: "デモ市",
		EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, // the WAF's source towards origins
		Sites:      []tenant.Site{{Host: cfg.Host, Origins: []string{cfg.Origin}}},
	}}, tenant.Options{})
	if err != nil {
		return nil, fmt.Errorf("waf-alone: tenant: %w", err)
	}
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	events, err := detect.NewAsync(detect.AsyncConfig{Writer: &ecsLines{w: bufio.NewWriter(out)}, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("waf-alone: %w", err)
	}
	srv, err := waf.New(waf.Config{
		Directory: dir,
		Sink:      events,
		Logger:    cfg.Logger,
		Engine:    pathGuard(cfg.Deny),
	})
	if err != nil {
		events.Close(context.Background())
		return nil, fmt.Errorf("waf-alone: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		srv.Close()
		events.Close(context.Background())
		return nil, fmt.Errorf("waf-alone: %w", err)
	}
	g := &Gateway{srv: srv, ln: ln, events: events, served: make(chan error, 1)}
	go func() { g.served <- srv.Serve(ln) }()
	return g, nil
}

// Addr returns the listening address.
func (g *Gateway) Addr() string { return g.ln.Addr().String() }

// Shutdown drains the WAF, then flushes the events.
func (g *Gateway) Shutdown(ctx context.Context) error {
	err := g.srv.Shutdown(ctx)
	if serr := <-g.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, g.events.Close(ctx))
}

// pathGuard is an integrator's own waf.Engine: it refuses requests whose
// path lies under one of its prefixes. The path is decoded and cleaned
// first, so "/%77p-admin" and "/x/../wp-admin" are caught too; case is
// ignored (some origins ignore it). It is safe for concurrent use.
type pathGuard []string

// ruleDenyPath is our rule id, outside the ranges seccloud uses.
const ruleDenyPath = 100001

// Inspect implements waf.Engine.
func (g pathGuard) Inspect(_ context.Context, r *waf.Request) (waf.Decision, error) {
	u, err := url.ParseRequestURI(r.URI)
	if err != nil {
		return waf.Decision{Action: waf.Block, Status: http.StatusBadRequest,
			Matches: []waf.Match{{ID: ruleDenyPath, Msg: "unparsable request target", Severity: 4}}}, nil
	}
	p := strings.ToLower(path.Clean("/" + u.Path))
	for _, d := range g {
		d = strings.ToLower(strings.TrimSuffix(d, "/"))
		if p == d || strings.HasPrefix(p, d+"/") {
			return waf.Decision{Action: waf.Block, Score: 5,
				Matches: []waf.Match{{ID: ruleDenyPath, Msg: "denied path", Data: p, Severity: 2}}}, nil
		}
	}
	return waf.Decision{}, nil
}

var _ waf.Engine = pathGuard(nil)

// ecsLines is a detect.BatchWriter writing ECS JSON lines; Async calls it
// from one goroutine.
type ecsLines struct {
	w   *bufio.Writer
	buf []byte
}

// WriteEvents implements detect.BatchWriter.
func (l *ecsLines) WriteEvents(_ context.Context, events []detect.Event) error {
	for i := range events {
		l.buf = append(detect.AppendECS(l.buf[:0], &events[i]), '\n')
		if _, err := l.w.Write(l.buf); err != nil {
			return fmt.Errorf("waf-alone: writing events: %w", err)
		}
	}
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("waf-alone: writing events: %w", err)
	}
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "HTTP listen address")
	host := flag.String("host", "www.city.example.jp", "the site's host name")
	origin := flag.String("origin", "http://127.0.0.1:8000", "the origin server URL")
	deny := flag.String("deny", "/wp-admin,/.git", "comma-separated path prefixes refused with 403")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg := Config{Addr: *listen, Host: *host, Origin: *origin, Out: os.Stdout, Logger: log}
	for _, d := range strings.Split(*deny, ",") {
		if d = strings.TrimSpace(d); d != "" {
			cfg.Deny = append(cfg.Deny, d)
		}
	}
	g, err := New(cfg)
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	log.Info("waf listening", "addr", g.Addr(), "site", cfg.Host, "origin", cfg.Origin)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
		os.Exit(1)
	}
}
