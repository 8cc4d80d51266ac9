// Command seccloud-proxy runs proxy.Server for the side-by-side benchmark
// of bench/proxy/run.sh: one tenant "bench" owning 127.0.0.1/32 (wrk
// cannot bind a source address) with egress 127.0.0.1, loopback
// destinations allowed, and the access log ON as deployed: every event goes
// through detect.Async into the embedded store detect/store under -data.
//
//	go run ./bench/proxy/seccloud-proxy -listen 127.0.0.1:13128 -data /tmp/pb
//
// SIGINT/SIGTERM stops it and prints the event counters; -cpuprofile
// writes a CPU profile of the whole run.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/tenant"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:13128", "proxy listen address")
	data := flag.String("data", "", "event store directory (required)")
	cpuprof := flag.String("cpuprofile", "", "write a CPU profile here")
	noLog := flag.Bool("nolog", false, "discard events instead of storing them (for comparison only)")
	flag.Parse()
	if *data == "" {
		log.Fatal("-data is required")
	}
	dir, err := tenant.NewSnapshot([]tenant.Tenant{{
		ID: "bench", Name: "ベンチ市",
		Networks:   []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
	}}, tenant.Options{})
	if err != nil {
		log.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.Open(store.Config{Dir: *data, Logger: logger})
	if err != nil {
		log.Fatal(err)
	}
	as, err := detect.NewAsync(detect.AsyncConfig{Writer: st, Logger: logger, QueueSize: 1 << 17, BatchSize: 4096})
	if err != nil {
		log.Fatal(err)
	}
	var sink detect.Sink = as
	if *noLog {
		sink = detect.Discard
	}
	srv, err := proxy.New(proxy.Config{
		Directory: dir, Sink: sink, Logger: logger,
		AllowDestinations: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	if err != nil {
		log.Fatal(err)
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(*listen); err != nil && err != proxy.ErrServerClosed {
		log.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := as.Close(cctx); err != nil {
		log.Print(err)
	}
	s := as.Stats()
	fmt.Fprintf(os.Stderr, "events: emitted %d written %d dropped %d failed %d\n", s.Emitted, s.Written, s.Dropped, s.Failed)
	if err := st.Close(); err != nil {
		log.Print(err)
	}
}
