package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jichitai/seccloud/tenant"
)

// SiteDay is one public site's traffic of one day.
type SiteDay struct {
	Site string `json:"site"`
	// Day is the day's date, YYYY-MM-DD in the console's zone.
	Day       string `json:"day"`
	Requests  int64  `json:"requests"`
	Bytes     int64  `json:"bytes"`
	CacheHits int64  `json:"cache_hits"`
	Attacks   int64  `json:"attacks_blocked"`
}

// CacheHitRatio is CacheHits/Requests (0 without requests).
func (d SiteDay) CacheHitRatio() float64 {
	if d.Requests == 0 {
		return 0
	}
	return float64(d.CacheHits) / float64(d.Requests)
}

// SiteTraffic gives the public sites' traffic per day (the appliance wires
// detect/report's rollups, counted at ingest from the WAF's events).
// Implementations must be safe for concurrent use.
type SiteTraffic interface {
	// SiteDays returns the rows of tenant's sites for each day starting
	// at the given instants (each day is [start, start+24h) — the caller
	// passes local midnights). Days without traffic may be left out.
	SiteDays(tenant string, days []time.Time) ([]SiteDay, error)
}

// Purger empties the CDN cache (the appliance wires the running WAF's
// waf/cache). Targets are "scheme://host/path" or "host/path" (both
// schemes), as waf/cache.Cache.Purge takes them; both return how many
// stored responses were removed. Implementations must be safe for
// concurrent use.
type Purger interface {
	Purge(url string) (int, error)
	PurgePrefix(prefix string) (int, error)
}

// DefaultSiteDays is how many days the site traffic page shows.
const DefaultSiteDays = 14

var errBadTarget = errors.New("console: bad purge target")

// purgeTarget checks a purge target and returns it in cache-key form and
// its host. The host is lower-cased and must be a plain DNS name; a
// prefix always ends the host with "/", so it never reaches another
// host's keys ("https://a.example" is not a prefix of
// "https://a.example.evil/").
func purgeTarget(target string, prefix bool) (key, host string, err error) {
	target = strings.TrimSpace(target)
	if target == "" || len(target) > 2000 {
		return "", "", fmt.Errorf("%w: want a URL of 1-2000 bytes", errBadTarget)
	}
	scheme, rest := "", strings.TrimPrefix(target, "//")
	switch {
	case strings.HasPrefix(strings.ToLower(target), "http://"):
		scheme, rest = "http://", target[7:]
	case strings.HasPrefix(strings.ToLower(target), "https://"):
		scheme, rest = "https://", target[8:]
	}
	host, path, _ := strings.Cut(rest, "/")
	path = "/" + path
	host = strings.ToLower(host)
	if len(host) == 0 || len(host) > 253 || strings.HasPrefix(host, ".") || strings.HasSuffix(host, ".") || strings.Contains(host, "..") {
		return "", "", fmt.Errorf("%w: bad host", errBadTarget)
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return "", "", fmt.Errorf("%w: bad host", errBadTarget)
		}
	}
	for _, r := range path {
		if r <= 0x20 || r == 0x7f || r == '#' {
			return "", "", fmt.Errorf("%w: the path must not hold spaces, control characters or #", errBadTarget)
		}
	}
	return scheme + host + path, host, nil
}

// siteRows is one site's days for the page.
type siteRows struct {
	Tenant, Host string
	Disaster     bool
	Days         []SiteDay
	Total        SiteDay
}

// siteTraffic returns each site of the scope's tenants (narrowed to
// requested) with its last n days, newest first.
func (c *Console) siteTraffic(s *scope, requested string, n int) ([]siteRows, error) {
	tenants, err := s.siteTenants(requested)
	if err != nil {
		return nil, err
	}
	now := c.cfg.Now().In(c.cfg.Location)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, c.cfg.Location)
	days := make([]time.Time, n)
	for i := range days {
		days[i] = today.AddDate(0, 0, -i)
	}
	var out []siteRows
	for _, t := range tenants {
		byKey := map[string]SiteDay{}
		if c.cfg.SiteTraffic != nil {
			rows, err := c.cfg.SiteTraffic.SiteDays(t.ID, days)
			if err != nil {
				return nil, err
			}
			for _, r := range rows {
				byKey[strings.ToLower(r.Site)+" "+r.Day] = r
			}
		}
		for _, site := range t.Sites {
			sr := siteRows{Tenant: t.ID, Host: site.Host, Disaster: site.Disaster, Total: SiteDay{Site: site.Host}}
			for _, d := range days {
				day := d.Format("2006-01-02")
				r := byKey[strings.ToLower(site.Host)+" "+day]
				r.Site, r.Day = site.Host, day
				sr.Days = append(sr.Days, r)
				sr.Total.Requests += r.Requests
				sr.Total.Bytes += r.Bytes
				sr.Total.CacheHits += r.CacheHits
				sr.Total.Attacks += r.Attacks
			}
			out = append(out, sr)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Tenant != out[j].Tenant {
			return out[i].Tenant < out[j].Tenant
		}
		return out[i].Host < out[j].Host
	})
	s.audit("site.view", "tenant:"+requested, "success", "")
	return out, nil
}

func siteDaysParam(r *http.Request) int {
	if n, err := strconv.Atoi(r.URL.Query().Get("days")); err == nil && n > 0 && n <= 62 {
		return n
	}
	return DefaultSiteDays
}

func (c *Console) sitesPage(w http.ResponseWriter, r *http.Request, s *scope) {
	tn := r.URL.Query().Get("tenant")
	rows, err := c.siteTraffic(s, tn, siteDaysParam(r))
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	d := struct {
		Tenant  string
		Sites   []siteRows
		Tenants []*tenant.Tenant
		CanAct  bool
		Purge   bool
		Result  string
	}{tn, rows, s.tenants(), s.canAct(), c.cfg.Purger != nil, ""}
	p := c.newPage(r, s, "sites.title", "sites", d)
	if n := r.URL.Query().Get("purged"); n != "" {
		if _, err := strconv.Atoi(n); err == nil {
			p.Flash = fmt.Sprintf(tr(p.Lang, "purge.done"), n)
		}
	}
	c.render(w, http.StatusOK, "sites", p)
}

func (c *Console) purgePost(w http.ResponseWriter, r *http.Request, s *scope) {
	n, _, err := s.purge(r.PostForm.Get("url"), r.PostForm.Get("mode") == "prefix")
	switch {
	case errors.Is(err, errBadTarget):
		p := c.newPage(r, s, "failed", "sites", nil)
		p.Error = tr(p.Lang, "purge.bad")
		c.render(w, http.StatusBadRequest, "error", p)
		return
	case err != nil:
		c.errorPage(w, r, s, err)
		return
	}
	back := "/sites?purged=" + strconv.Itoa(n)
	if t := r.PostForm.Get("tenant"); t != "" {
		back += "&tenant=" + url.QueryEscape(t)
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// SiteTrafficResult is a site's days in GET /api/v1/sites.
type SiteTrafficResult struct {
	Tenant string    `json:"tenant"`
	Site   string    `json:"site"`
	Days   []SiteDay `json:"days"`
}

func (c *Console) apiSites(w http.ResponseWriter, r *http.Request, s *scope) {
	rows, err := c.siteTraffic(s, r.URL.Query().Get("tenant"), siteDaysParam(r))
	if err != nil {
		c.apiScopeError(w, err)
		return
	}
	out := make([]SiteTrafficResult, 0, len(rows))
	for _, sr := range rows {
		out = append(out, SiteTrafficResult{Tenant: sr.Tenant, Site: sr.Host, Days: sr.Days})
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) apiPurge(w http.ResponseWriter, r *http.Request, s *scope) {
	var in struct {
		URL    string `json:"url"`
		Prefix bool   `json:"prefix"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	n, key, err := s.purge(in.URL, in.Prefix)
	if err != nil {
		if errors.Is(err, errBadTarget) {
			apiError(w, http.StatusBadRequest, err.Error())
			return
		}
		if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrForbidden) {
			apiError(w, http.StatusBadGateway, err.Error())
			return
		}
		c.apiScopeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"purged": n, "target": key, "prefix": in.Prefix})
}
