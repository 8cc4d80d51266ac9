package app

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/dnsres"
)

// The DNS resolver (package dnsres), wired from the configuration:
//
//   - listen.dns: UDP and TCP; clients outside every tenant are REFUSED.
//   - dns.upstreams: forwarders. Empty means recursion from
//     dns.root_hints; with neither there is no recursion target and
//     names outside the tenant zones are answered SERVFAIL. The appliance
//     never sends a query to the real root servers on its own.
//   - dns.fetches_per_zone: cap on outstanding queries per zone
//     (recursion) or per registered domain (forwarders), default 200;
//     dns.fetches_per_server: per authoritative server (recursion),
//     default 1,000; alerts go to the event pipeline.
//   - tenants[].zones: answered authoritatively from
//     <data_dir>/zones/<zone>.zone when that file exists, else from a
//     minimal zone (SOA + NS) so that the zone is served at all.
//   - dns.tenant_upstreams: tenants with forwarders (and a cache) of their own.
//   - dns.tenant_lists: per-tenant allow / deny lists, consulted first.
//   - dns.rpz: response-policy zones, consulted before the intel list.
//   - intel.*: the shared threat-intelligence set; listed domains (and
//     their subdomains) are sinkholed to dns.sinkhole_a / dns.sinkhole_aaaa
//     (default 0.0.0.0 / ::), or only reported for report-only tenants.
//   - dns.detection.*: DGA, tunnelling and NXDOMAIN-storm detection
//     (dnsres.Detector), report-only unless dns.detection.block.
//   - dns.rrl.*: response rate limiting of UDP answers (on by default).
//   - query log: one event per query to the appliance's event pipeline.
//
// Reload re-reads the zone files and the RPZ files (a file that no
// longer parses keeps its previous version). The other dns.* keys take
// effect at restart.

// dnsSinkholeA and dnsSinkholeAAAA answer listed names when
// dns.sinkhole_a / dns.sinkhole_aaaa are not set.
var (
	dnsSinkholeA    = netip.IPv4Unspecified()
	dnsSinkholeAAAA = netip.IPv6Unspecified()
)

type dnsService struct {
	a      *App
	srv    *dnsres.Server
	cache  *dnsres.Cache
	policy *dnsres.Policy
	zones  *dnsres.Zones
	rpz    *dnsres.RPZ
	// closers close the caches and the resolvers' upstream sockets.
	closers []func() error
}

// errNoRecursion is the answer (SERVFAIL) when there is neither an
// upstream nor a root hint.
var errNoRecursion = errors.New("dns: no upstreams and no root hints configured: nothing to resolve with")

func startDNS(_ context.Context, a *App, cfg *config.Config) (service, error) {
	if cfg.Listen.DNS == "" {
		a.log.Info("dns: listen.dns is empty; resolver not listening")
		return noService{}, nil
	}
	var res dnsres.Resolver = dnsres.ResolverFunc(func(context.Context, dnsres.Question) (*dns.Msg, error) {
		return nil, errNoRecursion
	})
	// closers close the caches and the upstream sockets: at shutdown, or
	// here when starting fails half-way.
	var closers []func() error
	started := false
	defer func() {
		if !started {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()
	switch {
	case len(cfg.DNS.Upstreams) > 0:
		fw, err := dnsres.NewForwarder(dnsres.ForwarderConfig{Upstreams: cfg.DNS.Upstreams,
			FetchesPerDomain: cfg.DNS.FetchesPerZone, Sink: a.events.sink()})
		if err != nil {
			return nil, err
		}
		res = fw
		closers = append(closers, fw.Close)
	case len(cfg.DNS.RootHints) > 0:
		rec, err := dnsres.NewRecursor(dnsres.RecursorConfig{RootHints: cfg.DNS.RootHints,
			FetchesPerZone: cfg.DNS.FetchesPerZone, FetchesPerServer: cfg.DNS.FetchesPerServer, Sink: a.events.sink()})
		if err != nil {
			return nil, fmt.Errorf("dns.root_hints: %w", err)
		}
		res = rec
		closers = append(closers, rec.Close)
	default:
		a.log.Warn("dns: no dns.upstreams and no dns.root_hints: names outside the tenant zones get SERVFAIL")
	}
	cache, err := dnsres.NewCache(dnsres.CacheConfig{Resolver: res})
	if err != nil {
		return nil, err
	}
	closers = append(closers, cache.Close)
	// Tenants with upstreams of their own get a forwarder and a cache each.
	views := map[string]dnsres.Handler{}
	for _, tu := range cfg.DNS.TenantUpstreams {
		fw, err := dnsres.NewForwarder(dnsres.ForwarderConfig{Upstreams: tu.Upstreams,
			FetchesPerDomain: cfg.DNS.FetchesPerZone, Sink: a.events.sink()})
		if err != nil {
			return nil, fmt.Errorf("dns.tenant_upstreams (%s): %w", tu.Tenant, err)
		}
		closers = append(closers, fw.Close)
		c, err := dnsres.NewCache(dnsres.CacheConfig{Resolver: fw})
		if err != nil {
			return nil, err
		}
		views[tu.Tenant] = c
		closers = append(closers, c.Close)
	}
	sinkA, sinkAAAA := dnsSinkholeA, dnsSinkholeAAAA
	if cfg.DNS.SinkholeA.IsValid() {
		sinkA = cfg.DNS.SinkholeA
	}
	if cfg.DNS.SinkholeAAAA.IsValid() {
		sinkAAAA = cfg.DNS.SinkholeAAAA
	}
	rpz := new(dnsres.RPZ)
	lists := map[string]dnsres.TenantLists{}
	for _, tl := range cfg.DNS.TenantLists {
		l := lists[tl.Tenant]
		l.Allow = append(l.Allow, tl.Allow...)
		l.Deny = append(l.Deny, tl.Deny...)
		lists[tl.Tenant] = l
	}
	policy, err := dnsres.NewPolicy(dnsres.PolicyConfig{Intel: a.intel(), SinkholeA: sinkA, SinkholeAAAA: sinkAAAA, RPZ: rpz, Tenants: lists})
	if err != nil {
		return nil, err
	}
	dc := cfg.DNS.Detection
	var allow []string
	if len(dc.AllowDomains) > 0 {
		allow = append(append(allow, dnsres.DefaultAllowDomains...), dc.AllowDomains...)
	}
	det, err := dnsres.NewDetector(dnsres.DetectorConfig{
		DGAThreshold: dc.DGAThreshold, AllowDomains: allow, Window: time.Duration(dc.Window),
		TunnelUnique: dc.TunnelUnique, NXDomainStorm: dc.NXDomainStorm,
		Block: dc.Block, BlockTenants: dc.BlockTenants, Sink: a.events.sink(),
	})
	if err != nil {
		return nil, fmt.Errorf("dns.detection: %w", err)
	}
	var rrl *dnsres.RRL
	if cfg.DNS.RRL.ResponseRate >= 0 || cfg.DNS.RRL.ClientRate > 0 {
		rrl, err = dnsres.NewRRL(dnsres.RRLConfig{ResponseRate: cfg.DNS.RRL.ResponseRate, ClientRate: cfg.DNS.RRL.ClientRate, Slip: cfg.DNS.RRL.Slip})
		if err != nil {
			return nil, fmt.Errorf("dns.rrl: %w", err)
		}
	}
	d := &dnsService{a: a, cache: cache, policy: policy, zones: dnsres.NewZones(), rpz: rpz, closers: closers}
	d.load(cfg)
	d.srv, err = dnsres.NewServer(dnsres.ServerConfig{
		Addr: cfg.Listen.DNS, Directory: a.live, Sink: a.events.sink(),
		Logger:   a.log.With("function", "dns"),
		Handler:  dnsres.Chain(dnsres.TenantRouter(views, cache), policy.Middleware, d.zones.Middleware, det.Middleware),
		Observer: det, RRL: rrl,
	})
	if err != nil {
		return nil, err
	}
	if err := d.srv.Start(); err != nil {
		return nil, fmt.Errorf("listen.dns: %w", err)
	}
	a.log.Info("dns resolver listening", "addr", d.srv.Addr().String(), "upstreams", len(cfg.DNS.Upstreams),
		"zones", d.zones.Len())
	started = true
	return d, nil
}

// load (re)reads the tenant zones. The intel set is the appliance's shared
// one (detection.go), swapped on reload for every function at once.
func (d *dnsService) load(cfg *config.Config) {
	zoneDir := filepath.Join(cfg.Path(cfg.DataDir), "zones")
	withFile := map[string]string{}
	var fixed []*dnsres.Zone
	for _, t := range cfg.Tenants {
		for _, z := range t.Zones {
			p := filepath.Join(zoneDir, z+".zone")
			if _, err := os.Stat(p); err == nil {
				withFile[z] = p
			} else {
				fixed = append(fixed, dnsres.DefaultZone(z, "ns."+z))
			}
		}
	}
	if err := d.zones.Update(withFile, fixed); err != nil {
		d.a.log.Warn("dns: zone files (previous versions kept)", "err", err)
	}
	rpzFiles := make([]string, len(cfg.DNS.RPZ))
	for i, f := range cfg.DNS.RPZ {
		rpzFiles[i] = cfg.Path(f)
	}
	if err := d.rpz.Load(rpzFiles); err != nil {
		d.a.log.Warn("dns: RPZ files (previous versions kept)", "err", err)
	}
}

// Reload applies new zones.
func (d *dnsService) Reload(cfg *config.Config) error {
	d.load(cfg)
	return nil
}

func (d *dnsService) Shutdown(ctx context.Context) error {
	errs := []error{d.srv.Shutdown(ctx)}
	for i := len(d.closers) - 1; i >= 0; i-- { // caches before their resolvers
		errs = append(errs, d.closers[i]())
	}
	return errors.Join(errs...)
}

type noService struct{}

func (noService) Shutdown(context.Context) error { return nil }
