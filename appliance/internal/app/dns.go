package app

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/dnsres"
)

// The DNS resolver (package dnsres), wired from the configuration:
//
//   - listen.dns: UDP and TCP; clients outside every tenant are REFUSED.
//   - dns.upstreams: forwarders. Empty means recursion from root hints;
//     the configuration has no root hints yet, so there is no recursion
//     target and names outside the tenant zones are answered SERVFAIL.
//     The appliance never sends a query to the real root servers.
//   - tenants[].zones: answered authoritatively from
//     <data_dir>/zones/<zone>.zone when that file exists, else from a
//     minimal zone (SOA + NS) so that the zone is served at all.
//   - intel.*: the shared threat-intelligence set; listed domains (and
//     their subdomains) are sinkholed to 0.0.0.0 / :: (no sinkhole key in
//     the configuration yet), or only reported for report-only tenants.
//   - query log: one event per query to the appliance's event pipeline.
//
// Reload re-reads the zone files (a zone file that no
// longer parses keeps its previous version).

// dnsSinkholeA and dnsSinkholeAAAA answer listed names until the
// configuration has a sinkhole key.
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
	if len(cfg.DNS.Upstreams) > 0 {
		fw, err := dnsres.NewForwarder(dnsres.ForwarderConfig{Upstreams: cfg.DNS.Upstreams})
		if err != nil {
			return nil, err
		}
		res = fw
	} else {
		a.log.Warn("dns: no dns.upstreams and no root hints: names outside the tenant zones get SERVFAIL")
	}
	cache, err := dnsres.NewCache(dnsres.CacheConfig{Resolver: res})
	if err != nil {
		return nil, err
	}
	policy, err := dnsres.NewPolicy(dnsres.PolicyConfig{Intel: a.intel(), SinkholeA: dnsSinkholeA, SinkholeAAAA: dnsSinkholeAAAA})
	if err != nil {
		return nil, err
	}
	d := &dnsService{a: a, cache: cache, policy: policy, zones: dnsres.NewZones()}
	d.load(cfg)
	d.srv, err = dnsres.NewServer(dnsres.ServerConfig{
		Addr: cfg.Listen.DNS, Directory: a.live, Sink: a.events.sink(),
		Logger:  a.log.With("function", "dns"),
		Handler: dnsres.Chain(cache, policy.Middleware, d.zones.Middleware),
	})
	if err != nil {
		return nil, err
	}
	if err := d.srv.Start(); err != nil {
		return nil, fmt.Errorf("listen.dns: %w", err)
	}
	a.log.Info("dns resolver listening", "addr", d.srv.Addr().String(), "upstreams", len(cfg.DNS.Upstreams),
		"zones", d.zones.Len())
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
}

// Reload applies new zones.
func (d *dnsService) Reload(cfg *config.Config) error {
	d.load(cfg)
	return nil
}

func (d *dnsService) Shutdown(ctx context.Context) error {
	err := d.srv.Shutdown(ctx)
	return errors.Join(err, d.cache.Close())
}

type noService struct{}

func (noService) Shutdown(context.Context) error { return nil }
