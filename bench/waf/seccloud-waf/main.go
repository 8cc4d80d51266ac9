// Command seccloud-waf runs waf.Server for bench/waf/run.sh: one tenant
// with the site app.bench.test whose origin is -origin, the default
// engine (OWASP CRS v4 on Coraza, PL1, anomaly blocking, plus our
// decoding layer and fast path) and the access events ON: every event
// goes through detect.Async into the embedded store detect/store under
// -data.
//
//	go run ./bench/waf/seccloud-waf -listen 127.0.0.1:18183 -origin 127.0.0.1:18180 -data /tmp/wb
//
// -engine plain runs plain Coraza+CRS inside waf.Server (no decoding
// layer, no fast path), -engine none no inspection, for comparison. The
// layer-7 DDoS limits are off unless -ddos (the load generator is one
// address); the CDN cache is on unless -nocache, bounded by -cache-mb
// (0: the default 256 MiB, like the appliance's waf.cache.max_mb; it counts
// the heap really held, see waf/cache.Config.MaxBytes). -memlimit-mb sets
// the Go runtime's soft memory limit (runtime/debug.SetMemoryLimit, as
// GOMEMLIMIT does): under the default GOGC the heap may otherwise grow to
// about twice the live memory (cache included) between collections. Keep
// it at 1.5 × (cache + about 64 MiB) or more: closer to the live heap the
// collector runs without pause and throughput falls.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18183", "listen address")
	origin := flag.String("origin", "127.0.0.1:18180", "origin host:port")
	data := flag.String("data", "", "event store directory (required)")
	engine := flag.String("engine", "ours", "ours, plain or none")
	cpuprof := flag.String("cpuprofile", "", "write a CPU profile here")
	ddos := flag.Bool("ddos", false, "keep the layer-7 DDoS limits on (wrk sends everything from one address, so they would throttle it)")
	noCache := flag.Bool("nocache", false, "turn the CDN cache off")
	cacheMB := flag.Int64("cache-mb", 0, "CDN cache memory bound in MiB (0: the waf default, 256)")
	memLimitMB := flag.Int64("memlimit-mb", 0, "Go soft memory limit in MiB (0: none, or GOMEMLIMIT from the environment)")
	flag.Parse()
	if *memLimitMB > 0 {
		debug.SetMemoryLimit(*memLimitMB << 20)
	}
	if *data == "" {
		log.Fatal("-data is required")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir, err := tenant.NewSnapshot([]tenant.Tenant{{
		ID: "bench", Name: "ベンチ市",
		Networks:   []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
		EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Sites:      []tenant.Site{{Host: "app.bench.test", Origins: []string{*origin}}},
	}}, tenant.Options{})
	if err != nil {
		log.Fatal(err)
	}
	st, err := store.Open(store.Config{Dir: *data, Logger: logger})
	if err != nil {
		log.Fatal(err)
	}
	as, err := detect.NewAsync(detect.AsyncConfig{Writer: st, Logger: logger, QueueSize: 1 << 17, BatchSize: 4096})
	if err != nil {
		log.Fatal(err)
	}
	var e waf.Engine
	switch *engine {
	case "ours", "plain":
		ce, err := waf.NewCRSEngine(waf.CRSConfig{Logger: logger, Plain: *engine == "plain"})
		if err != nil {
			log.Fatal(err)
		}
		e = ce
	case "none":
	default:
		log.Fatalf("unknown -engine %q", *engine)
	}
	srv, err := waf.New(waf.Config{Directory: dir, Sink: as, Logger: logger, Engine: e,
		Origins: waf.OriginConfig{HealthPath: "/index.html"},
		DDoS:    waf.DDoSConfig{Disabled: !*ddos}, Cache: waf.CacheConfig{Disabled: *noCache, MaxBytes: *cacheMB << 20}})
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
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	_ = as.Close(sctx)
	fmt.Fprintln(os.Stderr, "events:", "stored")
}
