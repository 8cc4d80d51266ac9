package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/tenant"
)

// ErrNoConfigFile is returned by Reload when the appliance runs the embedded
// demo configuration, which has no file to re-read.
var ErrNoConfigFile = errors.New("running the embedded demo config: no file to reload (start with -config FILE)")

// ReloadResult is what a reload did; it is also the reload API's JSON body.
type ReloadResult struct {
	// OK is true when the new configuration is in force.
	OK bool `json:"ok"`
	// Generation is the config generation in force afterwards, and
	// Created whether the reload made a new one (false when the file was
	// unchanged or the reload failed).
	Generation int  `json:"generation"`
	Created    bool `json:"created"`
	// Tenants is the number of tenants in force afterwards.
	Tenants int `json:"tenants"`
	// Errors lists every problem of a refused configuration, with
	// file:line:col.
	Errors []string `json:"errors,omitempty"`
	// Notes lists changes that take effect only after a restart.
	Notes []string `json:"notes,omitempty"`
}

// Reload re-reads the config file and validates it. On any error the
// running configuration stays in force and every problem is logged and
// returned in the result. On success the new configuration is committed as
// a config generation, then the tenant snapshot and log level are swapped
// atomically; requests in flight keep the snapshot they started with.
// source ("signal", "api") is recorded in the generation's note.
func (a *App) Reload(source string) (ReloadResult, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	old := a.cfg.Load()
	res := ReloadResult{Tenants: len(old.Tenants)}
	if g, ok, err := a.hist.Latest(); err == nil && ok {
		res.Generation = g.N
	}
	fail := func(err error) (ReloadResult, error) {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				res.Errors = append(res.Errors, e.Error())
				a.log.Error("config refused", "source", source, "error", e.Error())
			}
		} else if multi, ok := err.(interface{ Unwrap() []error }); ok {
			// intel and rule files: one entry per file:line problem
			for _, e := range multi.Unwrap() {
				res.Errors = append(res.Errors, e.Error())
			}
			a.log.Error("config reload failed", "source", source, "err", err)
		} else {
			res.Errors = []string{err.Error()}
			a.log.Error("config reload failed", "source", source, "err", err)
		}
		a.log.Warn("keeping the running config", "generation", res.Generation, "errors", len(res.Errors))
		a.audit("config_reload", "failure", fmt.Sprintf("reload (%s) refused: %d errors", source, len(res.Errors)), tenantGen(res.Generation))
		a.flushEvents()
		a.metrics.reloads.WithLabelValues("failure").Inc()
		return res, err
	}
	if a.opts.ConfigPath == "" {
		return fail(ErrNoConfigFile)
	}
	cfg, err := config.Load(a.opts.ConfigPath)
	if err != nil {
		return fail(err)
	}
	iset, rset, err := loadDetect(cfg)
	if err != nil {
		return fail(err)
	}
	gen, created, err := a.hist.Commit(cfg.Raw(), "reload ("+source+")")
	if err != nil {
		return fail(fmt.Errorf("config history: %w", err))
	}
	a.live.Store(cfg.Directory())
	a.cfg.Store(cfg)
	a.level.Set(parseLevel(cfg.Log.Level))
	a.events.det.apply(iset, rset)
	for _, f := range a.funcs {
		f.reload(cfg)
	}
	res = ReloadResult{OK: true, Generation: gen.N, Created: created, Tenants: len(cfg.Tenants), Notes: restartNotes(old, cfg)}
	for _, n := range res.Notes {
		a.log.Warn("config change needs a restart", "change", n)
	}
	a.log.Info("config reloaded", "source", source, "generation", gen.N, "new_generation", created, "tenants", len(cfg.Tenants))
	a.audit("config_reload", "success", fmt.Sprintf("reload (%s) applied generation %d", source, gen.N), gen)
	a.flushEvents()
	a.metrics.reloads.WithLabelValues("success").Inc()
	a.metrics.generation.Set(float64(gen.N))
	a.metrics.lastReload.SetToCurrentTime()
	return res, nil
}

// flushEvents makes the audit events emitted so far durable, so that a
// reload answered (or counted in the metrics) has its record stored.
func (a *App) flushEvents() {
	if err := a.events.flush(context.Background(), 5*time.Second); err != nil {
		a.log.Warn("audit events not yet stored", "err", err)
	}
}

// restartNotes lists the changed keys a reload cannot apply.
func restartNotes(old, cfg *config.Config) []string {
	var notes []string
	note := func(changed bool, key string) {
		if changed {
			notes = append(notes, key+" changed: takes effect at the next restart")
		}
	}
	note(old.DataDir != cfg.DataDir, "data_dir")
	note(old.Listen != cfg.Listen, "listen")
	note(old.Log.Format != cfg.Log.Format, "log.format")
	note(old.History != cfg.History, "history")
	note(old.Store != cfg.Store, "store")
	note(old.IncidentDir() != cfg.IncidentDir(), "detect.incident_dir")
	note(old.Notify != cfg.Notify, "notify")
	note(old.Cluster.Redis != cfg.Cluster.Redis, "cluster.redis")
	for _, name := range config.FunctionNames {
		note(old.Functions.Enabled(name) != cfg.Functions.Enabled(name), "functions."+name)
	}
	return notes
}

func tenantGen(n int) tenant.Generation { return tenant.Generation{N: n} }
