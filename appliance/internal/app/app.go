// Package app wires the appliance: it reads the configuration and connects
// the library packages (tenant, detect, the security functions) behind one
// console listener. It holds no security logic of its own.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/appliance/console"
	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
)

// Options configure New.
type Options struct {
	// ConfigPath is the config file; "" runs the embedded demo config
	// (which cannot be reloaded).
	ConfigPath string
	// Log receives the appliance's log; nil means os.Stderr.
	Log io.Writer
	// Version is reported in seccloud_build_info.
	Version string
}

// App is a running appliance. Create it with New, then Run it.
type App struct {
	opts     Options
	cfg      atomic.Pointer[config.Config]
	live     *tenant.Live
	hist     *tenant.History
	level    *slog.LevelVar
	log      *slog.Logger
	reg      *prometheus.Registry
	metrics  *metrics
	events   *pipeline
	funcs    []*function
	ln       net.Listener
	console  *http.Server
	reloadMu sync.Mutex // one reload at a time
	serving  atomic.Bool
	web      *console.Console
	webAudit *console.Audit
	limits   *sharedLimits // cluster.redis; nil = limits in memory (sharedlimits.go)
}

// New loads the configuration, records it as a config generation, opens the
// event pipeline and binds the console listener. Configuration problems are
// returned as config.Errors.
func New(opts Options) (*App, error) {
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	cfg, err := loadConfig(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	if opts.ConfigPath != "" {
		if abs, err := filepath.Abs(opts.ConfigPath); err == nil {
			opts.ConfigPath = abs
		}
	}
	a := &App{opts: opts, level: new(slog.LevelVar), live: tenant.NewLive(cfg.Directory())}
	a.cfg.Store(cfg)
	a.level.Set(parseLevel(cfg.Log.Level))
	hopts := &slog.HandlerOptions{Level: a.level}
	if cfg.Log.Format == "json" {
		a.log = slog.New(slog.NewJSONHandler(opts.Log, hopts))
	} else {
		a.log = slog.New(slog.NewTextHandler(opts.Log, hopts))
	}
	if err := os.MkdirAll(cfg.Path(cfg.DataDir), 0o750); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	a.hist, err = tenant.OpenHistory(tenant.HistoryConfig{Dir: cfg.HistoryDir(), Keep: cfg.History.Keep})
	if err != nil {
		return nil, err
	}
	gen, created, err := a.hist.Commit(cfg.Raw(), "startup")
	if err != nil {
		return nil, err
	}
	a.reg = prometheus.NewRegistry()
	a.metrics = newMetrics(a.reg, a, opts.Version)
	a.metrics.generation.Set(float64(gen.N))
	if a.events, err = openPipeline(cfg, a.log, a.reg); err != nil {
		return nil, err
	}
	a.funcs = newFunctions(cfg)
	if a.limits, err = openSharedLimits(cfg, a.log); err != nil {
		a.events.close(context.Background())
		return nil, err
	}
	if a.ln, err = net.Listen("tcp", cfg.Listen.Console); err != nil {
		a.events.close(context.Background())
		return nil, fmt.Errorf("listen.console: %w", err)
	}
	det, err := openDetection(cfg, a.live, a.log, a.ln.Addr().String())
	if err != nil {
		a.ln.Close()
		return nil, errors.Join(err, a.events.close(context.Background()))
	}
	a.events.attach(det)
	if a.webAudit, err = a.openConsole(cfg); err != nil {
		a.ln.Close()
		return nil, errors.Join(fmt.Errorf("console: %w", err), a.events.close(context.Background()))
	}
	a.console = &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	a.log.Info("config loaded", "config", cfg.File(), "tenants", len(cfg.Tenants),
		"generation", gen.N, "new_generation", created, "data_dir", cfg.Path(cfg.DataDir))
	a.audit("config_load", "success", fmt.Sprintf("startup with generation %d", gen.N), gen)
	return a, nil
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.LoadDemo()
	}
	return config.Load(path)
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s)) // validated by config
	return l
}

// ConsoleAddr returns the address the console listens on.
func (a *App) ConsoleAddr() string { return a.ln.Addr().String() }

// Logger returns the appliance's logger.
func (a *App) Logger() *slog.Logger { return a.log }

// Run serves until ctx is done, then shuts down gracefully within
// shutdownTimeout: the console and function listeners stop accepting and
// drain, the event queues flush into the store and the rules, the notifier
// stops, the incident journal and the store close.
func (a *App) Run(ctx context.Context, shutdownTimeout time.Duration) error {
	cfg := a.cfg.Load()
	applyMemoryLimit(cfg.MemoryLimitMB, a.log) // memlimit.go; restart to change
	if err := writeRunFile(cfg.RunFile(), runFile{Pid: os.Getpid(), Console: a.ConsoleAddr(), Config: a.opts.ConfigPath}); err != nil {
		a.log.Warn("cannot write run file; `config rollback` will not find this instance", "err", err)
	}
	a.events.det.start()
	a.events.start()
	for _, f := range a.funcs {
		f.start(ctx, a)
	}
	bctx, stopBackups := context.WithCancel(ctx)
	defer stopBackups()
	var bg sync.WaitGroup // background work that emits events
	bg.Go(func() { a.runBackups(bctx) })
	bg.Go(func() { a.watchHealth(bctx, healthInterval) })
	errc := make(chan error, 1)
	go func() { errc <- a.console.Serve(a.ln) }()
	a.serving.Store(true)
	a.log.Info("seccloud running", "console", a.ConsoleAddr(), "pid", os.Getpid())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		a.log.Error("console stopped", "err", runErr)
	}
	a.serving.Store(false)
	a.log.Info("shutting down", "deadline", shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := a.console.Shutdown(sctx)
	for i := len(a.funcs) - 1; i >= 0; i-- {
		err = errors.Join(err, a.funcs[i].stop(sctx))
	}
	stopBackups()
	bg.Wait() // a backup in progress stops at its next file
	a.audit("shutdown", "success", "graceful shutdown", tenant.Generation{})
	err = errors.Join(err, a.events.close(sctx), a.webAudit.Close(), a.limits.close())
	if rerr := os.Remove(cfg.RunFile()); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		a.log.Error("shutdown incomplete", "err", err)
	} else {
		a.log.Info("shutdown complete")
	}
	return errors.Join(runErr, err)
}

// audit emits an appliance event recording a configuration action.
func (a *App) audit(action, outcome, msg string, g tenant.Generation) {
	e := detect.Event{
		Time: time.Now(), Module: "appliance", Dataset: "appliance.config", Kind: "event",
		Category: "configuration", Type: "change", Action: action, Outcome: outcome, Message: msg,
	}
	if g.N > 0 {
		e.Labels = append(e.Labels, detect.Label{Key: "config_generation", Value: fmt.Sprint(g.N)})
	}
	if g.SHA256 != "" {
		e.Labels = append(e.Labels, detect.Label{Key: "config_sha256", Value: g.SHA256})
	}
	a.events.emit(e)
}
