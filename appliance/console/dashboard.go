package console

import (
	"net/http"
	"sort"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/store"
)

// CountRow is one function's events of a period, per severity.
type CountRow struct {
	Module  string `json:"module"`
	BySev   [4]int `json:"by_severity"`
	Stopped int    `json:"stopped"` // blocked, quarantined, sinkholed, dropped, deleted, deferred
	Total   int    `json:"total"`
}

// Counts are a period's event counts.
type Counts struct {
	Label string     `json:"period"` // "today" or "month"
	From  string     `json:"from"`   // start of the period, YYYY-MM-DD in the console's zone
	Rows  []CountRow `json:"rows"`
	// Source is "rollup" (Config.Counter: rows carry only Total, and
	// Detections the detections per severity of all functions) or
	// "store" (every event read: rows carry severities and Stopped).
	Source     string   `json:"source"`
	Detections [4]int64 `json:"detections_by_severity"`
}

// RollupCounts are the events of a period as rollups keep them.
type RollupCounts struct {
	// Events is the number of events per function (module).
	Events map[string]int64
	// Detections are the detections per severity (detect/report's
	// Detection and Level), all functions together.
	Detections [4]int64
}

// Counter gives the dashboard's counts from rollups kept at ingest (the
// appliance wires detect/report), so a dashboard costs the same whatever
// the month's volume. Implementations must be safe for concurrent use.
type Counter interface {
	// Counts returns the counts of tenant ("" = every tenant) over
	// [from, to). Rollups are hourly: from and to are whole hours.
	Counts(tenant string, from, to time.Time) (RollupCounts, error)
}

// countsTTL is how long the dashboard's counts are reused: counting a
// month reads every event of the month from the store, so each scope
// (one tenant, or all for operators) counts at most once a minute.
const countsTTL = time.Minute

type countsCache struct {
	at, day time.Time
	counts  []Counts
}

// Dashboard is what the dashboard shows.
type Dashboard struct {
	Open     []incident.Incident `json:"open_incidents"`
	Counts   []Counts            `json:"counts"`
	Health   []Component         `json:"health"`
	NoEvents bool                `json:"no_event_store,omitempty"`
	Sevs     []detect.Severity   `json:"-"`
}

// dashboard builds the dashboard of a scope: open incidents, this month's
// and today's counts per function and severity (one pass over the month's
// events in the store), and the health of each component.
func (c *Console) dashboard(r *http.Request, s *scope) (*Dashboard, error) {
	open, err := s.queryIncidents(incidentQuery{Active: true})
	if err != nil {
		return nil, err
	}
	d := &Dashboard{Open: open, Sevs: allSevs, NoEvents: c.cfg.Events == nil}
	if c.cfg.Health != nil {
		d.Health = c.cfg.Health()
	}
	if c.cfg.Events == nil && c.cfg.Counter == nil {
		return d, nil
	}
	d.NoEvents = false
	now := c.cfg.Now().In(c.cfg.Location)
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, c.cfg.Location)
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, c.cfg.Location)
	key := s.ownTenant()
	if s.operator() {
		key = "*"
	}
	c.mu.Lock()
	cached, ok := c.counts[key]
	c.mu.Unlock()
	if ok && now.Sub(cached.at) < countsTTL && cached.day.Equal(day) {
		d.Counts = cached.counts
		return d, nil
	}
	if c.cfg.Counter != nil {
		if d.Counts, err = c.rollupCounts(s, day, month); err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.counts[key] = countsCache{at: now, day: day, counts: d.Counts}
		c.mu.Unlock()
		return d, nil
	}
	today, mon := map[string]*CountRow{}, map[string]*CountRow{}
	add := func(m map[string]*CountRow, e *detect.Event) {
		row := m[e.Module]
		if row == nil {
			row = &CountRow{Module: e.Module}
			m[e.Module] = row
		}
		if e.Severity <= 3 {
			row.BySev[e.Severity]++
		}
		if e.Verdict.Action.Stopped() {
			row.Stopped++
		}
		row.Total++
	}
	_, _, err = s.events(r.Context(), eventQuery{Filter: store.Filter{Since: month}, Limit: 1, countOnly: func(e *detect.Event) {
		add(mon, e)
		if !e.Time.Before(day) {
			add(today, e)
		}
	}})
	if err != nil {
		return nil, err
	}
	rows := func(m map[string]*CountRow) []CountRow {
		out := make([]CountRow, 0, len(m))
		for _, r := range m {
			out = append(out, *r)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Module < out[j].Module })
		return out
	}
	d.Counts = []Counts{{Label: "today", From: day.Format("2006-01-02"), Rows: rows(today), Source: "store"},
		{Label: "month", From: month.Format("2006-01-02"), Rows: rows(mon), Source: "store"}}
	for i := range d.Counts {
		for _, r := range d.Counts[i].Rows {
			for sev, n := range r.BySev {
				d.Counts[i].Detections[sev] += int64(n)
			}
		}
	}
	c.mu.Lock()
	c.counts[key] = countsCache{at: now, day: day, counts: d.Counts}
	c.mu.Unlock()
	return d, nil
}

// rollupCounts counts today and this month from Config.Counter, within
// the scope (a tenant account's own tenant only).
func (c *Console) rollupCounts(s *scope, day, month time.Time) ([]Counts, error) {
	t, err := s.tenantFilter("dashboard", "")
	if err != nil {
		return nil, err
	}
	end := day.AddDate(0, 0, 1)
	var out []Counts
	for _, p := range []struct {
		label    string
		from, to time.Time
	}{{"today", day, end}, {"month", month, end}} {
		rc, err := c.cfg.Counter.Counts(t, p.from, p.to)
		if err != nil {
			return nil, err
		}
		cs := Counts{Label: p.label, From: p.from.Format("2006-01-02"), Source: "rollup", Detections: rc.Detections, Rows: []CountRow{}}
		for m, n := range rc.Events {
			cs.Rows = append(cs.Rows, CountRow{Module: m, Total: int(n)})
		}
		sort.Slice(cs.Rows, func(i, j int) bool { return cs.Rows[i].Module < cs.Rows[j].Module })
		out = append(out, cs)
	}
	return out, nil
}
