package report

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
)

// Options selects and labels a monthly report.
type Options struct {
	// Tenant limits the report to one tenant; "" is the whole cloud plus a
	// section per tenant.
	Tenant string
	// TenantName gives a tenant's display name; nil shows ids.
	TenantName func(id string) string
	// Incidents are the incidents to report (e.g. incident.Manager.List or
	// incident.ReadJournal); those with any event or timeline entry in the
	// month are included.
	Incidents []incident.Incident
	// TopN is the number of signatures listed; zero means 10.
	TopN int
	// Now stamps the report; nil means time.Now.
	Now func() time.Time
}

// Monthly is a monthly report: the whole cloud (or one tenant) and one
// section per tenant.
type Monthly struct {
	// Month is "2026-11"; Start and End bound it (JST).
	Month      string
	Start, End time.Time
	Generated  time.Time
	// Cloud is the whole-cloud section (Tenant ""), or the tenant's section
	// when the report was asked for one tenant.
	Cloud *Section
	// Tenants are the per-tenant sections, by tenant id (empty for a
	// one-tenant report).
	Tenants []*Section
}

// Section is the report of the whole cloud or of one tenant.
type Section struct {
	Tenant, Name string
	// Detections is the number of detections (see [Detection]) in the month;
	// BySeverity splits it by level ([Level]).
	Detections int64
	BySeverity [4]int64
	// Daily is one row per JST day of the month, by level.
	Daily []Day
	// Top are the most frequent signatures, most first.
	Top []Signature
	// Volume is the event count and bytes per module.
	Volume []Volume
	// Incidents are the incidents of the month; IncidentsBySeverity counts
	// them by judged level.
	Incidents           []incident.Incident
	IncidentsBySeverity [4]int
	// Contacts are the notification, acknowledgement and deadline entries
	// of the month (contact history); Responses the state changes, notes and
	// assignments (response history); both in time order.
	Contacts, Responses []History
	// Breakout, Sites, Mail and Quarantine are the tenant's traffic (also
	// summed for the whole cloud).
	Breakout   []App
	Sites      []Site
	Mail       []Mail
	Quarantine []Reason
	// PerTenant is, in the whole-cloud section, one summary row per tenant.
	PerTenant []TenantRow

	name func(string) string
}

// TenantName returns the display name of a tenant id (the id when no name
// is known).
func (s *Section) TenantName(id string) string {
	if s.name == nil {
		return id
	}
	return s.name(id)
}

// Day is one JST day's detections by level.
type Day struct {
	Date       time.Time
	BySeverity [4]int64
}

// Total is the day's detections.
func (d Day) Total() int64 {
	return d.BySeverity[0] + d.BySeverity[1] + d.BySeverity[2] + d.BySeverity[3]
}

// Signature is one rule's detections.
type Signature struct {
	Rule, Name string
	Count      int64
	BySeverity [4]int64
}

// Volume is one module's events.
type Volume struct {
	Module        string
	Events, Bytes int64
}

// App is one SaaS application used over the breakout line.
type App struct {
	App                     string
	Requests, Bytes, Blocks int64
}

// Site is one public web site behind the WAF/CDN.
type Site struct {
	Site                                string
	Requests, Bytes, CacheHits, Attacks int64
}

// CacheHitRatio is CacheHits / Requests (0 when no requests).
func (s Site) CacheHitRatio() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.CacheHits) / float64(s.Requests)
}

// Mail is the mail volume of one direction.
type Mail struct {
	Direction                    string
	Messages, Quarantined, Bytes int64
}

// Reason is the quarantined mail of one reason.
type Reason struct {
	Reason string
	Count  int64
}

// TenantRow summarises one tenant in the whole-cloud section.
type TenantRow struct {
	Tenant, Name string
	Detections   int64
	BySeverity   [4]int64
	Incidents    int
}

// History is one timeline entry of an incident, for the contact and
// response histories.
type History struct {
	Incident, Tenant string
	incident.Entry
}

// ParseMonth parses "2026-11" into a year and month.
func ParseMonth(s string) (int, time.Month, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return 0, 0, fmt.Errorf("report: month %q: want YYYY-MM", s)
	}
	return t.Year(), t.Month(), nil
}

// Build makes the monthly report from a month's rollup rows and the
// incidents in opts.
func Build(m *Month, opts Options) *Monthly {
	if opts.TopN <= 0 {
		opts.TopN = 10
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	name := func(id string) string {
		if id == "" {
			return ""
		}
		if opts.TenantName != nil {
			if n := opts.TenantName(id); n != "" {
				return n
			}
		}
		return id
	}
	rep := &Monthly{Month: m.Start.Format("2006-01"), Start: m.Start, End: m.End, Generated: opts.Now().In(JST)}
	days := int(m.End.Sub(m.Start).Hours()+0.5) / 24
	firstHour, lastHour := hourOf(m.Start), hourOf(m.End)
	sections := map[string]*builder{}
	get := func(t string) *builder {
		b := sections[t]
		if b == nil {
			b = newBuilder(t, name(t), m.Start, days)
			sections[t] = b
		}
		return b
	}
	cloud := newBuilder(opts.Tenant, name(opts.Tenant), m.Start, days)
	for k, c := range m.rows {
		if k.hour < firstHour || k.hour >= lastHour {
			continue
		}
		if opts.Tenant != "" && k.tenant != opts.Tenant {
			continue
		}
		day := int(k.hour-firstHour) / 24
		cloud.add(k, c, day)
		if opts.Tenant == "" && k.tenant != "" {
			get(k.tenant).add(k, c, day)
		}
	}
	for _, inc := range opts.Incidents {
		if opts.Tenant != "" && inc.Tenant != opts.Tenant || !inMonth(&inc, m.Start, m.End) {
			continue
		}
		cloud.incident(&inc, m.Start, m.End)
		if opts.Tenant == "" && inc.Tenant != "" {
			get(inc.Tenant).incident(&inc, m.Start, m.End)
		}
	}
	for _, b := range sections {
		b.s.name = name
	}
	cloud.s.name = name
	rep.Cloud = cloud.finish(opts.TopN)
	ids := make([]string, 0, len(sections))
	for id := range sections {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		s := sections[id].finish(opts.TopN)
		rep.Tenants = append(rep.Tenants, s)
		rep.Cloud.PerTenant = append(rep.Cloud.PerTenant, TenantRow{Tenant: id, Name: s.Name,
			Detections: s.Detections, BySeverity: s.BySeverity, Incidents: len(s.Incidents)})
	}
	return rep
}

// inMonth reports whether an incident had events or timeline entries in
// [start, end).
func inMonth(inc *incident.Incident, start, end time.Time) bool {
	if !inc.First.IsZero() && inc.First.Before(end) && !inc.Last.Before(start) {
		return true
	}
	for _, e := range inc.Timeline {
		if !e.Time.Before(start) && e.Time.Before(end) {
			return true
		}
	}
	return false
}

type builder struct {
	s     *Section
	sigs  map[string]*Signature
	names map[string]map[string]int64
	vol   map[string]*Volume
	apps  map[string]*App
	sites map[string]*Site
	mail  map[string]*Mail
	quar  map[string]int64
}

func newBuilder(tenant, name string, start time.Time, days int) *builder {
	s := &Section{Tenant: tenant, Name: name, Daily: make([]Day, days)}
	for i := range s.Daily {
		s.Daily[i].Date = start.AddDate(0, 0, i)
	}
	return &builder{s: s, sigs: map[string]*Signature{}, names: map[string]map[string]int64{},
		vol: map[string]*Volume{}, apps: map[string]*App{}, sites: map[string]*Site{},
		mail: map[string]*Mail{}, quar: map[string]int64{}}
}

func (b *builder) add(k key, c *counters, day int) {
	switch k.kind {
	case kindVolume:
		v := b.vol[k.a]
		if v == nil {
			v = &Volume{Module: k.a}
			b.vol[k.a] = v
		}
		v.Events += c[0]
		v.Bytes += c[1]
	case kindDetect:
		b.s.Detections += c[0]
		b.s.BySeverity[k.sev] += c[0]
		if day >= 0 && day < len(b.s.Daily) {
			b.s.Daily[day].BySeverity[k.sev] += c[0]
		}
		sg := b.sigs[k.a]
		if sg == nil {
			sg = &Signature{Rule: k.a}
			b.sigs[k.a] = sg
			b.names[k.a] = map[string]int64{}
		}
		sg.Count += c[0]
		sg.BySeverity[k.sev] += c[0]
		if k.b != "" {
			b.names[k.a][k.b] += c[0]
		}
	case kindBreakout:
		a := b.apps[k.a]
		if a == nil {
			a = &App{App: k.a}
			b.apps[k.a] = a
		}
		a.Requests += c[0]
		a.Bytes += c[1]
		a.Blocks += c[2]
	case kindSite:
		s := b.sites[k.a]
		if s == nil {
			s = &Site{Site: k.a}
			b.sites[k.a] = s
		}
		s.Requests += c[0]
		s.Bytes += c[1]
		s.CacheHits += c[2]
		s.Attacks += c[3]
	case kindMail:
		ml := b.mail[k.a]
		if ml == nil {
			ml = &Mail{Direction: k.a}
			b.mail[k.a] = ml
		}
		ml.Messages += c[0]
		ml.Quarantined += c[1]
		ml.Bytes += c[2]
	case kindQuarantine:
		b.quar[k.a] += c[0]
	}
}

func (b *builder) incident(inc *incident.Incident, start, end time.Time) {
	c := *inc
	b.s.Incidents = append(b.s.Incidents, c)
	if c.Severity.Valid() {
		b.s.IncidentsBySeverity[c.Severity]++
	}
	for _, e := range inc.Timeline {
		if e.Time.Before(start) || !e.Time.Before(end) {
			continue
		}
		h := History{Incident: inc.ID, Tenant: inc.Tenant, Entry: e}
		switch e.Kind {
		case incident.KindNotify, incident.KindNotifyFailed, incident.KindAck, incident.KindAckRefused,
			incident.KindDeadlineMissed:
			b.s.Contacts = append(b.s.Contacts, h)
		case incident.KindState, incident.KindNote, incident.KindAssign:
			b.s.Responses = append(b.s.Responses, h)
		}
	}
}

func (b *builder) finish(topN int) *Section {
	s := b.s
	for rule, sg := range b.sigs {
		var best string
		var n int64
		for nm, c := range b.names[rule] {
			if c > n || c == n && nm < best {
				best, n = nm, c
			}
		}
		sg.Name = best
		s.Top = append(s.Top, *sg)
	}
	slices.SortFunc(s.Top, func(x, y Signature) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Rule, y.Rule))
	})
	if len(s.Top) > topN {
		s.Top = s.Top[:topN]
	}
	for _, v := range b.vol {
		s.Volume = append(s.Volume, *v)
	}
	slices.SortFunc(s.Volume, func(x, y Volume) int { return cmp.Compare(x.Module, y.Module) })
	for _, a := range b.apps {
		s.Breakout = append(s.Breakout, *a)
	}
	slices.SortFunc(s.Breakout, func(x, y App) int { return cmp.Or(cmp.Compare(y.Bytes, x.Bytes), cmp.Compare(x.App, y.App)) })
	for _, x := range b.sites {
		s.Sites = append(s.Sites, *x)
	}
	slices.SortFunc(s.Sites, func(x, y Site) int { return cmp.Compare(x.Site, y.Site) })
	for _, d := range []string{"inbound", "outbound", "internal", "unknown"} {
		if ml, ok := b.mail[d]; ok {
			s.Mail = append(s.Mail, *ml)
			delete(b.mail, d)
		}
	}
	for _, ml := range b.mail {
		s.Mail = append(s.Mail, *ml)
	}
	for r, c := range b.quar {
		s.Quarantine = append(s.Quarantine, Reason{Reason: r, Count: c})
	}
	slices.SortFunc(s.Quarantine, func(x, y Reason) int { return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Reason, y.Reason)) })
	slices.SortFunc(s.Contacts, func(x, y History) int { return x.Time.Compare(y.Time) })
	slices.SortFunc(s.Responses, func(x, y History) int { return x.Time.Compare(y.Time) })
	slices.SortFunc(s.Incidents, func(x, y incident.Incident) int {
		return cmp.Or(x.First.Compare(y.First), cmp.Compare(x.ID, y.ID))
	})
	return s
}

// severityLabel is the short Japanese label of a level.
func severityLabel(s detect.Severity) string {
	return fmt.Sprintf("危険度%d", uint8(s))
}
