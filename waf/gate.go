package waf

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf/cache"
)

// setupProtections builds what the gate and the cache need from the
// Config (called by New).
func (s *Server) setupProtections() error {
	var errs []error
	var err error
	if s.ddos, err = newDDoS(s.cfg.DDoS, s.cfg.Now); err != nil {
		errs = append(errs, err)
	}
	if !s.cfg.DDoS.NoChallenge {
		if s.chal, err = newChallenger(&s.cfg.DDoS, s.cfg.Now); err != nil {
			errs = append(errs, err)
		}
	}
	if s.defSite, err = s.resolveSite(SiteOptions{}, "Config"); err != nil {
		errs = append(errs, err)
	}
	s.sites = make(map[string]*siteConfig, len(s.cfg.Sites))
	geoNeeded := false
	for h, so := range s.cfg.Sites {
		sc, err := s.resolveSite(so, "Config.Sites["+h+"]")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.sites[h] = sc
		geoNeeded = geoNeeded || !so.Countries.empty()
	}
	switch {
	case s.cfg.GeoIP.Lookup != nil:
		s.geo = s.cfg.GeoIP.Lookup
	case s.cfg.GeoIP.File != "":
		g, err := openMMDB(s.cfg.GeoIP.File)
		if err != nil {
			errs = append(errs, err)
		} else {
			s.geo, s.geoClose = g, g.Close
		}
	case geoNeeded:
		errs = append(errs, errors.New("waf: a site has country rules but Config.GeoIP has no database"))
	}
	if !s.cfg.Cache.Disabled {
		c, err := cache.New(cache.Config{MaxBytes: s.cfg.Cache.MaxBytes, MaxObjectBytes: s.cfg.Cache.MaxObjectBytes,
			Dir: s.cfg.Cache.Dir, MaxDiskBytes: s.cfg.Cache.MaxDiskBytes, Now: s.cfg.Now, Logger: s.log})
		if err != nil {
			errs = append(errs, err)
		} else {
			s.cache = c
		}
	}
	if err := errors.Join(errs...); err != nil {
		_ = s.closeProtections()
		return err
	}
	return nil
}

func (s *Server) closeProtections() error {
	var errs []error
	if s.cache != nil {
		errs = append(errs, s.cache.Close())
	}
	if s.geoClose != nil {
		errs = append(errs, s.geoClose())
		s.geoClose = nil
	}
	return errors.Join(errs...)
}

// Cache returns the CDN cache (nil when Config.Cache.Disabled), e.g. to
// mount its PurgeHandler on an admin listener.
func (s *Server) Cache() *cache.Cache { return s.cache }

// PurgeHandler is the cache's purge API (see cache.PurgeHandler); it
// answers 404 when the cache is disabled. Mount it on a loopback / admin
// listener only.
func (s *Server) PurgeHandler() http.Handler {
	if s.cache == nil {
		return http.NotFoundHandler()
	}
	return s.cache.PurgeHandler()
}

// h2Config are the HTTP/2 server limits. Go's server also bounds the
// handlers of reset streams (the rapid-reset pattern, CVE-2023-44487):
// at most MaxConcurrentStreams run per connection, more are queued, and a
// connection whose queue overflows is closed.
func h2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxConcurrentStreams:          100,
		MaxDecoderHeaderTableSize:     4096,
		MaxEncoderHeaderTableSize:     4096,
		MaxReadFrameSize:              64 << 10,
		MaxReceiveBufferPerConnection: 1 << 20,
		MaxReceiveBufferPerStream:     256 << 10,
		SendPingTimeout:               30 * time.Second,
		PingTimeout:                   15 * time.Second,
		WriteByteTimeout:              30 * time.Second,
	}
}

var pageTooMany = page{Status: http.StatusTooManyRequests,
	TitleJA: "アクセスが集中しています", TitleEN: "Too many requests",
	ReasonJA: "ただいまアクセスが集中しているため、このリクエストを処理できませんでした。少し時間をおいて再度アクセスしてください。",
	ReasonEN: "The site is receiving too many requests right now. Please try again in a moment."}

// gateResult is what the gate decided for a request that goes on.
type gateResult struct {
	answered bool   // the gate answered (refused, or served from the cache)
	release  func() // frees the request's concurrency slot
	report   *guardDecision
	// challengePassed: over its fair share, let through by its cookie
	challengePassed bool
}

func (g *gateResult) annotate(ev *detect.Event) {
	if g.challengePassed {
		ev.Labels = append(ev.Labels, detect.Label{Key: "ddos", Value: "challenge-passed"})
	}
	if g.report != nil {
		ev.Verdict = detect.Verdict{Action: detect.ActionReport, Rule: g.report.rule, Reason: g.report.reason}
	}
}

// gate runs the checks before inspection: address lists, country and
// path rules (always enforced), DDoS limits, then the request checks of
// guard.go (report-only when the site says so, except size limits).
func (s *Server) gate(w http.ResponseWriter, r *http.Request, site *tenant.Site, t *tenant.Tenant, sc *siteConfig, start time.Time) gateResult {
	client := clientAddr(r).Addr()
	if d := s.checkAccess(r, sc, client); d != nil {
		s.refuse(w, r, site, t, start, d)
		return gateResult{answered: true}
	}
	release, v := s.ddos.admit(site.Host, client, sc.opts.NoAdaptiveDDoS)
	if v != nil {
		if v.adaptive && s.cache != nil {
			rw := &respWriter{ResponseWriter: &hardenWriter{ResponseWriter: w, so: sc, https: r.TLS != nil}}
			if res, ok := s.cache.ServeStored(rw, r, cachePolicy(sc, site)); ok {
				release()
				ev := s.event(r, site, t, start)
				ev.HTTP.Status, ev.BytesOut, ev.Outcome = rw.status(), rw.n, "success"
				ev.Verdict = detect.Verdict{Action: detect.ActionAllow, Rule: v.rule, Reason: v.reason + "; answered from the cache"}
				ev.Labels = append(ev.Labels, detect.Label{Key: "cache", Value: res.Status.String()},
					detect.Label{Key: "ddos", Value: "over-fair-share-cached"},
					detect.Label{Key: "origin_answered", Value: "false"})
				s.cfg.Sink.Emit(ev)
				return gateResult{answered: true}
			}
		}
		passed := false
		if v.adaptive && s.chal != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			// the cookie challenge instead of a bare 429 (challenge.go)
			if passed = s.chal.passed(r, client, site.Host); !passed {
				release()
				s.challenge(w, r, site, t, start, client, v)
				return gateResult{answered: true}
			}
		}
		if !passed {
			if release != nil {
				release()
			}
			s.refuse(w, r, site, t, start, &guardDecision{page: pageTooMany, rule: v.rule, reason: v.reason, action: detect.ActionDrop})
			return gateResult{answered: true}
		}
	}
	if s.cfg.DDoS.GlobalInFlight > 0 {
		// global overload: other sites leave the reserve to the disaster sites
		limit := s.cfg.DDoS.GlobalInFlight
		if !site.Disaster {
			limit = max(1, int(float64(limit)*(1-s.cfg.DDoS.DisasterReserve)))
		}
		if s.inflight.Add(1) > int64(limit) {
			s.inflight.Add(-1)
			if release != nil {
				release()
			}
			s.overloaded(w, r, site, t, sc, start, limit)
			return gateResult{answered: true}
		}
		inner := release
		release = func() {
			s.inflight.Add(-1)
			if inner != nil {
				inner()
			}
		}
	}
	g := gateResult{release: release}
	if v != nil {
		g.challengePassed = true
	}
	if d := s.checkRequest(r, sc); d != nil {
		if !sc.opts.Protect.ReportOnly || strings.HasPrefix(d.rule, "waf-limit-") || strings.HasPrefix(d.rule, "waf-bad-") {
			release()
			s.refuse(w, r, site, t, start, d)
			return gateResult{answered: true}
		}
		g.report = d
	}
	return g
}

var pageOverload = page{Status: http.StatusServiceUnavailable,
	TitleJA: "ただいま混雑しています", TitleEN: "The service is busy",
	ReasonJA: "アクセスが集中しているため、このページを表示できませんでした。少し時間をおいて再度アクセスしてください。防災情報のページは優先して配信しています。",
	ReasonEN: "Too many requests are being served right now. Please try again in a moment. Disaster-information pages are served first."}

// overloaded answers a request over the global in-flight cap: the
// site's stored copy when the cache has one, else 503.
func (s *Server) overloaded(w http.ResponseWriter, r *http.Request, site *tenant.Site, t *tenant.Tenant, sc *siteConfig, start time.Time, limit int) {
	reason := fmt.Sprintf("the gateway has %d requests in progress (this site's cap)", limit)
	if s.cache != nil {
		rw := &respWriter{ResponseWriter: &hardenWriter{ResponseWriter: w, so: sc, https: r.TLS != nil}}
		if res, ok := s.cache.ServeStored(rw, r, cachePolicy(sc, site)); ok {
			ev := s.event(r, site, t, start)
			ev.HTTP.Status, ev.BytesOut, ev.Outcome = rw.status(), rw.n, "success"
			ev.Verdict = detect.Verdict{Action: detect.ActionAllow, Rule: "waf-overload", Reason: reason + "; answered from the cache"}
			ev.Labels = append(ev.Labels, detect.Label{Key: "cache", Value: res.Status.String()},
				detect.Label{Key: "ddos", Value: "overload-cached"},
				detect.Label{Key: "origin_answered", Value: "false"})
			s.cfg.Sink.Emit(ev)
			return
		}
	}
	w.Header().Set("Retry-After", "1")
	s.refuse(w, r, site, t, start, &guardDecision{page: pageOverload, rule: "waf-overload", reason: reason, action: detect.ActionDrop})
}

// refuse answers r with d's page and emits the event.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, site *tenant.Site, t *tenant.Tenant, start time.Time, d *guardDecision) {
	ref := newRef()
	if d.page.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	if d.page.Status == http.StatusRequestEntityTooLarge || d.page.Status == http.StatusRequestHeaderFieldsTooLarge {
		w.Header().Set("Connection", "close") // the rest of the request is not read
	}
	writePage(w, d.page, ref)
	ev := s.event(r, site, t, start)
	ev.ID, ev.HTTP.Status, ev.Type, ev.Outcome = ref, d.page.Status, "denied", "success"
	ev.Verdict = detect.Verdict{Action: d.action, Rule: d.rule, Reason: d.reason}
	if d.action == detect.ActionBlock && !strings.HasPrefix(d.rule, "waf-ip-") && !strings.HasPrefix(d.rule, "waf-site-ip-") &&
		!strings.HasPrefix(d.rule, "waf-country-") && d.rule != "waf-path-acl" && !strings.HasPrefix(d.rule, "waf-limit-") {
		ev.Category = "intrusion_detection"
	}
	ev.Labels = append(ev.Labels, detect.Label{Key: "origin_answered", Value: "false"})
	s.cfg.Sink.Emit(ev)
}

// DroppedConns returns how many connections were refused by the
// per-source connection limit since New.
func (s *Server) DroppedConns() int64 { return s.droppedConns.Load() }

var _ = netip.Addr{}
