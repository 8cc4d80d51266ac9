package natsink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jichitai/seccloud/detect"
)

// Defaults of [Config].
const (
	DefaultStream        = "SECCLOUD_EVENTS"
	DefaultSubjectPrefix = "seccloud.events"
	DefaultAckTimeout    = 10 * time.Second
	DefaultMaxPending    = 4096
)

// Config configures [New]. URL or Conn is required; every other field has
// a usable zero value.
type Config struct {
	// URL is the NATS server URL, e.g. "nats://127.0.0.1:4222"; several
	// may be given separated by commas. New connects with unlimited
	// reconnects and returns even when no server is up yet; WriteEvents
	// fails until the connection is established.
	URL string

	// Conn is an existing connection to use instead of dialling URL. The
	// Writer does not close it; its reconnect policy is the caller's.
	Conn *nats.Conn

	// Options are appended to the Writer's own options when dialling URL
	// (credentials, TLS, reconnect wait...). Ignored with Conn.
	Options []nats.Option

	// Stream is the JetStream stream name used when CreateStream is set.
	// Empty means DefaultStream ("SECCLOUD_EVENTS").
	Stream string

	// SubjectPrefix is prepended to the per-event subject (see [Subject]).
	// Empty means DefaultSubjectPrefix ("seccloud.events"). It must be
	// dot-separated non-empty tokens without wildcards or white space.
	SubjectPrefix string

	// CreateStream makes the Writer create Stream, capturing
	// SubjectPrefix + ".>" in file storage, before its first write when
	// it does not exist. An existing stream is used as it is. When false
	// the stream must exist (created by an operator): publishing to a
	// subject no stream captures fails and the batch is retried.
	CreateStream bool

	// StreamMaxAge is the created stream's MaxAge (messages older are
	// deleted). Zero keeps messages forever. Used only with CreateStream.
	StreamMaxAge time.Duration

	// StreamReplicas is the created stream's replica count in a cluster.
	// Zero means 1. Used only with CreateStream.
	StreamReplicas int

	// AckTimeout bounds the wait for each message's acknowledgement (the
	// context's deadline, when earlier, wins). Zero means
	// DefaultAckTimeout (10 s).
	AckTimeout time.Duration

	// MaxPending bounds the messages published and not yet acknowledged.
	// Zero means DefaultMaxPending (4096). Keep it at least the batch size
	// of the Async sink in front, or publishing stalls.
	MaxPending int

	// NoDedup turns off the Nats-Msg-Id header on events without an ID.
	// By default each message carries Nats-Msg-Id: the event's ID, or a
	// SHA-256 of its ECS JSON when it has none, so a batch retried after a
	// partial failure is stored once (within the stream's duplicate
	// window, 2 minutes by default). A side effect is that two events
	// identical to the nanosecond and in every field are stored once.
	NoDedup bool

	// Logger receives connection and rejection records. Nil discards
	// them.
	Logger *slog.Logger
}

// Writer is a [detect.BatchWriter] that publishes each event's ECS JSON
// (see [detect.AppendECS]) to NATS JetStream on the subject given by
// [Subject], and returns once the server acknowledged every message of the
// batch (stored in the stream). Messages are published asynchronously, then
// all acknowledgements are awaited; any failure fails the batch, which the
// Async sink in front retries. With the default Nats-Msg-Id headers a retried
// batch is not stored twice.
//
// Events whose JSON exceeds the server's max payload can never be
// published: they are skipped, logged and counted (see Rejected) instead of
// failing the batch forever.
//
// Writer is safe for concurrent use; batches are written one at a time.
type Writer struct {
	nc         *nats.Conn
	ownConn    bool
	js         jetstream.JetStream
	prefix     string
	stream     jetstream.StreamConfig
	create     bool
	ackTimeout time.Duration
	noDedup    bool
	log        *slog.Logger
	url        string

	mu       sync.Mutex
	ensured  bool
	closed   bool
	buf      []byte
	ends     []int
	futs     []jetstream.PubAckFuture
	subjects map[subjectKey]string

	rejected atomic.Uint64
}

type subjectKey struct{ module, tenant string }

var _ detect.BatchWriter = (*Writer)(nil)

// New validates cfg, connects (without waiting for a server when dialling
// URL) and returns a Writer.
func New(cfg Config) (*Writer, error) {
	if cfg.URL == "" && cfg.Conn == nil {
		return nil, errors.New("natsink: URL or Conn is required")
	}
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = DefaultSubjectPrefix
	}
	if err := validPrefix(cfg.SubjectPrefix); err != nil {
		return nil, fmt.Errorf("natsink: SubjectPrefix %q: %w", cfg.SubjectPrefix, err)
	}
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if strings.ContainsAny(cfg.Stream, ".*> \t\r\n/\\") {
		return nil, fmt.Errorf("natsink: Stream %q: must not contain '.', '*', '>', '/', '\\' or white space", cfg.Stream)
	}
	switch {
	case cfg.AckTimeout < 0:
		return nil, fmt.Errorf("natsink: AckTimeout %v is negative", cfg.AckTimeout)
	case cfg.MaxPending < 0:
		return nil, fmt.Errorf("natsink: MaxPending %d is negative", cfg.MaxPending)
	case cfg.StreamMaxAge < 0:
		return nil, fmt.Errorf("natsink: StreamMaxAge %v is negative", cfg.StreamMaxAge)
	case cfg.StreamReplicas < 0 || cfg.StreamReplicas > 5:
		return nil, fmt.Errorf("natsink: StreamReplicas %d out of range 0-5", cfg.StreamReplicas)
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.StreamReplicas == 0 {
		cfg.StreamReplicas = 1
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Writer{
		nc:         cfg.Conn,
		prefix:     cfg.SubjectPrefix,
		create:     cfg.CreateStream,
		ackTimeout: cfg.AckTimeout,
		noDedup:    cfg.NoDedup,
		log:        log,
		url:        cfg.URL,
		subjects:   make(map[subjectKey]string),
		stream: jetstream.StreamConfig{
			Name:      cfg.Stream,
			Subjects:  []string{cfg.SubjectPrefix + ".>"},
			Storage:   jetstream.FileStorage,
			Retention: jetstream.LimitsPolicy,
			MaxAge:    cfg.StreamMaxAge,
			Replicas:  cfg.StreamReplicas,
		},
	}
	if w.nc == nil {
		opts := append([]nats.Option{
			nats.Name("seccloud-natsink"),
			nats.MaxReconnects(-1),
			nats.ReconnectWait(500 * time.Millisecond),
			nats.RetryOnFailedConnect(true),
			// Fail publishes while disconnected instead of buffering
			// them: the batch is retried whole after reconnecting.
			nats.ReconnectBufSize(-1),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				log.Warn("natsink: disconnected", "url", cfg.URL, "err", err)
			}),
			nats.ReconnectHandler(func(c *nats.Conn) {
				log.Info("natsink: reconnected", "server", c.ConnectedUrlRedacted())
			}),
		}, cfg.Options...)
		nc, err := nats.Connect(cfg.URL, opts...)
		if err != nil {
			return nil, fmt.Errorf("natsink: connect %s: %w", cfg.URL, err)
		}
		w.nc, w.ownConn = nc, true
	} else {
		w.url = cfg.Conn.ConnectedUrlRedacted()
	}
	js, err := jetstream.New(w.nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		w.closeConn()
		return nil, fmt.Errorf("natsink: jetstream: %w", err)
	}
	w.js = js
	return w, nil
}

func validPrefix(p string) error {
	for tok := range strings.SplitSeq(p, ".") {
		if tok == "" {
			return errors.New("empty token")
		}
		if strings.ContainsAny(tok, "*> \t\r\n") {
			return fmt.Errorf("token %q has a wildcard or white space", tok)
		}
	}
	return nil
}

// Subject returns the subject an event is published on:
//
//	<prefix>.<module>.<tenant>
//
// Module and tenant are each made one subject token: ASCII letters, digits,
// '-' and '_' are kept, every other byte (including '.', '*', '>', white
// space and the bytes of non-ASCII characters) is written "%XX" with two
// upper-case hex digits, so distinct ids stay distinct and the original is
// recoverable. An empty module or tenant (an event from the internet) is
// written "_" (so a tenant whose id is exactly "_" shares that subject).
// Consumers subscribe to e.g. "seccloud.events.*.tokyo-a" for one tenant or
// "seccloud.events.dns.>" for one module.
func Subject(prefix string, e *detect.Event) string {
	b := make([]byte, 0, len(prefix)+len(e.Module)+len(e.Tenant)+2)
	b = append(b, prefix...)
	b = append(b, '.')
	b = appendToken(b, e.Module)
	b = append(b, '.')
	b = appendToken(b, e.Tenant)
	return string(b)
}

func appendToken(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, '_')
	}
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hex[c>>4], hex[c&15])
	}
	return dst
}

// subject returns Subject(w.prefix, e) from a small cache. w.mu is held.
func (w *Writer) subject(e *detect.Event) string {
	k := subjectKey{e.Module, e.Tenant}
	if s, ok := w.subjects[k]; ok {
		return s
	}
	if len(w.subjects) >= 4096 {
		clear(w.subjects)
	}
	s := Subject(w.prefix, e)
	w.subjects[k] = s
	return s
}

// Rejected returns how many events were skipped because their JSON
// exceeded the server's max payload.
func (w *Writer) Rejected() uint64 { return w.rejected.Load() }

// WriteEvents publishes events and waits until JetStream acknowledged every
// one of them, the AckTimeout passed or ctx ended. On error some events may
// be stored already; retrying the batch does not store them twice unless
// NoDedup is set.
func (w *Writer) WriteEvents(ctx context.Context, events []detect.Event) error {
	if len(events) == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("natsink: writer closed")
	}
	if st := w.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("natsink: not connected to %s (%s)", w.url, st)
	}
	if w.create && !w.ensured {
		if err := w.ensureStream(ctx); err != nil {
			return err
		}
	}

	// Encode the whole batch first: messages point into w.buf, which must
	// not move while they are in flight.
	w.buf, w.ends = w.buf[:0], w.ends[:0]
	for i := range events {
		w.buf = detect.AppendECS(w.buf, &events[i])
		w.ends = append(w.ends, len(w.buf))
	}
	maxPayload := int(w.nc.MaxPayload())
	w.futs = w.futs[:0]
	start := 0
	var pubErr error
	for i := range events {
		data := w.buf[start:w.ends[i]:w.ends[i]]
		start = w.ends[i]
		if maxPayload > 0 && len(data) > maxPayload {
			w.rejected.Add(1)
			w.log.Error("natsink: event larger than the server's max payload, skipped",
				"bytes", len(data), "max_payload", maxPayload, "module", events[i].Module, "id", events[i].ID)
			continue
		}
		msg := &nats.Msg{Subject: w.subject(&events[i]), Data: data}
		var f jetstream.PubAckFuture
		var err error
		if id := w.msgID(&events[i], data); id != "" {
			f, err = w.js.PublishMsgAsync(msg, jetstream.WithMsgID(id))
		} else {
			f, err = w.js.PublishMsgAsync(msg)
		}
		if err != nil {
			pubErr = fmt.Errorf("natsink: publish to %s: %w", msg.Subject, err)
			break
		}
		w.futs = append(w.futs, f)
	}

	// Wait for every acknowledgement, even after a failure, so no message
	// still references w.buf when we return.
	var failed int
	var firstErr error
	timer := time.NewTimer(w.ackTimeout + time.Second) // backstop; futures time out first
	defer timer.Stop()
	for i, f := range w.futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			failed++
			if firstErr == nil {
				firstErr = err
			}
		case <-ctx.Done():
			w.buf, w.ends = nil, nil // in-flight messages keep the old buffer
			clear(w.futs)
			return fmt.Errorf("natsink: waiting for %d acknowledgements: %w", len(w.futs)-i, ctx.Err())
		case <-timer.C:
			w.buf, w.ends = nil, nil
			clear(w.futs)
			return fmt.Errorf("natsink: waiting for %d acknowledgements: %w", len(w.futs)-i, jetstream.ErrAsyncPublishTimeout)
		}
	}
	clear(w.futs)
	if cap(w.buf) > 8<<20 {
		w.buf = nil
	}
	if firstErr != nil {
		if errors.Is(firstErr, nats.ErrNoResponders) || errors.Is(firstErr, jetstream.ErrNoStreamResponse) {
			w.ensured = false // the stream may have been deleted
		}
		pubErr = errors.Join(pubErr, fmt.Errorf("natsink: %d of %d events not acknowledged: %w", failed, len(events), firstErr))
	}
	return pubErr
}

// msgID returns the Nats-Msg-Id of an event, or "" with NoDedup.
func (w *Writer) msgID(e *detect.Event, data []byte) string {
	if e.ID != "" {
		return e.ID
	}
	if w.noDedup {
		return ""
	}
	sum := sha256.Sum256(data)
	return "sha256-" + hex.EncodeToString(sum[:16])
}

// ensureStream creates the stream when it does not exist. w.mu is held.
func (w *Writer) ensureStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.ackTimeout)
	defer cancel()
	_, err := w.js.Stream(ctx, w.stream.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = w.js.CreateStream(ctx, w.stream)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil // created meanwhile by another writer
		}
		if err == nil {
			w.log.Info("natsink: stream created", "stream", w.stream.Name, "subjects", w.stream.Subjects)
		}
	}
	if err != nil {
		return fmt.Errorf("natsink: stream %s: %w", w.stream.Name, err)
	}
	w.ensured = true
	return nil
}

// Close closes the connection when the Writer dialled it. Later writes fail.
// It is safe to call more than once.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	w.closeConn()
	return nil
}

func (w *Writer) closeConn() {
	if w.ownConn {
		w.nc.Close()
	}
}

// Connected reports whether the connection to the NATS server is up.
func (w *Writer) Connected() bool { return w.nc.IsConnected() }
