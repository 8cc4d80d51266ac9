package natsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jichitai/seccloud/detect"
)

// Defaults of [SourceConfig].
const (
	DefaultDurable = "seccloud-detect"
	DefaultBatch   = 256
	DefaultAckWait = 30 * time.Second
	DefaultMaxWait = 200 * time.Millisecond
)

// SourceConfig configures [NewSource]. URL or Conn is required.
type SourceConfig struct {
	// URL is the NATS server URL (several separated by commas). The source
	// reconnects forever.
	URL string
	// Conn is an existing connection to use instead of dialling URL; the
	// Source does not close it.
	Conn *nats.Conn
	// Options are appended when dialling URL.
	Options []nats.Option
	// Stream is the stream read. Default DefaultStream.
	Stream string
	// FilterSubject limits the events read, e.g. "seccloud.events.waf.>".
	// Empty reads the whole stream.
	FilterSubject string
	// Durable is the durable consumer's name: every Source with the same
	// name shares one position in the stream, and each message goes to
	// one of them. Default DefaultDurable ("seccloud-detect").
	Durable string
	// Batch is the most messages handed to the handler at once. Default
	// DefaultBatch (256).
	Batch int
	// MaxWait is how long a fetch waits to fill a batch before handing
	// over what it has: the added latency of a quiet stream. Default
	// DefaultMaxWait (200 ms).
	MaxWait time.Duration
	// AckWait is how long the server waits for a batch's acknowledgement
	// before it redelivers the messages (to this or another Source).
	// Keep it well above the handler's worst time. Default 30 s.
	AckWait time.Duration
	// Logger receives connection changes and dropped messages. Default: discard.
	Logger *slog.Logger
}

// Source reads events from a JetStream stream through a durable pull
// consumer, at least once: a batch is acknowledged only after the handler
// returned nil, and redelivered when it returned an error or the process
// died first. Run is meant to be called once; Close may be called from any
// goroutine.
type Source struct {
	cfg     SourceConfig
	nc      *nats.Conn
	ownConn bool
	js      jetstream.JetStream
	log     *slog.Logger

	delivered atomic.Uint64
	malformed atomic.Uint64
	failed    atomic.Uint64
}

// SourceStats are a Source's counters.
type SourceStats struct {
	// Delivered counts events handed to the handler and acknowledged.
	Delivered uint64
	// Malformed counts messages that were not ECS events: logged and
	// terminated (never redelivered).
	Malformed uint64
	// Failed counts batches the handler refused (redelivered later).
	Failed uint64
}

// NewSource validates cfg and connects (without waiting for a server when
// dialling URL).
func NewSource(cfg SourceConfig) (*Source, error) {
	if cfg.URL == "" && cfg.Conn == nil {
		return nil, errors.New("natsink: URL or Conn is required")
	}
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Durable == "" {
		cfg.Durable = DefaultDurable
	}
	if strings.ContainsAny(cfg.Durable, ".*> \t\r\n/\\") {
		return nil, fmt.Errorf("natsink: Durable %q: must not contain '.', '*', '>', '/', '\\' or white space", cfg.Durable)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = DefaultAckWait
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{cfg: cfg, nc: cfg.Conn, log: log}
	if s.nc == nil {
		opts := append([]nats.Option{
			nats.Name("seccloud-natsource"),
			nats.MaxReconnects(-1),
			nats.ReconnectWait(500 * time.Millisecond),
			nats.RetryOnFailedConnect(true),
		}, cfg.Options...)
		nc, err := nats.Connect(cfg.URL, opts...)
		if err != nil {
			return nil, fmt.Errorf("natsink: connect %s: %w", cfg.URL, err)
		}
		s.nc, s.ownConn = nc, true
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("natsink: jetstream: %w", err)
	}
	s.js = js
	return s, nil
}

// Stats returns the counters.
func (s *Source) Stats() SourceStats {
	return SourceStats{Delivered: s.delivered.Load(), Malformed: s.malformed.Load(), Failed: s.failed.Load()}
}

// Run hands batches of events to handle until ctx is done, then returns
// ctx's error. A batch is acknowledged when handle returns nil; when it
// returns an error every message of the batch is negatively acknowledged
// and comes back after a delay. Run waits for the stream to exist and
// for the server to be reachable, retrying every second.
func (s *Source) Run(ctx context.Context, handle func(context.Context, []detect.Event) error) error {
	var cons jetstream.Consumer
	for {
		var err error
		cons, err = s.consumer(ctx)
		if err == nil {
			break
		}
		s.log.Warn("natsink: consumer not ready; retrying", "stream", s.cfg.Stream, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	events := make([]detect.Event, 0, s.cfg.Batch)
	msgs := make([]jetstream.Msg, 0, s.cfg.Batch)
	for ctx.Err() == nil {
		batch, err := cons.Fetch(s.cfg.Batch, jetstream.FetchMaxWait(s.cfg.MaxWait))
		if err == nil {
			events, msgs = events[:0], msgs[:0]
			for m := range batch.Messages() {
				var e detect.Event
				if derr := detect.DecodeECS(m.Data(), &e); derr != nil {
					s.malformed.Add(1)
					s.log.Warn("natsink: dropping a message that is not an ECS event", "subject", m.Subject(), "err", derr)
					_ = m.Term()
					continue
				}
				events, msgs = append(events, e), append(msgs, m)
			}
			err = batch.Error()
		}
		if err != nil && ctx.Err() == nil && len(msgs) == 0 {
			// Disconnected or the consumer is gone: wait, then try again.
			s.log.Warn("natsink: fetch failed; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				if c, cerr := s.consumer(ctx); cerr == nil {
					cons = c
				}
			}
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		if herr := handle(ctx, events); herr != nil {
			s.failed.Add(1)
			s.log.Warn("natsink: handler refused a batch; it will be redelivered", "events", len(events), "err", herr)
			for _, m := range msgs {
				_ = m.NakWithDelay(time.Second)
			}
			continue
		}
		for i, m := range msgs {
			// The last acknowledgement of the batch waits for the server,
			// so a crash right after Run returns loses no acknowledgement
			// it reported; earlier ones are pipelined.
			if i == len(msgs)-1 {
				if aerr := m.DoubleAck(ctx); aerr != nil {
					s.log.Warn("natsink: acknowledgement failed; the batch may be delivered again", "err", aerr)
				}
			} else {
				_ = m.Ack()
			}
		}
		s.delivered.Add(uint64(len(msgs)))
		msgs = msgs[:0]
	}
	return ctx.Err()
}

func (s *Source) consumer(ctx context.Context) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cc := jetstream.ConsumerConfig{
		Durable:       s.cfg.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: s.cfg.FilterSubject,
		MaxAckPending: 4 * s.cfg.Batch,
	}
	return s.js.CreateOrUpdateConsumer(ctx, s.cfg.Stream, cc)
}

// Close closes the connection when the Source dialled it.
func (s *Source) Close() error {
	if s.ownConn && s.nc != nil {
		s.nc.Close()
	}
	return nil
}
