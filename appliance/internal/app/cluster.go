package app

import (
	"context"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/natsink"
)

// cluster is the event path between nodes (cluster.*): every node
// publishes its events to the JetStream stream through its own queue; the
// detector node reads the whole stream back into its store and its
// detection side.
type cluster struct {
	role   string
	writer *natsink.Writer
	async  *detect.Async // in front of writer
	source *natsink.Source
	cancel context.CancelFunc
	done   chan error
}

func openCluster(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*cluster, error) {
	c := &cluster{role: cfg.Cluster.Role}
	if c.role == config.RoleStandalone {
		return c, nil
	}
	log = log.With("component", "cluster", "node", cfg.Cluster.Node, "role", c.role)
	var err error
	c.writer, err = natsink.New(natsink.Config{URL: cfg.Cluster.NATS, Stream: cfg.Cluster.Stream, CreateStream: true, Logger: log})
	if err != nil {
		return nil, err
	}
	c.async, err = detect.NewAsync(detect.AsyncConfig{Writer: c.writer, Logger: log.With("queue", "stream")})
	if err != nil {
		return nil, errors.Join(err, c.writer.Close())
	}
	if c.role == config.RoleDetector {
		c.source, err = natsink.NewSource(natsink.SourceConfig{URL: cfg.Cluster.NATS, Stream: cfg.Cluster.Stream, Logger: log})
		if err != nil {
			return nil, errors.Join(err, c.async.Close(context.Background()), c.writer.Close())
		}
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "seccloud_cluster_events_consumed_total",
			Help: "Events read from the cluster stream into this detector's store and rules."},
			func() float64 { return float64(c.source.Stats().Delivered) }))
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "seccloud_cluster_events_published_total",
		Help: "Events acknowledged by the cluster stream."},
		func() float64 { return float64(c.async.Stats().Written) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "seccloud_cluster_events_dropped_total",
		Help: "Events dropped because the stream queue was full (NATS unreachable for long)."},
		func() float64 { return float64(c.async.Stats().Dropped) }))
	log.Info("cluster stream", "nats", cfg.Cluster.NATS)
	return c, nil
}

// start runs the detector's stream reader, which writes each batch to the
// store, then to the rules, and acknowledges it only when both took it.
func (c *cluster) start(st detect.BatchWriter, rules detect.BatchWriter) {
	if c.source == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan error, 1)
	go func() {
		c.done <- c.source.Run(ctx, func(ctx context.Context, evs []detect.Event) error {
			if err := st.WriteEvents(ctx, evs); err != nil {
				return err
			}
			return rules.WriteEvents(ctx, evs)
		})
	}()
}

// stopReading stops the detector's stream reader (before the store and the
// rules close).
func (c *cluster) stopReading() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
		c.cancel = nil
	}
}

// close flushes the stream queue and disconnects.
func (c *cluster) close(ctx context.Context) error {
	c.stopReading()
	if c.async == nil {
		return nil
	}
	err := c.async.Close(ctx)
	if c.source != nil {
		err = errors.Join(err, c.source.Close())
	}
	return errors.Join(err, c.writer.Close())
}
