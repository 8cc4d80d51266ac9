package app

import (
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/appliance/console"
	"github.com/jichitai/seccloud/detect/report"
)

// consoleExtras are the console's requests, mail, site traffic, cache
// purge, rollup counts and session file, from the configuration:
//
//   - requests in data_dir/console/requests (one JSON file per request,
//     attachments beside it);
//   - request mail through notify.smtp (like incident notifications),
//     operators' copies to notify.from, links to the host of
//     notify.ack_url;
//   - site traffic and dashboard counts from detect/report's rollups;
//   - the purge button through the running WAF's cache;
//   - sessions in data_dir/console/sessions.json.
func (a *App) consoleExtras(cfg *config.Config, c *console.Config) error {
	dir := consoleDir(cfg)
	reqs, err := console.OpenRequests(console.RequestsConfig{Dir: filepath.Join(dir, "requests"), Location: c.Location})
	if err != nil {
		return err
	}
	c.Requests = reqs
	if cfg.Notify.SMTP != "" && cfg.Notify.From != "" {
		c.Mailer = &console.SMTPMailer{Addr: cfg.Notify.SMTP, From: cfg.Notify.From, FromName: "セキュリティクラウド SOC",
			RequireTLS: cfg.Notify.RequireTLS}
		c.OperatorMail = cfg.Notify.From
	}
	if u, err := url.Parse(cfg.Notify.AckURL); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
		c.BaseURL = u.Scheme + "://" + u.Host
	}
	rv := rollupView{a}
	c.SiteTraffic, c.Counter = rv, rv
	if cfg.Functions.Enabled("waf") && Built("waf") {
		c.Purger = wafPurger{a}
	}
	c.SessionsPath = filepath.Join(dir, console.SessionsFile)
	return nil
}

// rollupView reads detect/report's rollups for the console: site traffic
// per day and the dashboard's counts (the console has scoped the tenant).
type rollupView struct{ a *App }

// sections returns tenant's ("" = the whole cloud) report section of
// each JST month [from, to) overlaps, restricted to [from, to): the
// rollups are hourly, so any whole-hour range is exact.
func (v rollupView) sections(tenantID string, from, to time.Time, months map[int]*report.Month) ([]*report.Section, error) {
	det := v.a.events.det
	var out []*report.Section
	f := from.In(report.JST)
	for m := time.Date(f.Year(), f.Month(), 1, 0, 0, 0, 0, report.JST); m.Before(to); m = m.AddDate(0, 1, 0) {
		id := m.Year()*100 + int(m.Month())
		month := months[id]
		if month == nil {
			var err error
			if month, err = det.rollup.Month(m.Year(), m.Month()); err != nil {
				return nil, err
			}
			months[id] = month
		}
		part := *month
		if from.After(part.Start) {
			part.Start = from
		}
		if to.Before(part.End) {
			part.End = to
		}
		if !part.Start.Before(part.End) {
			continue
		}
		out = append(out, report.Build(&part, report.Options{Tenant: tenantID}).Cloud)
	}
	return out, nil
}

// SiteDays implements console.SiteTraffic.
func (v rollupView) SiteDays(tenantID string, days []time.Time) ([]console.SiteDay, error) {
	months := map[int]*report.Month{}
	var out []console.SiteDay
	for _, d := range days {
		secs, err := v.sections(tenantID, d, d.Add(24*time.Hour), months)
		if err != nil {
			return nil, err
		}
		sum := map[string]*console.SiteDay{}
		var order []string
		for _, s := range secs {
			for _, st := range s.Sites {
				r := sum[st.Site]
				if r == nil {
					r = &console.SiteDay{Site: st.Site, Day: d.Format("2006-01-02")}
					sum[st.Site] = r
					order = append(order, st.Site)
				}
				r.Requests += st.Requests
				r.Bytes += st.Bytes
				r.CacheHits += st.CacheHits
				r.Attacks += st.Attacks
			}
		}
		for _, site := range order {
			out = append(out, *sum[site])
		}
	}
	return out, nil
}

// Counts implements console.Counter.
func (v rollupView) Counts(tenantID string, from, to time.Time) (console.RollupCounts, error) {
	secs, err := v.sections(tenantID, from, to, map[int]*report.Month{})
	if err != nil {
		return console.RollupCounts{}, err
	}
	rc := console.RollupCounts{Events: map[string]int64{}}
	for _, s := range secs {
		for _, vol := range s.Volume {
			rc.Events[vol.Module] += vol.Events
		}
		for i, n := range s.BySeverity {
			rc.Detections[i] += n
		}
	}
	return rc, nil
}

// wafPurger purges the running WAF's CDN cache (the console checked that
// the host is one of the account's sites).
type wafPurger struct{ a *App }

var errNoCache = errors.New("the WAF is not running or its cache is disabled")

func (p wafPurger) Purge(u string) (int, error) {
	s := p.a.wafServer()
	if s == nil || s.Cache() == nil {
		return 0, errNoCache
	}
	return s.Cache().Purge(u), nil
}

func (p wafPurger) PurgePrefix(prefix string) (int, error) {
	s := p.a.wafServer()
	if s == nil || s.Cache() == nil {
		return 0, errNoCache
	}
	if !strings.Contains(prefix, "/") {
		return 0, errors.New("a prefix must hold the host and a path")
	}
	return s.Cache().PurgePrefix(prefix), nil
}
