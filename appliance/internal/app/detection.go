package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/beacon"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/ingest"
	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/detect/judge"
	"github.com/jichitai/seccloud/detect/notify"
	"github.com/jichitai/seccloud/detect/report"
	"github.com/jichitai/seccloud/detect/rules"
	"github.com/jichitai/seccloud/detect/vuln"
	"github.com/jichitai/seccloud/tenant"
)

// detection is the detect side of the event path, wired from the
// configuration:
//
//   - intel.*: one threat-intel set (detect/intel), swapped on reload;
//   - detect.rules_dir: the rule engine (detect/rules; empty = the embedded
//     default rules) behind its own detect.Async, so a slow rule or
//     incident write never blocks the functions;
//   - detect.incident_dir: the incident manager (detect/incident) with
//     judge.Default and each tenant's contacts as the escalation ladder;
//   - notify.*: the notifier (detect/notify) mailing through notify.smtp,
//     its acknowledgement handler served by the console at notify.ack_url's
//     path;
//   - the report rollups (detect/report) in DataDir/rollups, counted in the
//     same queue just before the rules, and the beaconing detector
//     (detect/beacon) just after them;
//   - detect.assets + detect.vuln_feed: the vulnerability lookup of the
//     judge (detect/vuln);
//   - detect.ingest.*: external events (detect/ingest) from syslog
//     listeners and Suricata EVE, emitted to out.
type detection struct {
	intel   *intel.Live
	engine  *rules.Engine
	beacon  *beacon.Detector
	rollup  *report.Rollup
	async   *detect.Async // in front of rollup + engine + beacon
	ingest  *ingest.Ingester
	inputs  []func(context.Context) error // ingest inputs, run by start
	closers []io.Closer                   // their listeners, closed if start never runs
	inAddrs map[string]string             // bound ingest addresses by config key
	// out is where ingested external events go: the pipeline's whole sink
	// when the pipeline sets it, else the rules queue.
	out       detect.Sink
	incidents *incident.Manager
	notifier  *notify.Notifier
	ackPath   string

	cancel context.CancelFunc
	done   chan error
	// inCancel stops the ingest inputs; inDone gets their results.
	inCancel context.CancelFunc
	inDone   chan error
}

// loadDetect reads the intel files and rules the configuration names. Any
// problem is returned and nothing is loaded, so a reload keeps what runs.
func loadDetect(cfg *config.Config) (*intel.Set, *rules.Set, error) {
	paths := func(ps []string) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = cfg.Path(p)
		}
		return out
	}
	set, err := intel.Load(intel.Files{
		Domains: paths(cfg.Intel.Domains), Addrs: paths(cfg.Intel.Addrs), URLs: paths(cfg.Intel.URLs),
		Hashes: paths(cfg.Intel.Hashes), STIX: paths(cfg.Intel.STIX),
	}, time.Now())
	if err != nil {
		return nil, nil, err
	}
	var rs *rules.Set
	if cfg.Detect.RulesDir == "" {
		rs, err = rules.Default()
	} else {
		rs, err = rules.ParseFiles(cfg.Path(cfg.Detect.RulesDir))
	}
	if err != nil {
		return nil, nil, err
	}
	return set, rs, nil
}

// openDetection opens the incident journal and builds the engine and the
// notifier; start runs the notifier. consoleAddr is the bound console
// address, for the default ack URL.
func openDetection(cfg *config.Config, live *tenant.Live, log *slog.Logger, consoleAddr string) (*detection, error) {
	iset, rset, err := loadDetect(cfg)
	if err != nil {
		return nil, err
	}
	key, err := notifyKey(cfg.NotifyKeyFile(), cfg.Notify.KeyFile == "")
	if err != nil {
		return nil, err
	}
	ackURL := cfg.Notify.AckURL
	if ackURL == "" {
		ackURL = "http://" + consoleAddr + "/ack"
		log.Warn("notify.ack_url is empty: acknowledgement links point at the console address", "ack_url", ackURL)
	}
	u, err := url.Parse(ackURL)
	if err != nil {
		return nil, fmt.Errorf("notify.ack_url: %w", err)
	}
	d := &detection{intel: intel.NewLive(iset), ackPath: u.Path}
	switch p := d.ackPath; {
	case p == "" || p == "/" || p == "/healthz" || p == "/readyz" || p == "/metrics" ||
		strings.HasPrefix(p, "/-/") || strings.HasPrefix(p, "/api/"):
		return nil, fmt.Errorf("notify.ack_url: path %q is taken by the console; use e.g. /ack", p)
	}
	lookup := func(id string) (*tenant.Tenant, bool) { return live.Load().ByID(id) }
	jd := &judge.Default{}
	if cfg.Detect.Assets != "" || cfg.Detect.VulnFeed != "" {
		if cfg.Detect.Assets == "" {
			return nil, errors.New("detect.vuln_feed needs detect.assets (the inventory to check)")
		}
		inv, err := vuln.LoadInventory(cfg.Path(cfg.Detect.Assets))
		if err != nil {
			return nil, fmt.Errorf("detect.assets: %w", err)
		}
		var feed *vuln.Feed
		if cfg.Detect.VulnFeed != "" {
			if feed, err = vuln.LoadFeed(cfg.Path(cfg.Detect.VulnFeed)); err != nil {
				return nil, fmt.Errorf("detect.vuln_feed: %w", err)
			}
		}
		jd.Vuln = vuln.New(inv, feed)
	}
	d.incidents, err = incident.Open(incident.Config{
		Dir:    cfg.IncidentDir(),
		Judge:  jd,
		Ladder: notify.LadderFunc(lookup, []time.Duration{time.Duration(cfg.Notify.EscalationDelay)}, notify.DefaultDeadline),
		// The notifier is built after the manager it watches.
		Waker:  notify.WakerFunc(func() { d.wake() }),
		Logger: log.With("component", "incidents"),
	})
	if err != nil {
		return nil, err
	}
	// Fold the journal's count updates and entries into one record per
	// incident, so it does not grow with every update across restarts.
	if err := d.incidents.Compact(); err != nil {
		log.Warn("incident journal not compacted", "err", err)
	}
	var email notify.Sender
	if cfg.Notify.SMTP != "" {
		email = &notify.Email{Addr: cfg.Notify.SMTP, From: cfg.Notify.From, RequireTLS: cfg.Notify.RequireTLS}
	}
	nlog := log.With("component", "notify")
	d.notifier, err = notify.New(notify.Config{
		Incidents: d.incidents, Key: key, AckURL: ackURL, Email: email,
		TenantName: func(id string) string {
			if t, ok := lookup(id); ok {
				return t.Name
			}
			return id
		},
		OnOverdue: func(inc incident.Incident) {
			nlog.Error("serious incident not acknowledged within the deadline: phone the contacts",
				"incident", inc.ID, "tenant", inc.Tenant, "rule", inc.Rule)
		},
		Logger: nlog,
	})
	if err != nil {
		return nil, errors.Join(err, d.incidents.Close())
	}
	if cfg.Detect.Lateness < 0 {
		return nil, errors.Join(errors.New("detect.lateness must not be negative"), d.incidents.Close())
	}
	d.engine = rules.New(rules.Config{Rules: rset, Handler: d.incidents, Intel: d.intel,
		Lateness: time.Duration(cfg.Detect.Lateness), Logger: log.With("component", "rules")})
	d.rollup, err = report.Open(report.Config{Dir: cfg.RollupDir(), Logger: log.With("component", "rollups")})
	if err != nil {
		return nil, errors.Join(err, d.incidents.Close())
	}
	d.beacon = beacon.New(beacon.Config{Handler: d.incidents})
	d.async, err = detect.NewAsync(detect.AsyncConfig{Writer: d.writer(), Logger: log.With("component", "rules-queue")})
	if err != nil {
		return nil, errors.Join(err, d.rollup.Close(), d.incidents.Close())
	}
	d.out = d.async
	if err := d.openIngest(cfg, live, log.With("component", "ingest")); err != nil {
		return nil, errors.Join(err, d.async.Close(context.Background()), d.rollup.Close(), d.incidents.Close())
	}
	log.Info("detection ready", "rules", rset.Len(), "intel", iset.Len(), "incidents", cfg.IncidentDir(),
		"ack_url", ackURL, "smtp", cfg.Notify.SMTP)
	return d, nil
}

func (d *detection) wake() {
	if d.notifier != nil {
		d.notifier.Wake()
	}
}

// start runs the notifier and the ingest inputs until stop.
func (d *detection) start() {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan error, 1)
	go func() { d.done <- d.notifier.Run(ctx) }()
	ictx, icancel := context.WithCancel(context.Background())
	d.inCancel, d.inDone = icancel, make(chan error, len(d.inputs))
	for _, run := range d.inputs {
		go func() { d.inDone <- run(ictx) }()
	}
	d.closers = nil // the inputs close their listeners when ictx ends
}

// openIngest binds the configured external-event inputs (so a bad address
// fails the start) and prepares their loops for start.
func (d *detection) openIngest(cfg *config.Config, live *tenant.Live, log *slog.Logger) error {
	ic := cfg.Detect.Ingest
	if ic.SyslogUDP == "" && ic.SyslogTCP == "" && ic.EVEFile == "" && ic.EVESocket == "" {
		return nil
	}
	var err error
	d.inAddrs = map[string]string{}
	d.ingest, err = ingest.New(ingest.Config{
		Sink: detect.SinkFunc(func(e detect.Event) { d.out.Emit(e) }),
		Tenant: func(src, dst netip.Addr) string {
			snap := live.Load()
			for _, a := range []netip.Addr{src, dst} {
				if t, ok := snap.ByAddr(a); ok && a.IsValid() {
					return t.ID
				}
			}
			return ""
		},
		Logger: log,
	})
	if err != nil {
		return err
	}
	fail := func(key string, err error) error {
		for _, c := range d.closers {
			c.Close()
		}
		d.closers = nil
		return fmt.Errorf("detect.ingest.%s: %w", key, err)
	}
	if ic.SyslogUDP != "" {
		pc, err := net.ListenPacket("udp", ic.SyslogUDP)
		if err != nil {
			return fail("syslog_udp", err)
		}
		d.closers = append(d.closers, pc)
		d.inAddrs["syslog_udp"] = pc.LocalAddr().String()
		d.inputs = append(d.inputs, func(ctx context.Context) error { return ignoreCanceled(d.ingest.ServeSyslogUDP(ctx, pc)) })
	}
	if ic.SyslogTCP != "" {
		ln, err := net.Listen("tcp", ic.SyslogTCP)
		if err != nil {
			return fail("syslog_tcp", err)
		}
		d.closers = append(d.closers, ln)
		d.inAddrs["syslog_tcp"] = ln.Addr().String()
		d.inputs = append(d.inputs, func(ctx context.Context) error { return ignoreCanceled(d.ingest.ServeSyslogTCP(ctx, ln)) })
	}
	if ic.EVESocket != "" {
		path := cfg.Path(ic.EVESocket)
		_ = os.Remove(path) // a socket left by a previous run
		ln, err := net.Listen("unix", path)
		if err != nil {
			return fail("eve_socket", err)
		}
		d.closers = append(d.closers, ln)
		d.inputs = append(d.inputs, func(ctx context.Context) error { return ignoreCanceled(d.ingest.ServeEVE(ctx, ln)) })
	}
	if ic.EVEFile != "" {
		path := cfg.Path(ic.EVEFile)
		d.inputs = append(d.inputs, func(ctx context.Context) error {
			return ignoreCanceled(d.ingest.TailEVE(ctx, path, ingest.TailOptions{}))
		})
	}
	log.Info("external event inputs ready", "syslog_udp", d.inAddrs["syslog_udp"], "syslog_tcp", d.inAddrs["syslog_tcp"],
		"eve_file", ic.EVEFile, "eve_socket", ic.EVESocket)
	return nil
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// apply swaps in a reloaded intel set and rule set.
func (d *detection) apply(iset *intel.Set, rset *rules.Set) {
	d.intel.Store(iset)
	d.engine.SetRules(rset)
}

// ready reports the incident journal's health.
func (d *detection) ready() (string, bool) {
	if err := d.incidents.Err(); err != nil {
		return "journal failing: " + err.Error(), false
	}
	return "up", true
}

// close stops the ingest inputs, drains the rule queue into the incidents,
// stops the notifier, then closes the journal. The caller has stopped every
// other emitter first.
func (d *detection) close(ctx context.Context) error {
	var err error
	for _, c := range d.closers {
		err = errors.Join(err, c.Close())
	}
	if d.inCancel != nil {
		d.inCancel()
		for range d.inputs {
			err = errors.Join(err, <-d.inDone)
		}
	}
	err = errors.Join(err, d.async.Close(ctx))
	if d.cancel != nil {
		d.cancel()
		if rerr := <-d.done; rerr != nil && !errors.Is(rerr, context.Canceled) {
			err = errors.Join(err, rerr)
		}
	}
	return errors.Join(err, d.rollup.Close(), d.incidents.Close())
}

// writer is the detection side as one BatchWriter: report rollups, then
// rules, then the beaconing detector. Whatever feeds events to detection
// (the rules queue, a cluster detector node's stream reader) should write
// to it rather than to the engine alone, or the reports and beaconing miss
// those events.
func (d *detection) writer() detect.BatchWriter { return rollupThenRules{d.rollup, d.engine, d.beacon} }

// rollupThenRules counts a batch in the report rollups, then runs it
// through the rules and the beaconing detector. A failed rollup write fails
// the batch before the rules see it (the Async retries it whole, so no
// alert is raised twice); the rules and the detector never fail.
type rollupThenRules struct {
	rollup *report.Rollup
	rules  *rules.Engine
	beacon *beacon.Detector
}

func (w rollupThenRules) WriteEvents(ctx context.Context, evs []detect.Event) error {
	if err := w.rollup.WriteEvents(ctx, evs); err != nil {
		return err
	}
	_ = w.rules.WriteEvents(ctx, evs)
	return w.beacon.WriteEvents(ctx, evs)
}

// notifyKey reads the HMAC key of acknowledgement links from path; when
// create is set and the file does not exist, it writes 32 random bytes
// there first (mode 0600).
func notifyKey(path string, create bool) ([]byte, error) {
	return secretKey(path, create, "notify.key_file", notify.MinKeyLen)
}

// secretKey reads a secret key file (config key name, at least minLen
// bytes) from path; when create is set and the file does not exist, it
// writes 32 random bytes there first (mode 0600, directory 0750) and
// returns them, so the key survives restarts.
func secretKey(path string, create bool, name string, minLen int) ([]byte, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		_, werr := f.Write(key)
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(key) < minLen {
		return nil, fmt.Errorf("%s: %s: key too short (%d bytes, want at least %d)", name, path, len(key), minLen)
	}
	return key, nil
}

// intel returns the shared threat-intelligence set every function reads
// (an empty one when detection is not attached).
func (a *App) intel() *intel.Live {
	if a.events != nil && a.events.det != nil {
		return a.events.det.intel
	}
	return &intel.Live{}
}

// reportAPI is GET /api/reports/monthly?month=2026-11[&tenant=ID][&format=html|csv]:
// the monthly report (detect/report) from the live rollups and incidents;
// 403 for a client that is not on a loopback address, 400 for a bad month
// or format.
func (a *App) reportAPI(w http.ResponseWriter, r *http.Request) {
	if !fromLoopback(r) {
		http.Error(w, "the report API is allowed from loopback addresses only", http.StatusForbidden)
		return
	}
	q := r.URL.Query()
	format := q.Get("format")
	if format == "" {
		format = "html"
	}
	if format != "html" && format != "csv" {
		http.Error(w, "format: want html or csv", http.StatusBadRequest)
		return
	}
	y, mo, err := report.ParseMonth(q.Get("month"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	det := a.events.det
	m, err := det.rollup.Month(y, mo)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	snap := a.live.Load()
	rep := report.Build(m, report.Options{Tenant: q.Get("tenant"), Incidents: det.incidents.List(incident.Filter{}),
		TenantName: func(id string) string {
			if t, ok := snap.ByID(id); ok {
				return t.Name
			}
			return ""
		}})
	w.Header().Set("Cache-Control", "no-store")
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=\"report-%s.csv\"", rep.Month))
		_ = report.WriteCSV(w, rep)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = report.WriteHTML(w, rep)
}

// Report writes the monthly report of month ("2026-11") for one tenant (or
// the whole cloud when tenant is "") as html or csv, reading the rollups and
// the incident journal of the data directory without writing to them (safe
// beside a running appliance).
func (ad *Admin) Report(month, tenant, format string) error {
	cfg, err := ad.config()
	if err != nil {
		return err
	}
	y, mo, err := report.ParseMonth(month)
	if err != nil {
		return err
	}
	if format != "html" && format != "csv" {
		return fmt.Errorf("format %q: want html or csv", format)
	}
	if _, err := os.Stat(cfg.RollupDir()); err != nil {
		return fmt.Errorf("no report rollups at %s (has the appliance run with this config?)", cfg.RollupDir())
	}
	r, err := report.Open(report.Config{Dir: cfg.RollupDir(), ReadOnly: true})
	if err != nil {
		return err
	}
	m, err := r.Month(y, mo)
	if err != nil {
		return err
	}
	incs, err := incident.ReadJournal(cfg.IncidentDir())
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, t := range cfg.Tenants {
		names[t.ID] = t.Name
	}
	rep := report.Build(m, report.Options{Tenant: tenant, Incidents: incs, TenantName: func(id string) string { return names[id] }})
	if format == "csv" {
		return report.WriteCSV(ad.Out, rep)
	}
	return report.WriteHTML(ad.Out, rep)
}
