package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/tenant"
)

// Defaults of [Config].
const (
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultIdleTimeout           = 2 * time.Minute
	DefaultTunnelIdleTimeout     = 10 * time.Minute
	DefaultDialTimeout           = 10 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultUpstreamIdleTimeout   = 30 * time.Second
	DefaultMaxHeaderBytes        = 64 << 10
	DefaultMaxIdlePerHost        = 256
	DefaultScanMaxBytes          = 10 << 20
	DefaultScanTimeout           = 30 * time.Second
)

// DefaultDenyDestinations are the destination networks refused when
// Config.DenyDestinations is nil: loopback, "this network", private
// (RFC 1918, ULA), shared (CGNAT), link-local (and so cloud metadata
// 169.254.169.254), multicast, reserved, and their IPv6 counterparts.
// IPv4-mapped IPv6 addresses are unmapped before the check.
var DefaultDenyDestinations = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/3"), // multicast, reserved, broadcast
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach any IPv4
}

// Resolver looks host names up. *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ConnLimiter caps the connections a tenant holds at once.
// *ratelimit.Concurrency[string] satisfies it.
type ConnLimiter interface {
	// TryAcquire takes a slot for the tenant id, without waiting.
	TryAcquire(key string) bool
	// Release gives a slot back.
	Release(key string)
}

// Config configures a [Server]. Only Directory is required; every other
// field has a documented zero-value default.
type Config struct {
	// Directory resolves a client's source address to its tenant.
	// Required. A source in no tenant is refused with 403 (no open proxy).
	// *tenant.Live lets the appliance swap tenants on reload.
	Directory tenant.Directory
	// Sink receives one access event per request or tunnel. Nil discards.
	// Emit must not block (see detect.NewAsync).
	Sink detect.Sink
	// Decider judges each request by name and URL. Nil allows everything
	// (the destination checks below still apply).
	Decider Decider
	// Intel, when set, checks every address a destination name resolves
	// to against its address indicators before dialing: a name not on
	// any list that points at a listed C&C address is refused with
	// RuleIntel (reported, and dialed, for a report-only tenant). The
	// name itself and literal addresses are the Decider's (IntelDecider).
	// Nil means no check. Read at each request, so a reload takes effect
	// at once.
	Intel *intel.Live
	// Resolver resolves destination names. Nil means net.DefaultResolver.
	// The Server dials exactly the addresses it checked.
	Resolver Resolver
	// Logger receives operational records (not access events). Nil
	// discards.
	Logger *slog.Logger
	// Now is the clock of events and deadlines. Nil means time.Now.
	Now func() time.Time

	// DenyDestinations are destination networks refused with 403 (rule
	// proxy-destination). Nil means DefaultDenyDestinations; an empty
	// non-nil slice denies nothing.
	DenyDestinations []netip.Prefix
	// AllowDestinations are exceptions to DenyDestinations (for demos and
	// tests on loopback: 127.0.0.0/8). The ban on traffic between tenants
	// still applies to them.
	AllowDestinations []netip.Prefix
	// ConnectPorts are the ports CONNECT may reach. Nil means 443 only.
	ConnectPorts []uint16
	// TrustedProxies are downstream proxies (a municipality's own proxy)
	// whose X-Forwarded-For names the terminal. The header of any other
	// client is ignored for attribution. Nil trusts nobody.
	TrustedProxies []netip.Prefix
	// ForwardXFF forwards X-Forwarded-For upstream with the client
	// appended. False (the default) removes it so that terminals'
	// internal addresses do not leak to the internet.
	ForwardXFF bool
	// Via, when set, is the pseudonym added in a Via header both ways
	// ("1.1 seccloud"). Empty adds none.
	Via string
	// TenantConns caps connections per tenant id. Nil means no cap.
	TenantConns ConnLimiter
	// GlobalBandwidth is the internet line's capacity, shared fairly by
	// weight among the tenants busy at the same time, on top of each
	// tenant's own ceilings (tenant.Bandwidth). The zero value shares
	// nothing: only the tenants' ceilings apply.
	GlobalBandwidth GlobalBandwidth

	// Inspect turns TLS inspection of CONNECT tunnels on (see
	// InspectConfig). Nil splices every tunnel untouched.
	Inspect *InspectConfig
	// TenantRestrictions maps tenant ids to the SaaS tenant restrictions
	// inserted on the vendors' login hosts. Needs Inspect (those hosts
	// are inspected even when Inspect.All is false). Nil inserts none.
	TenantRestrictions map[string]TenantRestriction
	// Breakout sends the SaaS apps named in a tenant's
	// Policy.Breakout over a separate line with a health check and
	// fall-back (see BreakoutConfig). Nil: everything leaves from the
	// tenants' egress addresses.
	Breakout *BreakoutConfig
	// Scanner scans response bodies (plain HTTP and inspected HTTPS) of
	// up to ScanMaxBytes; a hit replaces the download with the block page
	// (rule proxy-malware). Nil scans nothing. NewClamdScanner is the
	// default implementation.
	Scanner Scanner
	// ScanMaxBytes is the largest body scanned; larger bodies pass
	// unscanned (counted, labelled scan=skipped-too-large). Zero means
	// DefaultScanMaxBytes (10 MiB). Keep it at or under clamd's
	// StreamMaxLength.
	ScanMaxBytes int64
	// ScanTimeout bounds one scan. Zero means DefaultScanTimeout.
	ScanTimeout time.Duration
	// ScanFailOpen lets bodies through unscanned when the scanner fails
	// (logged, counted in ScanStats). False (the default) fails closed:
	// the download is replaced by a page (rule
	// proxy-scanner-unavailable).
	ScanFailOpen bool

	// ReadHeaderTimeout bounds reading a request's header once its first
	// byte arrived (slowloris), and waiting for the first request of a new
	// connection. Zero means DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds waiting for the next request on a client
	// connection and a stalled request or response body. Zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// TunnelIdleTimeout closes a CONNECT tunnel with no traffic either way
	// for this long. Zero means DefaultTunnelIdleTimeout.
	TunnelIdleTimeout time.Duration
	// DialTimeout bounds connecting upstream (all addresses). Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds waiting for the upstream's response
	// header. Zero means DefaultResponseHeaderTimeout.
	ResponseHeaderTimeout time.Duration
	// UpstreamIdleTimeout closes pooled upstream connections unused for
	// this long. Zero means DefaultUpstreamIdleTimeout.
	UpstreamIdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and header; larger gets 431.
	// Zero means DefaultMaxHeaderBytes (64 KiB).
	MaxHeaderBytes int
	// MaxIdlePerHost bounds pooled idle upstream connections per
	// destination and egress address. Zero means DefaultMaxIdlePerHost;
	// negative disables pooling.
	MaxIdlePerHost int
}

// Server is a multi-tenant forward HTTP/1.1 proxy: absolute-URI requests
// with keep-alive and pooled upstream connections, and CONNECT tunnels.
// Create it with New, run it with Serve; stop it with Shutdown or Close.
// A Server is safe for concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	sink     detect.Sink
	resolver Resolver
	now      func() time.Time
	deny     []netip.Prefix
	allow    []netip.Prefix
	pool     pool
	insp     *inspector
	brk      *breakout
	shapers  shapers
	// noFastHead turns the fast response-head path off (benchmarks
	// compare both paths in one run).
	noFastHead bool
	restrict   atomic.Pointer[map[string][]*restriction] // swapped by SetTenantRestrictions
	scanCnt    scanCounters

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*clientConn]struct{}
	shutdown  atomic.Bool
	done      chan struct{} // closed by Shutdown/Close
	closeOnce sync.Once
	wg        sync.WaitGroup // connection and janitor goroutines

	tunMu     sync.Mutex
	tunLoop   *tunnelLoop // idle CONNECT tunnels (Linux), started on first use
	tunFailed bool
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("proxy: server closed")

// New validates cfg and returns a Server. Errors name the faulty field.
func New(cfg Config) (*Server, error) {
	if cfg.Directory == nil {
		return nil, errors.New("proxy: Config.Directory is required")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ReadHeaderTimeout", &cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout},
		{"IdleTimeout", &cfg.IdleTimeout, DefaultIdleTimeout},
		{"TunnelIdleTimeout", &cfg.TunnelIdleTimeout, DefaultTunnelIdleTimeout},
		{"DialTimeout", &cfg.DialTimeout, DefaultDialTimeout},
		{"ResponseHeaderTimeout", &cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout},
		{"UpstreamIdleTimeout", &cfg.UpstreamIdleTimeout, DefaultUpstreamIdleTimeout},
		{"ScanTimeout", &cfg.ScanTimeout, DefaultScanTimeout},
	} {
		switch {
		case *d.v < 0:
			return nil, fmt.Errorf("proxy: Config.%s must not be negative, got %v", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	switch {
	case cfg.MaxHeaderBytes < 0:
		return nil, fmt.Errorf("proxy: Config.MaxHeaderBytes must not be negative, got %d", cfg.MaxHeaderBytes)
	case cfg.MaxHeaderBytes == 0:
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	case cfg.MaxHeaderBytes < 1024:
		return nil, fmt.Errorf("proxy: Config.MaxHeaderBytes must be at least 1024, got %d", cfg.MaxHeaderBytes)
	}
	if cfg.MaxIdlePerHost == 0 {
		cfg.MaxIdlePerHost = DefaultMaxIdlePerHost
	}
	switch {
	case cfg.ScanMaxBytes < 0:
		return nil, fmt.Errorf("proxy: Config.ScanMaxBytes must not be negative, got %d", cfg.ScanMaxBytes)
	case cfg.ScanMaxBytes == 0:
		cfg.ScanMaxBytes = DefaultScanMaxBytes
	}
	if err := cfg.GlobalBandwidth.validate(); err != nil {
		return nil, err
	}
	if len(cfg.TenantRestrictions) > 0 && cfg.Inspect == nil {
		return nil, errors.New("proxy: Config.TenantRestrictions need Config.Inspect (the login hosts must be inspected)")
	}
	restrict, err := compileRestrictions(cfg.TenantRestrictions)
	if err != nil {
		return nil, err
	}
	for i, p := range cfg.ConnectPorts {
		if p == 0 {
			return nil, fmt.Errorf("proxy: Config.ConnectPorts[%d] must not be 0", i)
		}
	}
	if cfg.ConnectPorts == nil {
		cfg.ConnectPorts = []uint16{443}
	}
	for i, p := range cfg.TrustedProxies {
		if !p.IsValid() {
			return nil, fmt.Errorf("proxy: Config.TrustedProxies[%d] is not a valid prefix", i)
		}
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, sink: cfg.Sink, resolver: cfg.Resolver, now: cfg.Now,
		deny: cfg.DenyDestinations, allow: cfg.AllowDestinations,
		listeners: make(map[net.Listener]struct{}), conns: make(map[*clientConn]struct{}),
		done: make(chan struct{}),
	}
	s.restrict.Store(&restrict)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}

	if s.sink == nil {
		s.sink = detect.Discard
	}
	if s.resolver == nil {
		s.resolver = net.DefaultResolver
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.deny == nil {
		s.deny = DefaultDenyDestinations
	}
	for _, list := range [][]netip.Prefix{s.deny, s.allow} {
		for _, p := range list {
			if !p.IsValid() {
				return nil, errors.New("proxy: Config.DenyDestinations/AllowDestinations hold an invalid prefix")
			}
		}
	}
	if cfg.Breakout != nil {
		if s.brk, err = newBreakout(*cfg.Breakout); err != nil {
			return nil, err
		}
		s.brk.healthy.Store(true) // until the first check says otherwise
	}
	if cfg.Inspect != nil {
		if s.insp, err = newInspector(s, *cfg.Inspect); err != nil {
			return nil, err
		}
	}
	if s.brk != nil {
		s.wg.Add(1)
		go s.healthLoop()
	}
	s.pool.init(cfg.MaxIdlePerHost, cfg.UpstreamIdleTimeout, s.now)
	s.shapers.init(cfg.GlobalBandwidth)
	s.wg.Add(1)
	go s.janitor()
	return s, nil
}

// ListenAndServe listens on the TCP address addr and serves it.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// ErrServerClosed then. It closes ln on return.
func (s *Server) Serve(ln net.Listener) error {
	if !s.trackListener(ln, true) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.trackListener(ln, false)
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("proxy: accept: %w", err)
			}
			// EMFILE, ECONNABORTED and the like: back off and go on.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("proxy: accept failed; retrying", "err", err, "delay", delay)
			select {
			case <-time.After(delay):
			case <-s.done:
			}
			continue
		}
		delay = 0
		cc := s.newClientConn(c)
		if cc == nil {
			continue
		}
		go cc.serve()
	}
}

func (s *Server) trackListener(ln net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.shutdown.Load() {
			return false
		}
		s.listeners[ln] = struct{}{}
		return true
	}
	if _, ok := s.listeners[ln]; ok {
		delete(s.listeners, ln)
		ln.Close()
	}
	return true
}

func (s *Server) trackConn(cc *clientConn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.shutdown.Load() {
			return false
		}
		s.conns[cc] = struct{}{}
		s.wg.Add(1)
		return true
	}
	delete(s.conns, cc)
	s.wg.Done()
	return true
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdown.Store(true)
	for ln := range s.listeners {
		ln.Close()
		delete(s.listeners, ln)
	}
	s.closeOnce.Do(func() { close(s.done) })
}

// Shutdown stops accepting, closes idle client connections, lets requests
// and tunnels in flight finish, and returns when all connections are gone
// (nil) or when ctx ends (then it closes the rest and returns ctx's error).
// Pooled upstream connections are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	if s.insp != nil {
		// Idle inspected connections close now, busy ones after their
		// request; each then ends its tunnel.
		go func() { _ = s.insp.shutdown(ctx) }()
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		for cc := range s.conns {
			cc.closeIfIdle()
		}
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
	s.wg.Wait()
	s.stopTunnels()
	s.shapers.close()
	s.pool.closeAll()
	return nil
}

// Close closes the listeners and every connection at once, and waits for
// their goroutines to end.
func (s *Server) Close() error {
	s.closeListeners()
	if s.insp != nil {
		s.insp.close()
	}
	s.mu.Lock()
	for cc := range s.conns {
		cc.forceClose()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.stopTunnels()
	s.shapers.close()
	s.pool.closeAll()
	return nil
}

// janitor closes pooled upstream connections idle for too long.
func (s *Server) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(max(s.cfg.UpstreamIdleTimeout/2, time.Second))
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.pool.expire()
		}
	}
}

// ActiveConns returns the number of client connections being served.
func (s *Server) ActiveConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
