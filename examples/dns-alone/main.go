// Command dns-alone runs seccloud's caching resolver (dnsres) on its own for
// one tenant: it forwards to the upstreams you give, sinkholes a block list,
// and sends every query event to an integrator's own detect.Sink that counts
// queries and prints one line each.
//
//	go run ./examples/dns-alone -demo-upstream
//	dig -b 127.0.1.5 @127.0.0.1 -p 5353 www.example.test
package main

import (
	"context"
	"errors"
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/dnsres"
	"github.com/jichitai/seccloud/tenant"
)

// Config configures the resolver. Addr, Network and Upstreams are required.
type Config struct {
	// Addr is the UDP and TCP listen address ("127.0.0.1:0": a free port).
	Addr string
	// Network is the tenant's source prefix; other clients get REFUSED.
	Network netip.Prefix
	// Upstreams are the servers misses are forwarded to, "ip:port".
	Upstreams []string
	// Block lists domains (with their subdomains) answered with Sinkhole,
	// or NXDOMAIN when Sinkhole is not set.
	Block    []string
	Sinkhole netip.Addr
	// Out receives one line per query; nil discards them.
	Out io.Writer
	// Logger receives operational records; nil discards them.
	Logger *slog.Logger
}

// Resolver is a running dnsres server with its cache and query sink.
type Resolver struct {
	srv   *dnsres.Server
	cache *dnsres.Cache
	sink  *QuerySink
}

// New builds and starts the resolver.
func New(cfg Config) (*Resolver, error) {
	if !cfg.Network.IsValid() {
		return nil, errors.New("dns-alone: Config.Network is required")
	}
	dir, err := tenant.NewSnapshot([]tenant.Tenant{{
		ID: "demo", Name: "デモ市", Networks: []netip.Prefix{cfg.Network},
		Policy: tenant.Policy{EgressOptional: true},
	}}, tenant.Options{})
	if err != nil {
		return nil, fmt.Errorf("dns-alone: tenant: %w", err)
	}
	fw, err := dnsres.NewForwarder(dnsres.ForwarderConfig{Upstreams: cfg.Upstreams})
	if err != nil {
		return nil, fmt.Errorf("dns-alone: %w", err)
	}
	set, err := intel.FromDomains(cfg.Block...)
	if err != nil {
		return nil, fmt.Errorf("dns-alone: block list: %w", err)
	}
	policy, err := dnsres.NewPolicy(dnsres.PolicyConfig{Intel: intel.NewLive(set), SinkholeA: cfg.Sinkhole})
	if err != nil {
		return nil, fmt.Errorf("dns-alone: %w", err)
	}
	cache, err := dnsres.NewCache(dnsres.CacheConfig{Resolver: fw})
	if err != nil {
		return nil, fmt.Errorf("dns-alone: %w", err)
	}
	sink := NewQuerySink(cfg.Out, 1024)
	srv, err := dnsres.NewServer(dnsres.ServerConfig{
		Addr:      cfg.Addr,
		Directory: tenant.NewLive(dir),
		Handler:   dnsres.Chain(cache, policy.Middleware),
		Sink:      sink,
		Logger:    cfg.Logger,
	})
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		cache.Close()
		sink.Close()
		return nil, fmt.Errorf("dns-alone: %w", err)
	}
	return &Resolver{srv: srv, cache: cache, sink: sink}, nil
}

// Addr returns the address the resolver listens on.
func (r *Resolver) Addr() netip.AddrPort { return r.srv.Addr() }

// Counts returns the sink's counters.
func (r *Resolver) Counts() Counts { return r.sink.Counts() }

// Shutdown stops the server, then the cache, then the sink, so that
// every query answered is printed.
func (r *Resolver) Shutdown(ctx context.Context) error {
	err := r.srv.Shutdown(ctx)
	r.cache.Close()
	r.sink.Close()
	return err
}

// Counts are the QuerySink's counters.
type Counts struct {
	Queries, Refused, Blocked, CacheHits, LinesDropped uint64
}

// QuerySink is an integrator's own detect.Sink. Emit must never block the
// resolver, so it only bumps atomic counters and hands the event to a
// bounded channel; a printer goroutine writes the lines. When the printer
// falls behind, lines (never counts) are dropped and counted. Emit is safe
// for concurrent use; after Close it only counts.
type QuerySink struct {
	queries, refused, blocked, hits, dropped atomic.Uint64

	mu     sync.RWMutex // guards closed and the channel's closing
	closed bool
	events chan detect.Event
	out    io.Writer
	wg     sync.WaitGroup
}

// NewQuerySink starts a sink printing to out (nil: count only) with a
// queue of buffer events.
func NewQuerySink(out io.Writer, buffer int) *QuerySink {
	s := &QuerySink{events: make(chan detect.Event, buffer), out: out}
	s.wg.Go(s.print)
	return s
}

// Emit implements detect.Sink.
func (s *QuerySink) Emit(e detect.Event) {
	s.queries.Add(1)
	switch {
	case e.DNS.RCode == "REFUSED":
		s.refused.Add(1)
	case e.Verdict.Action.Stopped():
		s.blocked.Add(1)
	}
	if c, _ := e.Label("dns_cache"); c == "hit" {
		s.hits.Add(1)
	}
	if s.out == nil {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	select {
	case s.events <- e:
	default:
		s.dropped.Add(1)
	}
}

func (s *QuerySink) print() {
	for e := range s.events {
		cache, _ := e.Label("dns_cache")
		fmt.Fprintf(s.out, "%s tenant=%q client=%s %s %s %s cache=%s verdict=%s\n",
			e.Time.Format(time.RFC3339), e.Tenant, e.Client.Addr(), e.DNS.QName, e.DNS.QType,
			e.DNS.RCode, cache, e.Verdict.Action)
	}
}

// Counts returns a snapshot of the counters.
func (s *QuerySink) Counts() Counts {
	return Counts{Queries: s.queries.Load(), Refused: s.refused.Load(), Blocked: s.blocked.Load(),
		CacheHits: s.hits.Load(), LinesDropped: s.dropped.Load()}
}

// Close prints what is queued and stops the printer.
func (s *QuerySink) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.events)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

var _ detect.Sink = (*QuerySink)(nil)

// demoUpstream serves "zone" authoritatively on a free loopback port: every
// name under it has A 192.0.2.10. Only for trying the example by hand.
func demoUpstream(zone string) (addr string, stop func() error, err error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("dns-alone: demo upstream: %w", err)
	}
	zone = dns.Fqdn(zone)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		name := q.Question[0].Name
		switch {
		case !dns.IsSubDomain(zone, name):
			m.Rcode = dns.RcodeRefused
		case q.Question[0].Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA,
				Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, 10)})
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	return pc.LocalAddr().String(), srv.Shutdown, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:5353", "UDP and TCP listen address")
	network := flag.String("net", "127.0.1.0/24", "the tenant's source network")
	upstreams := flag.String("upstream", "", "comma-separated upstream servers ip:port")
	demo := flag.Bool("demo-upstream", false, "start a demo authoritative for example.test on loopback and forward to it")
	block := flag.String("block", "c2.example.test", "comma-separated domains to sinkhole")
	sinkhole := flag.String("sinkhole", "127.0.0.80", "address answered for blocked names (empty: NXDOMAIN)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*listen, *network, *upstreams, *demo, *block, *sinkhole, log); err != nil {
		log.Error("dns-alone", "err", err)
		os.Exit(1)
	}
}

func run(listen, network, upstreams string, demo bool, block, sinkhole string, log *slog.Logger) error {
	cfg := Config{Addr: listen, Upstreams: split(upstreams), Block: split(block), Out: os.Stdout, Logger: log}
	var err error
	if cfg.Network, err = netip.ParsePrefix(network); err != nil {
		return fmt.Errorf("-net: %w", err)
	}
	if sinkhole != "" {
		if cfg.Sinkhole, err = netip.ParseAddr(sinkhole); err != nil {
			return fmt.Errorf("-sinkhole: %w", err)
		}
	}
	if demo {
		addr, stop, err := demoUpstream("example.test")
		if err != nil {
			return err
		}
		defer stop()
		cfg.Upstreams = append(cfg.Upstreams, addr)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	r, err := New(cfg)
	if err != nil {
		return err
	}
	log.Info("resolver listening", "addr", r.Addr(), "tenant_net", cfg.Network, "upstreams", cfg.Upstreams)
	<-ctx.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	err = r.Shutdown(sctx)
	c := r.Counts()
	log.Info("totals", "queries", c.Queries, "refused", c.Refused, "blocked", c.Blocked, "cache_hits", c.CacheHits)
	return err
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
