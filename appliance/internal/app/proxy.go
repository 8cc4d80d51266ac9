package app

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/ratelimit"
)

// The forward web proxy (package proxy), wired from the configuration:
//
//   - listen.proxy: the HTTP/1.1 proxy port; empty leaves it off.
//   - tenants: the live directory (reloads apply to the next request);
//     sources in no tenant are refused with 403; each tenant dials from
//     its egress_addr; policy.allow_tenants are the exceptions to the ban
//     on direct traffic between tenants; policy.report_only and
//     policy.block_categories feed the URL filter; policy.no_tls_inspect
//     turns inspection off for a tenant.
//   - intel.*: the shared threat-intelligence set blocks requests to listed
//     domains, addresses and URLs (proxy.IntelDecider, before the lists),
//     and the addresses a requested name resolves to (proxy.Config.Intel).
//   - proxy.*: loopback destinations, CONNECT ports, trusted downstream
//     proxies, TLS inspection (CA in data_dir/proxy-ca.pem, created on
//     first start; terminals download it from
//     http://<listen.proxy>/seccloud-ca.pem), clamd scanning, SaaS tenant
//     restrictions, SaaS breakout (tenants' policy.breakout over
//     proxy.breakout's line, falling back to the main egress when its
//     health check fails), the line's capacity shared fairly among busy
//     tenants (proxy.global_bandwidth_mbps). The proxy.* keys apply at
//     start (restart to change), except proxy.tenant_restrictions, which
//     follow a reload (proxyService.Reload).
//   - access log: one event per request or tunnel to the event pipeline.

// Files of the inspection CA in the data directory.
const (
	proxyCACert = "proxy-ca.pem"
	proxyCAKey  = "proxy-ca.key"
)

// proxyTestResolver, when set (by tests only), answers the proxy's name
// lookups instead of DNS, so that vendor login hosts reach a loopback
// origin.
var proxyTestResolver proxy.Resolver

// proxyService is the running proxy.
type proxyService struct {
	log     *slog.Logger
	srv     *proxy.Server
	addr    string // the bound listen address
	caFile  string // the inspection CA certificate, "" without inspection
	scanner *proxy.ClamdScanner
	// breakout is set when a breakout line is configured.
	breakout bool
	done     chan error
}

func startProxy(_ context.Context, a *App, cfg *config.Config) (service, error) {
	log := a.log.With("function", "proxy")
	if cfg.Listen.Proxy == "" {
		log.Info("proxy: listen.proxy is empty; proxy not listening")
		return proxyOff{}, nil
	}
	lists, err := proxy.NewLists(proxy.ListConfig{})
	if err != nil {
		return nil, err
	}
	pc, caFile, scanner, err := proxyConfig(cfg)
	if err != nil {
		return nil, err
	}
	pc.Directory, pc.Sink, pc.Logger = a.live, a.events.sink(), log
	pc.Decider = proxy.IntelDecider{Intel: a.intel(), Next: lists}
	pc.Intel = a.intel() // the addresses a name resolves to, at dial time
	if proxyTestResolver != nil {
		pc.Resolver = proxyTestResolver
	}
	if len(pc.AllowDestinations) > 0 {
		log.Warn("proxy: loopback DESTINATIONS ARE ALLOWED (demo/test mode); never use this on a real network")
	}
	if pc.Inspect != nil {
		log.Info("proxy: TLS inspection on", "ca", caFile, "all", pc.Inspect.All)
	}
	if pc.Breakout != nil {
		known := map[string]bool{}
		for _, app := range pc.Breakout.Apps {
			known[app.ID] = true
		}
		for _, t := range cfg.Directory().Tenants() {
			for _, id := range t.Policy.Breakout {
				if !known[id] {
					log.Warn("proxy: tenant names an unknown breakout app; its traffic stays on the main line", "tenant", t.ID, "app", id)
				}
			}
		}
	} else {
		for _, t := range cfg.Directory().Tenants() {
			if len(t.Policy.Breakout) > 0 {
				log.Warn("proxy: policy.breakout set but proxy.breakout is not configured; everything leaves on the main line", "tenant", t.ID)
				break
			}
		}
	}
	if scanner != nil {
		if err := scanner.Ping(context.Background()); err != nil {
			log.Warn("proxy: clamd does not answer yet; downloads are blocked until it does unless proxy.scan.fail_open", "err", err)
		}
	}
	srv, err := proxy.New(pc)
	if err != nil {
		closeScanner(scanner)
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen.Proxy)
	if err != nil {
		srv.Close()
		closeScanner(scanner)
		return nil, fmt.Errorf("listen.proxy: %w", err)
	}
	s := &proxyService{log: log, srv: srv, addr: ln.Addr().String(), caFile: caFile, scanner: scanner,
		breakout: pc.Breakout != nil, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ln) }()
	log.Info("proxy listening", "addr", ln.Addr().String())
	return s, nil
}

func closeScanner(s *proxy.ClamdScanner) {
	if s != nil {
		s.Close()
	}
}

// proxyConfig builds the proxy.Config of the proxy.* keys (everything but
// the directory, sink, logger and decider).
func proxyConfig(cfg *config.Config) (pc proxy.Config, caFile string, scanner *proxy.ClamdScanner, err error) {
	p := cfg.Proxy
	loop := loopbackListen(cfg.Listen.Proxy)
	if p.AllowLoopbackDestinations != nil {
		loop = *p.AllowLoopbackDestinations
	}
	if loop {
		pc.AllowDestinations = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	for i, port := range p.ConnectPorts {
		if port < 1 || port > 65535 {
			return pc, "", nil, fmt.Errorf("proxy.connect_ports[%d]: %d is not a port", i, port)
		}
		pc.ConnectPorts = append(pc.ConnectPorts, uint16(port))
	}
	for i, tp := range p.TrustedProxies {
		// A downstream proxy is trusted for the tenant whose network
		// holds it: its X-Forwarded-For names that tenant's terminals.
		if _, ok := cfg.Directory().ByAddr(tp.Addr()); !ok {
			return pc, "", nil, fmt.Errorf("proxy.trusted_proxies[%d]: %s is in no tenant's networks", i, tp)
		}
	}
	pc.TrustedProxies = p.TrustedProxies
	if ti := p.TLSInspect; ti.Enabled {
		dir := cfg.Path(cfg.DataDir)
		caFile = filepath.Join(dir, proxyCACert)
		ca, err := proxy.LoadOrCreateCA(caFile, filepath.Join(dir, proxyCAKey), "seccloud TLS inspection CA", proxy.CAConfig{})
		if err != nil {
			return pc, "", nil, fmt.Errorf("proxy.tls_inspect: %w", err)
		}
		in := &proxy.InspectConfig{CA: ca, All: ti.All == nil || *ti.All, Hosts: ti.Hosts, Bypass: ti.Bypass,
			BypassCategories: ti.BypassCategories}
		for i, f := range ti.CategoryFiles {
			fh, err := os.Open(cfg.Path(f))
			if err != nil {
				return pc, "", nil, fmt.Errorf("proxy.tls_inspect.category_files[%d]: %w", i, err)
			}
			cats, err := proxy.ParseCategories(fh)
			fh.Close()
			if err != nil {
				return pc, "", nil, fmt.Errorf("proxy.tls_inspect.category_files[%d]: %w", i, err)
			}
			if in.Categories == nil {
				in.Categories = cats
			} else {
				for k, v := range cats {
					in.Categories[k] = v
				}
			}
		}
		if len(ti.RootCAs) > 0 {
			in.RootCAs = x509.NewCertPool()
			for i, f := range ti.RootCAs {
				b, err := os.ReadFile(cfg.Path(f))
				if err != nil {
					return pc, "", nil, fmt.Errorf("proxy.tls_inspect.root_cas[%d]: %w", i, err)
				}
				if !in.RootCAs.AppendCertsFromPEM(b) {
					return pc, "", nil, fmt.Errorf("proxy.tls_inspect.root_cas[%d]: no PEM certificate in %s", i, f)
				}
			}
		}
		pc.Inspect = in
	}
	if pc.TenantRestrictions, err = proxyRestrictions(cfg, pc.Inspect != nil); err != nil {
		return pc, "", nil, err
	}
	if b := p.Breakout; len(b.LocalAddrs) > 0 || b.Proxy != "" {
		bc := &proxy.BreakoutConfig{LocalAddrs: b.LocalAddrs, Proxy: b.Proxy, HealthTarget: b.HealthTarget,
			HealthInterval: time.Duration(b.HealthInterval), Apps: proxy.DefaultApps()}
		if b.AppsDir != "" {
			extra, err := proxy.LoadApps(os.DirFS(cfg.Path(b.AppsDir)), ".")
			if err != nil {
				return pc, "", nil, fmt.Errorf("proxy.breakout.apps_dir: %w", err)
			}
			bc.Apps = append(bc.Apps, extra...)
		}
		pc.Breakout = bc
	} else if b.HealthTarget != "" || b.AppsDir != "" {
		return pc, "", nil, errors.New("proxy.breakout: set local_addrs or proxy to turn breakout on")
	}
	if g := p.GlobalBandwidthMbps; g.Up < 0 || g.Down < 0 {
		return pc, "", nil, fmt.Errorf("proxy.global_bandwidth_mbps: must not be negative, got up %d down %d", g.Up, g.Down)
	}
	pc.GlobalBandwidth = proxy.GlobalBandwidth{UpMbps: p.GlobalBandwidthMbps.Up, DownMbps: p.GlobalBandwidthMbps.Down}
	switch {
	case p.TenantConns < 0:
		return pc, "", nil, fmt.Errorf("proxy.tenant_conns: must not be negative, got %d", p.TenantConns)
	case p.TenantConns > 0:
		lim, err := ratelimit.NewConcurrency[string](ratelimit.ConcurrencyConfig{MaxInFlight: p.TenantConns})
		if err != nil {
			return pc, "", nil, fmt.Errorf("proxy.tenant_conns: %w", err)
		}
		pc.TenantConns = lim
	}
	if sc := p.Scan; sc.Clamd != "" {
		if sc.MaxBytes < 0 {
			return pc, "", nil, fmt.Errorf("proxy.scan.max_bytes: must not be negative")
		}
		scanner, err = proxy.NewClamdScanner(sc.Clamd, time.Duration(sc.Timeout))
		if err != nil {
			return pc, "", nil, fmt.Errorf("proxy.scan.clamd: %w", err)
		}
		pc.Scanner, pc.ScanMaxBytes, pc.ScanTimeout, pc.ScanFailOpen = scanner, sc.MaxBytes, time.Duration(sc.Timeout), sc.FailOpen
	}
	return pc, caFile, scanner, nil
}

// proxyRestrictions builds the SaaS tenant restrictions of
// proxy.tenant_restrictions (nil when there are none).
func proxyRestrictions(cfg *config.Config, inspect bool) (map[string]proxy.TenantRestriction, error) {
	p := cfg.Proxy
	if len(p.TenantRestrictions) == 0 {
		return nil, nil
	}
	if !inspect {
		return nil, errors.New("proxy.tenant_restrictions: needs proxy.tls_inspect.enabled (the login hosts must be inspected)")
	}
	m := make(map[string]proxy.TenantRestriction, len(p.TenantRestrictions))
	for i, r := range p.TenantRestrictions {
		if _, ok := cfg.Directory().ByID(r.Tenant); !ok {
			return nil, fmt.Errorf("proxy.tenant_restrictions[%d].tenant: no tenant %q", i, r.Tenant)
		}
		m[r.Tenant] = proxy.TenantRestriction{MicrosoftTenants: r.MicrosoftTenants,
			MicrosoftContext: r.MicrosoftContext, MicrosoftPolicy: r.MicrosoftPolicy, GoogleDomains: r.GoogleDomains,
			SlackWorkspaces: r.SlackWorkspaces, SlackRequester: r.SlackRequester, WebexDomains: r.WebexDomains}
	}
	return m, nil
}

// Reload applies the reloadable proxy.* keys of a new configuration:
// proxy.tenant_restrictions (from the next request on). A set the proxy
// refuses (unknown tenant, missing field, inspection off since start) is
// logged and the running one stays; the other proxy.* keys need a
// restart.
func (s *proxyService) Reload(cfg *config.Config) error {
	m, err := proxyRestrictions(cfg, s.caFile != "")
	if err == nil {
		err = s.srv.SetTenantRestrictions(m)
	}
	if err != nil {
		s.log.Error("proxy: tenant restrictions not reloaded; the running ones stay", "err", err)
		return err
	}
	s.log.Info("proxy: tenant restrictions reloaded", "tenants", len(m))
	return nil
}

// Shutdown drains the proxy: idle connections close at once, requests and
// tunnels in flight get until ctx ends.
func (s *proxyService) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, proxy.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	closeScanner(s.scanner)
	return err
}

func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback() || host == "localhost"
}

// proxyOff stands for a proxy switched on without a listen address.
type proxyOff struct{}

func (proxyOff) Shutdown(context.Context) error { return nil }
