// Command seccloud-proxy runs proxy.Server for the side-by-side benchmark
// of bench/proxy/run.sh: one tenant "bench" owning 127.0.0.1/32 (wrk
// cannot bind a source address) with egress 127.0.0.1, loopback
// destinations allowed, and the access log ON as deployed: every event goes
// through detect.Async into the embedded store detect/store under -data.
//
//	go run ./bench/proxy/seccloud-proxy -listen 127.0.0.1:13128 -data /tmp/pb
//
// With -inspect-ca/-inspect-key/-roots it inspects TLS (bench/proxy/tls.sh).
//
// SIGINT/SIGTERM stops it and prints the event counters; -cpuprofile
// writes a CPU profile of the whole run.
package main

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
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
	caCert := flag.String("inspect-ca", "", "TLS inspection: CA certificate PEM (created with -inspect-key when missing); empty = no inspection")
	caKey := flag.String("inspect-key", "", "TLS inspection: CA key PEM")
	roots := flag.String("roots", "", "TLS inspection: PEM roots for the origins (default: system roots)")
	connectPort := flag.Int("connect-port", 443, "port CONNECT may reach")
	hosts := flag.String("hosts", "", "hosts-file lines (address name...) answered instead of DNS")
	tenantNet := flag.String("tenant-net", "127.0.0.1/32", "network of the bench tenant (bench/proxy/idle.sh uses 127.0.0.0/8 for many source addresses)")
	flag.Parse()
	if *data == "" {
		log.Fatal("-data is required")
	}
	tnet, err := netip.ParsePrefix(*tenantNet)
	if err != nil {
		log.Fatal(err)
	}
	dir, err := tenant.NewSnapshot([]tenant.Tenant{{
		ID: "bench", Name: "ベンチ市",
		Networks:   []netip.Prefix{tnet},
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
	cfg := proxy.Config{
		Directory: dir, Sink: sink, Logger: logger,
		AllowDestinations: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		ConnectPorts:      []uint16{uint16(*connectPort)},
	}
	if *hosts != "" {
		b, err := os.ReadFile(*hosts)
		if err != nil {
			log.Fatal(err)
		}
		m := staticResolver{}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || strings.HasPrefix(f[0], "#") {
				continue
			}
			a, err := netip.ParseAddr(f[0])
			if err != nil {
				log.Fatal(err)
			}
			for _, n := range f[1:] {
				m[n] = append(m[n], a)
			}
		}
		cfg.Resolver = m
	}
	if *caCert != "" {
		ca, err := proxy.LoadOrCreateCA(*caCert, *caKey, "seccloud bench CA", proxy.CAConfig{})
		if err != nil {
			log.Fatal(err)
		}
		in := &proxy.InspectConfig{CA: ca, All: true}
		if *roots != "" {
			b, err := os.ReadFile(*roots)
			if err != nil {
				log.Fatal(err)
			}
			in.RootCAs = x509.NewCertPool()
			if !in.RootCAs.AppendCertsFromPEM(b) {
				log.Fatal("no certificate in -roots")
			}
		}
		cfg.Inspect = in
	}
	srv, err := proxy.New(cfg)
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

// staticResolver answers names from a hosts file.
type staticResolver map[string][]netip.Addr

func (r staticResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "not in -hosts", Name: host, IsNotFound: true}
}
