package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/detect/judge"
	"github.com/jichitai/seccloud/detect/notify"
	"github.com/jichitai/seccloud/detect/rules"
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
//     path.
type detection struct {
	intel     *intel.Live
	engine    *rules.Engine
	async     *detect.Async // in front of engine
	incidents *incident.Manager
	notifier  *notify.Notifier
	ackPath   string

	cancel context.CancelFunc
	done   chan error
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
	d.incidents, err = incident.Open(incident.Config{
		Dir:    cfg.IncidentDir(),
		Judge:  &judge.Default{},
		Ladder: notify.LadderFunc(lookup, []time.Duration{time.Duration(cfg.Notify.EscalationDelay)}, notify.DefaultDeadline),
		// The notifier is built after the manager it watches.
		Waker:  notify.WakerFunc(func() { d.wake() }),
		Logger: log.With("component", "incidents"),
	})
	if err != nil {
		return nil, err
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
	d.engine = rules.New(rules.Config{Rules: rset, Handler: d.incidents, Intel: d.intel,
		Logger: log.With("component", "rules")})
	d.async, err = detect.NewAsync(detect.AsyncConfig{Writer: d.engine, Logger: log.With("component", "rules-queue")})
	if err != nil {
		return nil, errors.Join(err, d.incidents.Close())
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

// start runs the notifier until stop.
func (d *detection) start() {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan error, 1)
	go func() { d.done <- d.notifier.Run(ctx) }()
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

// close drains the rule queue into the incidents, stops the notifier, then
// closes the journal. The caller has stopped every emitter first.
func (d *detection) close(ctx context.Context) error {
	err := d.async.Close(ctx)
	if d.cancel != nil {
		d.cancel()
		if rerr := <-d.done; rerr != nil && !errors.Is(rerr, context.Canceled) {
			err = errors.Join(err, rerr)
		}
	}
	return errors.Join(err, d.incidents.Close())
}

// notifyKey reads the HMAC key of acknowledgement links from path; when
// create is set and the file does not exist, it writes 32 random bytes
// there first (mode 0600).
func notifyKey(path string, create bool) ([]byte, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("notify key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("notify key: %w", err)
		}
		_, werr := f.Write(key)
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("notify key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("notify.key_file: %w", err)
	}
	if len(key) < notify.MinKeyLen {
		return nil, fmt.Errorf("notify.key_file: %s: key too short (%d bytes, want at least %d)", path, len(key), notify.MinKeyLen)
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
