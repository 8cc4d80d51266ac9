package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/waf"
)

// The reverse proxy for the tenants' public sites (package waf), wired from
// the configuration:
//
//   - listen.waf_http: plain HTTP; listen.waf_https: HTTPS with each site's
//     certificate chosen by SNI (tenants[].sites[].tls_cert / tls_key,
//     re-read when the files change). Either may be empty (not served).
//   - tenants[].sites: host → origins, through the shared tenant
//     directory, so a reload applies at once.
//   - access log: one event per request to the event pipeline.
//   - waf: gateway protections per site, CDN cache, layer-7 DDoS limits
//     and origin restriction (wafConfig below); the console serves
//     POST /api/waf/purge and GET /api/waf/egress (loopback clients only).

type wafService struct {
	srv   *waf.Server
	addrs map[string]string // config key → bound address
	done  []chan error
	// chalKey is the key signing the challenge cookies (wafChallengeKey).
	chalKey []byte
}

func startWAF(_ context.Context, a *App, cfg *config.Config) (service, error) {
	log := a.log.With("function", "waf")
	if cfg.Listen.WAFHTTP == "" && cfg.Listen.WAFHTTPS == "" {
		log.Info("waf: listen.waf_http and listen.waf_https are empty; not listening")
		return noService{}, nil
	}
	wc, err := wafConfig(cfg)
	if err != nil {
		return nil, err
	}
	wc.Directory, wc.Sink, wc.Logger = a.live, a.events.sink(), log
	if a.limits != nil { // cluster.redis: the per-client rate is shared by the nodes
		if err := a.limits.wafClientLimit(&wc.DDoS); err != nil {
			return nil, err
		}
	}
	if wc.Engine, err = wafEngine(cfg, log); err != nil {
		return nil, err
	}
	if wc.DDoS.ChallengeKey, err = wafChallengeKey(cfg); err != nil {
		return nil, err
	}
	srv, err := waf.New(wc)
	if err != nil {
		return nil, err
	}
	s := &wafService{srv: srv, addrs: map[string]string{}, chalKey: wc.DDoS.ChallengeKey}
	serve := func(addr, key string, fn func(net.Listener) error) error {
		if addr == "" {
			return nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		done := make(chan error, 1)
		s.done = append(s.done, done)
		s.addrs[key] = ln.Addr().String()
		go func() { done <- fn(ln) }()
		log.Info("waf listening", key, ln.Addr().String())
		return nil
	}
	if err := serve(cfg.Listen.WAFHTTP, "listen.waf_http", srv.Serve); err != nil {
		srv.Close()
		return nil, err
	}
	if err := serve(cfg.Listen.WAFHTTPS, "listen.waf_https", srv.ServeTLS); err != nil {
		_ = s.Shutdown(context.Background())
		return nil, err
	}
	return s, nil
}

// Shutdown stops accepting and drains requests in flight until ctx ends.
func (s *wafService) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	for _, d := range s.done {
		if serr := <-d; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}
	return err
}

// wafConfig translates the config file's waf section.
func wafConfig(cfg *config.Config) (waf.Config, error) {
	c := cfg.WAF
	wc := waf.Config{
		Access:  waf.IPLists{Allow: c.Allow, Deny: c.Deny},
		Origins: waf.OriginConfig{SourceAddr: c.SourceAddr, Egress: c.Egress},
		Cache: waf.CacheConfig{Disabled: c.Cache.Disabled, MaxBytes: c.Cache.MaxMB << 20,
			MaxObjectBytes: c.Cache.MaxObjectMB << 20, Dir: c.Cache.Dir, MaxDiskBytes: c.Cache.MaxDiskMB << 20},
		DDoS: waf.DDoSConfig{Disabled: c.DDoS.Disabled, ClientRate: c.DDoS.ClientRate, ClientBurst: c.DDoS.ClientBurst,
			ClientInFlight: c.DDoS.ClientInFlight, ConnsPerSource: c.DDoS.ConnsPerSource,
			AdaptiveFactor: c.DDoS.AdaptiveFactor, Exempt: c.DDoS.Exempt, ChallengeWork: c.DDoS.ChallengeWork,
			GlobalInFlight: c.DDoS.GlobalInFlight, DisasterReserve: c.DDoS.DisasterReserve},
		Sites: map[string]waf.SiteOptions{},
	}
	wc.Inspection = waf.InspectionConfig{MaxBody: c.Engine.MaxBodyKB << 10, FailOpen: c.Engine.FailOpen}
	if c.GeoIPFile != "" {
		wc.GeoIP.File = cfg.Path(c.GeoIPFile)
	}
	if wc.Cache.Dir != "" {
		wc.Cache.Dir = cfg.Path(wc.Cache.Dir)
	}
	for i, s := range c.Sites {
		if s.Host == "" {
			return wc, fmt.Errorf("waf.sites[%d].host: missing", i)
		}
		so := waf.SiteOptions{
			RedirectHTTPS: s.RedirectHTTPS, HTTPSPort: s.HTTPSPort,
			Protect: waf.Protections{ReportOnly: s.ReportOnly, FrameOptions: s.FrameOptions, FrameAncestors: s.FrameAncestors,
				CSRFExempt: s.CSRFExempt, CSRFTrustedOrigins: s.CSRFTrustedOrigins},
			Access: waf.IPLists{Allow: s.Allow, Deny: s.Deny},
			Cache: waf.SiteCache{Disabled: s.CacheDisabled, DefaultTTL: time.Duration(s.CacheDefaultTTL),
				Grace: time.Duration(s.CacheGrace)},
			OriginAuth: waf.OriginAuth{Header: s.OriginHeader, Value: s.OriginSecret},
			Countries:  waf.CountryRules{Allow: s.AllowCountries, Deny: s.DenyCountries},
		}
		if s.OriginClientCert != "" || s.OriginClientKey != "" {
			so.OriginAuth.ClientCert, so.OriginAuth.ClientKey = cfg.Path(s.OriginClientCert), cfg.Path(s.OriginClientKey)
		}
		for _, pa := range s.PathAccess {
			so.PathAccess = append(so.PathAccess, waf.AccessRule{Path: pa.Path, Allow: pa.Allow})
		}
		if _, dup := wc.Sites[s.Host]; dup {
			return wc, fmt.Errorf("waf.sites[%d].host: %s is listed twice", i, s.Host)
		}
		wc.Sites[s.Host] = so
	}
	return wc, nil
}

// wafChallengeKey reads the key signing the challenge cookies from
// waf.ddos.challenge_key_file (default data_dir/waf/challenge.key, created
// on first start), so that cookies survive a restart and pass on every
// node sharing the file. Nil when waf.ddos.disabled (no challenge).
func wafChallengeKey(cfg *config.Config) ([]byte, error) {
	if cfg.WAF.DDoS.Disabled {
		return nil, nil
	}
	return secretKey(cfg.WAFChallengeKeyFile(), cfg.WAF.DDoS.ChallengeKeyFile == "", "waf.ddos.challenge_key_file", 16)
}

// wafServer returns the running WAF, or nil.
func (a *App) wafServer() *waf.Server {
	for _, f := range a.funcs {
		if f.name != "waf" {
			continue
		}
		f.mu.Lock()
		s, _ := f.svc.(*wafService)
		f.mu.Unlock()
		if s != nil {
			return s.srv
		}
	}
	return nil
}

// wafPurgeAPI is POST /api/waf/purge?url=... or ?prefix=... (the CDN
// cache's purge, see waf/cache.PurgeHandler), loopback clients only.
func (a *App) wafPurgeAPI(w http.ResponseWriter, r *http.Request) {
	if !fromLoopback(r) {
		http.Error(w, "the purge API is allowed from loopback addresses only", http.StatusForbidden)
		return
	}
	s := a.wafServer()
	if s == nil {
		http.Error(w, "the WAF is not running", http.StatusServiceUnavailable)
		return
	}
	s.PurgeHandler().ServeHTTP(w, r)
}

// wafEgressAPI is GET /api/waf/egress: the addresses the sites' origins
// must allow (waf.source_addr and waf.egress), as JSON
// {"egress": ["192.0.2.10", ...]}, one per line with ?format=text.
func (a *App) wafEgressAPI(w http.ResponseWriter, r *http.Request) {
	if !fromLoopback(r) {
		http.Error(w, "the egress API is allowed from loopback addresses only", http.StatusForbidden)
		return
	}
	s := a.wafServer()
	if s == nil {
		http.Error(w, "the WAF is not running", http.StatusServiceUnavailable)
		return
	}
	addrs := make([]string, 0)
	for _, e := range s.EgressAddrs() {
		addrs = append(addrs, e.String())
	}
	if r.URL.Query().Get("format") == "text" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, e := range addrs {
			fmt.Fprintln(w, e)
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string][]string{"egress": addrs})
}

// wafEngine builds the inspection engine from waf.engine and the sites'
// overrides: one CRS instance for all sites (nil when waf.engine.off).
func wafEngine(cfg *config.Config, log *slog.Logger) (waf.Engine, error) {
	ec := cfg.WAF.Engine
	if ec.Off {
		log.Warn("waf: waf.engine.off: requests are not inspected")
		return nil, nil
	}
	def := waf.SiteRules{ParanoiaLevel: ec.ParanoiaLevel, AnomalyThreshold: ec.AnomalyThreshold, DetectOnly: ec.DetectOnly}
	cc := waf.CRSConfig{Logger: log, Default: def, Sites: map[string]waf.SiteRules{}}
	if ec.RulesFile != "" {
		b, err := os.ReadFile(cfg.Path(ec.RulesFile))
		if err != nil {
			return nil, fmt.Errorf("waf.engine.rules_file: %w", err)
		}
		cc.Directives = string(b)
	}
	for _, s := range cfg.WAF.Sites {
		r := def
		if s.ParanoiaLevel != 0 {
			r.ParanoiaLevel = s.ParanoiaLevel
		}
		if s.AnomalyThreshold != 0 {
			r.AnomalyThreshold = s.AnomalyThreshold
		}
		r.DetectOnly = r.DetectOnly || s.DetectOnly
		for _, x := range s.RuleExclusions {
			r.Exclusions = append(r.Exclusions, waf.Exclusion{RuleID: x.RuleID, RuleIDTo: x.RuleIDTo, Target: x.Target, PathPrefix: x.Path})
		}
		cc.Sites[s.Host] = r
	}
	e, err := waf.NewCRSEngine(cc)
	if err != nil {
		return nil, err
	}
	return e, nil
}
