// Command proxy-alone runs seccloud's forward proxy on its own, for one
// tenant, with a block list, writing one ECS JSON line per request to
// standard output — the shape an integrator would start from to put the
// proxy into their own product with their own Directory and Sink.
//
//	go run ./examples/proxy-alone -listen 127.0.0.1:3128 -net 127.0.1.0/24 -block ads.example,tracker.example
//	curl --interface 127.0.1.5 -x http://127.0.0.1:3128 http://127.0.0.1:8000/
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/tenant"
)

// stdoutSink writes each event as one ECS JSON line. Emit holds a mutex
// around a buffered write: fine for a demo; a product puts a detect.Async in
// front of a real destination.
type stdoutSink struct {
	mu  sync.Mutex
	w   *bufio.Writer
	buf []byte
}

func (s *stdoutSink) Emit(e detect.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(detect.AppendECS(s.buf[:0], &e), '\n')
	s.w.Write(s.buf)
	s.w.Flush()
}

func main() {
	listen := flag.String("listen", "127.0.0.1:3128", "proxy listen address")
	network := flag.String("net", "127.0.1.0/24", "the tenant's source network")
	egress := flag.String("egress", "127.0.0.1", "the tenant's egress address")
	block := flag.String("block", "", "comma-separated domains to block (with subdomains)")
	allowLoopback := flag.Bool("allow-loopback", true, "allow loopback destinations (for a local demo origin)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *network, *egress, *block, *allowLoopback, os.Stdout, log, nil); err != nil {
		fmt.Fprintln(os.Stderr, "proxy-alone:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; ready, if not nil, receives the bound address.
func run(ctx context.Context, listen, network, egress, block string, allowLoopback bool, out io.Writer, log *slog.Logger, ready chan<- string) error {
	p, err := netip.ParsePrefix(network)
	if err != nil {
		return fmt.Errorf("-net: %w", err)
	}
	e, err := netip.ParseAddr(egress)
	if err != nil {
		return fmt.Errorf("-egress: %w", err)
	}
	snap, err := tenant.NewSnapshot([]tenant.Tenant{{
		ID: "demo", Name: "デモ市", Networks: []netip.Prefix{p}, EgressAddr: []netip.Addr{e},
	}}, tenant.Options{})
	if err != nil {
		return err
	}
	var rules proxy.Rules
	for _, d := range strings.Split(block, ",") {
		if d = strings.TrimSpace(d); d != "" {
			rules.Block = append(rules.Block, d)
		}
	}
	lists, err := proxy.NewLists(proxy.ListConfig{Global: rules})
	if err != nil {
		return err
	}
	cfg := proxy.Config{
		Directory: tenant.NewLive(snap),
		Decider:   lists,
		Sink:      &stdoutSink{w: bufio.NewWriter(out)},
		Logger:    log,
	}
	if allowLoopback {
		cfg.AllowDestinations = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	log.Info("proxy listening", "addr", ln.Addr().String(), "tenant_net", p.String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
