// Command dnsresd runs the dnsres resolver for the side-by-side benchmark
// of bench/dns/run.sh: it forwards every question to one upstream (the NSD
// fixture) or, with -root, resolves iteratively from root hints
// (bench/dns/miss.sh), caches, applies a threat-intelligence list, and logs every
// query as an ECS event through detect.Async into the embedded event store
// (-sink store, as deployed) or into a counting sink (-sink count).
//
// Every source address in 127.0.0.0/8 belongs to one tenant, "bench".
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/detect/store"
	"github.com/jichitai/seccloud/dnsres"
	"github.com/jichitai/seccloud/tenant"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:15355", "UDP/TCP address to serve")
	upstream := flag.String("upstream", "127.0.0.1:15353", "upstream to forward to")
	sinkKind := flag.String("sink", "store", "query log: store (detect/store via detect.Async) or count")
	dir := flag.String("store-dir", "", "event store directory (-sink store); default a temporary directory")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file until shutdown")
	detectOn := flag.Bool("detect", true, "run the Detector (DGA, tunnel, NXDOMAIN storm) as the appliance does")
	rrlOn := flag.Bool("rrl", false, "response rate limiting with the appliance's defaults (dnsperf's one /24 would be limited)")
	sockets := flag.Int("sockets", 0, "forwarder's upstream socket pool (0: default, -1: a fresh socket per query)")
	root := flag.String("root", "", "recurse from these root hints (comma-separated ip or ip:port, loopback only) instead of forwarding to -upstream (bench/dns/miss.sh)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if err := run(*listen, *upstream, *sinkKind, *dir, opts{detect: *detectOn, rrl: *rrlOn, sockets: *sockets, root: *root}); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

type counter struct{ n atomic.Uint64 }

func (c *counter) Emit(detect.Event) { c.n.Add(1) }

type opts struct {
	detect, rrl bool
	sockets     int
	root        string // root hints: recursion instead of forwarding
}

func run(listen, upstream, sinkKind, dir string, o opts) error {
	snap, err := tenant.NewSnapshot([]tenant.Tenant{{ID: "bench", Name: "bench",
		Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Policy: tenant.Policy{EgressOptional: true}}}, tenant.Options{})
	if err != nil {
		return err
	}
	var sink detect.Sink
	var closeSink func() string
	switch sinkKind {
	case "count":
		c := new(counter)
		sink, closeSink = c, func() string { return fmt.Sprintf("events counted: %d", c.n.Load()) }
	case "store":
		if dir == "" {
			if dir, err = os.MkdirTemp("", "dnsresd-events"); err != nil {
				return err
			}
			defer os.RemoveAll(dir)
		}
		st, err := store.Open(store.Config{Dir: dir})
		if err != nil {
			return err
		}
		as, err := detect.NewAsync(detect.AsyncConfig{Writer: st, QueueSize: 1 << 18, BatchSize: 4096})
		if err != nil {
			return err
		}
		sink, closeSink = as, func() string {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = as.Close(ctx)
			_ = st.Close()
			s := as.Stats()
			return fmt.Sprintf("events emitted %d written %d dropped %d", s.Emitted, s.Written, s.Dropped)
		}
	default:
		return fmt.Errorf("-sink %q: want store or count", sinkKind)
	}
	var res dnsres.Resolver
	if o.root != "" {
		rec, err := dnsres.NewRecursor(dnsres.RecursorConfig{RootHints: strings.Split(o.root, ","), Sockets: o.sockets,
			AllowedNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
		if err != nil {
			return err
		}
		defer rec.Close()
		defer func() { log.Printf("dnsresd: recursor %+v", rec.Stats()) }()
		res, upstream = rec, "root hints "+o.root
	} else {
		fw, err := dnsres.NewForwarder(dnsres.ForwarderConfig{Upstreams: []string{upstream}, Sockets: o.sockets})
		if err != nil {
			return err
		}
		defer fw.Close()
		res = fw
	}
	cache, err := dnsres.NewCache(dnsres.CacheConfig{Resolver: res, MaxBytes: 512 << 20})
	if err != nil {
		return err
	}
	iset, _ := intel.FromDomains("c2c.example", "malware.example")
	pol, err := dnsres.NewPolicy(dnsres.PolicyConfig{Intel: intel.NewLive(iset)})
	if err != nil {
		return err
	}
	scfg := dnsres.ServerConfig{Addr: listen, Directory: tenant.NewLive(snap), Sink: sink, Handler: dnsres.Chain(cache, pol.Middleware)}
	if o.detect {
		det, err := dnsres.NewDetector(dnsres.DetectorConfig{Sink: sink})
		if err != nil {
			return err
		}
		scfg.Handler, scfg.Observer = dnsres.Chain(cache, pol.Middleware, det.Middleware), det
	}
	if o.rrl {
		if scfg.RRL, err = dnsres.NewRRL(dnsres.RRLConfig{}); err != nil {
			return err
		}
	}
	srv, err := dnsres.NewServer(scfg)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	log.Printf("dnsresd: serving on %s, forwarding to %s, query log: %s", srv.Addr(), upstream, sinkKind)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	_ = srv.Shutdown(context.Background())
	_ = cache.Close()
	st := cache.Stats()
	log.Printf("dnsresd: %+v %+v; %s", srv.Stats(), st, closeSink())
	return nil
}
