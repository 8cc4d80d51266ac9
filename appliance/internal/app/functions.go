package app

import (
	"context"
	"sync"

	"github.com/jichitai/seccloud/appliance/config"
)

// service is a started security function.
type service interface {
	// Shutdown stops accepting, drains in-flight work and returns.
	Shutdown(ctx context.Context) error
}

// starter starts one security function from the configuration, sharing the
// App's tenant directory (a.live), event sink (a.events) and registry.
type starter func(ctx context.Context, a *App, cfg *config.Config) (service, error)

// starters maps each security function of config.FunctionNames to the code
// that starts it. nil means the function's package is not built yet: it is
// reported as "not built" and never started, and it does not hold
// readiness back. Each function's issue plugs its server in here.
var starters = map[string]starter{
	"proxy": startProxy,
	"dns":   startDNS,
	"mail":  startMail,
	"waf":   startWAF,
}

// function is one security function's slot in the wiring.
type function struct {
	name    string
	enabled bool
	startFn starter

	mu  sync.Mutex
	svc service
	err error
}

func newFunctions(cfg *config.Config) []*function {
	fs := make([]*function, 0, len(config.FunctionNames))
	for _, name := range config.FunctionNames {
		fs = append(fs, &function{name: name, enabled: cfg.Functions.Enabled(name), startFn: starters[name]})
	}
	return fs
}

// Status is "off", "not built", "up" or "failed: ...".
func (f *function) status() (status string, ready bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case !f.enabled:
		return "off", true
	case f.startFn == nil:
		return "not built", true
	case f.err != nil:
		return "failed: " + f.err.Error(), false
	case f.svc == nil:
		return "starting", false
	}
	return "up", true
}

func (f *function) start(ctx context.Context, a *App) {
	switch {
	case !f.enabled:
		a.log.Info("function switched off", "function", f.name)
		return
	case f.startFn == nil:
		a.log.Info("function not built yet; not started", "function", f.name)
		return
	}
	svc, err := f.startFn(ctx, a, a.cfg.Load())
	f.mu.Lock()
	f.svc, f.err = svc, err
	f.mu.Unlock()
	if err != nil {
		a.log.Error("function failed to start", "function", f.name, "err", err)
	}
}

// reload hands a new configuration to a running function that takes one.
func (f *function) reload(cfg *config.Config) {
	f.mu.Lock()
	svc := f.svc
	f.mu.Unlock()
	if r, ok := svc.(interface{ Reload(*config.Config) error }); ok {
		_ = r.Reload(cfg)
	}
}

func (f *function) stop(ctx context.Context) error {
	f.mu.Lock()
	svc := f.svc
	f.svc = nil
	f.mu.Unlock()
	if svc == nil {
		return nil
	}
	return svc.Shutdown(ctx)
}

// Built reports whether the named security function is built into this
// binary (has a starter).
func Built(name string) bool { return starters[name] != nil }
