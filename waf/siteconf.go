package waf

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf/cache"
)

// siteConfig is a site's options resolved once in New.
type siteConfig struct {
	opts            SiteOptions
	limits          Limits
	sessionNames    []string
	urlSessionNames []string
	frameOptions    string
	frameAncestors  string
	sameSiteAttr    string
	policy          cache.Policy
	tr              *http.Transport // with the site's client certificate; nil: the shared one
}

// check validates the options New cannot default.
func (so *SiteOptions) check(where string) error {
	var errs []error
	if err := so.Limits.validate(where + ".Limits"); err != nil {
		errs = append(errs, err)
	}
	for i, ar := range so.PathAccess {
		if !strings.HasPrefix(ar.Path, "/") {
			errs = append(errs, fmt.Errorf("waf: %s.PathAccess[%d].Path %q must start with '/'", where, i, ar.Path))
		}
	}
	switch strings.ToLower(so.Protect.SameSite) {
	case "", "lax", "strict", "none":
	default:
		errs = append(errs, fmt.Errorf("waf: %s.Protect.SameSite %q: want Lax, Strict or None", where, so.Protect.SameSite))
	}
	for _, v := range []string{so.Protect.FrameOptions, so.Protect.FrameAncestors} {
		if strings.ContainsAny(v, "\r\n\x00,;") {
			errs = append(errs, fmt.Errorf("waf: %s.Protect: frame option %q holds a forbidden character", where, v))
		}
	}
	if so.Cache.DefaultTTL < 0 || so.Cache.Grace < 0 {
		errs = append(errs, fmt.Errorf("waf: %s.Cache: negative duration", where))
	}
	if err := so.OriginAuth.validate(where); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// resolveSite builds the siteConfig of options so.
func (s *Server) resolveSite(so SiteOptions, where string) (*siteConfig, error) {
	sc := &siteConfig{opts: so, limits: so.Limits}
	sc.limits.defaults(s.cfg.Limits)
	sc.opts.PathAccess = append([]AccessRule(nil), so.PathAccess...)
	for i := range sc.opts.PathAccess {
		sc.opts.PathAccess[i].lower = cleanPath(sc.opts.PathAccess[i].Path)
		if strings.HasSuffix(sc.opts.PathAccess[i].Path, "/") == false {
			sc.opts.PathAccess[i].lower = strings.TrimSuffix(sc.opts.PathAccess[i].lower, "/")
		}
	}
	sc.sessionNames, sc.urlSessionNames = so.Protect.SessionCookies, so.Protect.SessionCookies
	if so.Protect.SessionCookies == nil {
		sc.sessionNames, sc.urlSessionNames = DefaultSessionCookies, DefaultSessionParams
	}
	sc.frameOptions = orDefault(so.Protect.FrameOptions, "SAMEORIGIN")
	sc.frameAncestors = orDefault(so.Protect.FrameAncestors, "'self'")
	switch strings.ToLower(so.Protect.SameSite) {
	case "", "lax":
		sc.sameSiteAttr = "Lax"
	case "strict":
		sc.sameSiteAttr = "Strict"
	case "none":
		sc.sameSiteAttr = "None"
	}
	sc.policy = cache.Policy{Bypass: so.Cache.Disabled, DefaultTTL: so.Cache.DefaultTTL,
		Grace: so.Cache.Grace, HonorRequestNoCache: so.Cache.HonorClientNoCache}
	if so.OriginAuth.ClientCert != "" {
		tr, err := s.originTransport(so.OriginAuth, where)
		if err != nil {
			return nil, err
		}
		sc.tr = tr
	}
	return sc, nil
}

func orDefault(v, def string) string {
	switch {
	case v == "":
		return def
	case strings.EqualFold(v, "off"):
		return ""
	}
	return v
}

// siteConf returns the resolved options of the site with key host
// (normalised as normSiteKey does, so a Directory that reports a Unicode
// or mixed-case host still finds its options).
func (s *Server) siteConf(host string) *siteConfig {
	if sc, ok := s.sites[host]; ok {
		return sc
	}
	if k, ok := renormSiteKey(host); ok {
		if sc, ok := s.sites[k]; ok {
			return sc
		}
	}
	return s.defSite
}

// normSiteKey returns the key of a site host: lower-case A-labels
// without a trailing dot ("ＷＷＷ.市役所.JP", "www.市役所.jp" and
// "www.xn--7sto6a74d.jp" are one site), "*." kept in front of a
// wildcard.
func normSiteKey(h string) (string, error) {
	rest, wild := strings.CutPrefix(h, "*.")
	k, err := tenant.NormalizeDomain(rest)
	if err != nil {
		return "", err
	}
	if wild {
		k = "*." + k
	}
	return k, nil
}

// renormSiteKey normalises a lookup key that is not already in normal
// form (has upper-case or non-ASCII characters or a trailing dot); ok is
// false when h is already normal (or cannot be normalised).
func renormSiteKey(h string) (string, bool) {
	normal := !strings.HasSuffix(h, ".")
	for i := 0; i < len(h) && normal; i++ {
		if c := h[i]; c >= 0x80 || 'A' <= c && c <= 'Z' {
			normal = false
		}
	}
	if normal {
		return "", false
	}
	k, err := normSiteKey(h)
	return k, err == nil && k != h
}

// Cache defaults of disaster-information sites (tenant.Site.Disaster) for
// the SiteCache fields left at zero: the last good copy is served for a
// day when the origins fail, and pages without Cache-Control are cached
// for 10 s, so a surge reaches the origins at most once per page and
// 10 s.
const (
	DefaultDisasterGrace = 24 * time.Hour
	DefaultDisasterTTL   = 10 * time.Second
)

// cachePolicy is the cache policy of a request for site.
func cachePolicy(sc *siteConfig, site *tenant.Site) cache.Policy {
	p := sc.policy
	if site.Disaster {
		if p.Grace == 0 {
			p.Grace = DefaultDisasterGrace
		}
		if p.DefaultTTL == 0 {
			p.DefaultTTL = DefaultDisasterTTL
		}
	}
	return p
}
