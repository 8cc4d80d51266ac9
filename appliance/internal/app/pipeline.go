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

// pipeline is the event path: every function's Sink fans out to an
// asynchronous queue (detect.Async) in front of the embedded store
// (detect/store) and, once attached, to the detection side (rules →
// incidents → notifications) behind its own queue.
type pipeline struct {
	async    *detect.Async
	store    *store.Store
	cluster  *cluster
	det      *detection
	out      detect.Sink
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
	cl, err := openCluster(cfg, log, reg)
	if err != nil {
		return nil, errors.Join(err, as.Close(context.Background()), st.Close())
	}
	p := &pipeline{async: as, store: st, cluster: cl, out: as}
	switch cl.role {
	case config.RoleEdge:
		p.out = detect.Fanout(as, cl.async)
	case config.RoleDetector:
		// This node's own events come back from the stream with every
		// other node's, into the store and the rules: written once.
		p.out = cl.async
	}
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

// attach adds the detection side; call it before any function starts.
// On an edge node the detection side stays idle (the detector node judges
// every node's events); on the detector it is fed from the stream.
func (p *pipeline) attach(d *detection) {
	p.det = d
	if p.cluster.role == config.RoleStandalone {
		p.out = detect.Fanout(p.async, d.async)
	}
	// External events (detect/ingest) take the same path as the functions'.
	d.out = p.out
}

// start starts reading the cluster stream on a detector node.
func (p *pipeline) start() {
	p.cluster.start(p.store, p.det.writer())
}

// Sink is the sink the security functions emit to.
func (p *pipeline) sink() detect.Sink { return p.out }

func (p *pipeline) emit(e detect.Event) { p.out.Emit(e) }

// flush waits up to d for the events emitted so far to be durable and to
// have passed the rules.
func (p *pipeline) flush(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := p.async.Flush(ctx)
	if p.cluster.async != nil {
		err = errors.Join(err, p.cluster.async.Flush(ctx))
	}
	if p.det != nil {
		err = errors.Join(err, p.det.async.Flush(ctx))
	}
	return err
}

// ready reports whether events are being stored.
func (p *pipeline) ready() (string, bool) {
	s := p.async.Stats()
	if prev := p.lastErrs.Swap(s.WriteErrors); s.WriteErrors > prev && s.Queued > 0 {
		return "store writes failing", false
	}
	return "up", true
}

// close flushes the queue into the store, closes the detection side
// (rule queue, notifier, incident journal) and closes the store. The
// functions must have stopped emitting.
func (p *pipeline) close(ctx context.Context) error {
	err := errors.Join(p.cluster.close(ctx), p.async.Close(ctx))
	if p.det != nil {
		err = errors.Join(err, p.det.close(ctx))
	}
	return errors.Join(err, p.store.Close())
}
