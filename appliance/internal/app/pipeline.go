package app

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
)

// pipeline is the event path: every function's Sink is an asynchronous
// queue (detect.Async) in front of the embedded store (detect/store).
type pipeline struct {
	async    *detect.Async
	store    *store.Store
	lastErrs atomic.Uint64 // WriteErrors at the previous readiness check
}

func openPipeline(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*pipeline, error) {
	st, err := store.Open(store.Config{
		Dir:       cfg.StoreDir(),
		Retention: time.Duration(cfg.Store.Retention),
		Logger:    log.With("component", "store"),
	})
	if err != nil {
		return nil, err
	}
	as, err := detect.NewAsync(detect.AsyncConfig{Writer: st, Logger: log.With("component", "events")})
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	p := &pipeline{async: as, store: st}
	stat := func(name, help string, get func(detect.AsyncStats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "seccloud_events_" + name + "_total", Help: help},
			func() float64 { return float64(get(as.Stats())) }))
	}
	stat("emitted", "Events accepted into the event queue.", func(s detect.AsyncStats) uint64 { return s.Emitted })
	stat("dropped", "Events dropped because the event queue was full.", func(s detect.AsyncStats) uint64 { return s.Dropped })
	stat("written", "Events written durably to the store.", func(s detect.AsyncStats) uint64 { return s.Written })
	stat("failed", "Accepted events given up after failed writes.", func(s detect.AsyncStats) uint64 { return s.Failed })
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "seccloud_events_queued", Help: "Events held in the event queue."},
		func() float64 { return float64(as.Stats().Queued) }))
	return p, nil
}

// Sink is the sink the security functions emit to.
func (p *pipeline) sink() detect.Sink { return p.async }

func (p *pipeline) emit(e detect.Event) { p.async.Emit(e) }

// flush waits up to d for the events emitted so far to be durable.
func (p *pipeline) flush(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return p.async.Flush(ctx)
}

// ready reports whether events are being stored.
func (p *pipeline) ready() (string, bool) {
	s := p.async.Stats()
	if prev := p.lastErrs.Swap(s.WriteErrors); s.WriteErrors > prev && s.Queued > 0 {
		return "store writes failing", false
	}
	return "up", true
}

// close flushes the queue into the store and closes the store.
func (p *pipeline) close(ctx context.Context) error {
	return errors.Join(p.async.Close(ctx), p.store.Close())
}
