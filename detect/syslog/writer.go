package syslog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jichitai/seccloud/detect"
)

// Defaults of [Config].
const (
	DefaultAppName      = "seccloud"
	DefaultDialTimeout  = 5 * time.Second
	DefaultWriteTimeout = 10 * time.Second
)

// Config configures [New]. Only Addr is required; every other field has a
// usable zero value.
type Config struct {
	// Addr is the receiver's "host:port", e.g. "siem.example.lg.jp:6514".
	// Required.
	Addr string

	// TLS, when non-nil, makes the connection TLS (RFC 5425, usually port
	// 6514); nil sends in clear over TCP (RFC 6587, usually port 514 or
	// 601). An empty ServerName is set to the host of Addr. The config is
	// cloned; it must not be modified after New.
	TLS *tls.Config

	// Facility goes into PRI. The zero value means FacilityLocal0 (16),
	// the facility a site's syslog routing usually reserves for an
	// appliance. Values above 23 are refused.
	Facility Facility

	// Hostname is the HOSTNAME field. Empty means os.Hostname(), or "-"
	// when unknown. Bytes outside printable ASCII become '_'; it is cut at
	// 255 bytes.
	Hostname string

	// AppName is the APP-NAME field. Empty means DefaultAppName
	// ("seccloud"). Cut at 48 bytes.
	AppName string

	// ProcID is the PROCID field. Empty means the process id. Cut at 128
	// bytes.
	ProcID string

	// SDID is the id of the structured-data element carrying severity,
	// tenant, verdict, rule, kind and event id. Empty means [SDID]
	// ("seccloud@32473"). It must be 1 to 32 printable ASCII characters
	// without '=', ' ', ']' or '"'.
	SDID string

	// Severity maps an event to the syslog severity in PRI. Nil means
	// [DefaultSeverity].
	Severity func(*detect.Event) Severity

	// DialTimeout bounds connecting, TLS handshake included. Zero means
	// DefaultDialTimeout (5 s).
	DialTimeout time.Duration

	// WriteTimeout bounds writing one batch (the context's deadline, when
	// earlier, wins). Zero means DefaultWriteTimeout (10 s).
	WriteTimeout time.Duration

	// Dial opens the TCP connection. Nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// Logger receives connection records. Nil discards them.
	Logger *slog.Logger
}

// Writer is a [detect.BatchWriter] that sends each event as one RFC 5424
// message, octet-counted (RFC 6587 section 3.4.1, RFC 5425 section 4.3),
// over one TCP or TLS connection:
//
//	LEN SP <PRI>1 TIMESTAMP HOSTNAME seccloud PROCID MODULE [seccloud@32473 severity="3" tenant="t1" verdict="block" rule="r"] {ECS JSON}
//
// MSGID is the event's module; MSG is the event's ECS JSON (see
// [detect.AppendECS]), written without a BOM so receivers can parse it as
// JSON; TIMESTAMP is the event time in UTC with microseconds ("-" when the
// event has none).
//
// The connection is opened on the first write and reopened after a failure
// or when the receiver closes it; each write has a deadline. Plain syslog
// over TCP has no acknowledgement: WriteEvents returns nil once the kernel
// accepted the bytes, so events written just before the receiver crashed
// can be lost. Use NATS JetStream (detect/natsink) where every event must be
// acknowledged.
//
// Writer is safe for concurrent use; batches are written one at a time.
type Writer struct {
	addr         string
	tls          *tls.Config
	dial         func(ctx context.Context, network, addr string) (net.Conn, error)
	dialTimeout  time.Duration
	writeTimeout time.Duration
	log          *slog.Logger
	f            formatter

	mu     sync.Mutex
	conn   net.Conn
	dead   chan struct{} // closed when the receiver closes conn
	buf    []byte
	closed bool
}

var _ detect.BatchWriter = (*Writer)(nil)

// New validates cfg and returns a Writer. It does not connect.
func New(cfg Config) (*Writer, error) {
	if cfg.Addr == "" {
		return nil, errors.New("syslog: Addr is required")
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("syslog: Addr %q: %w", cfg.Addr, err)
	}
	if cfg.Facility > FacilityLocal7 {
		return nil, fmt.Errorf("syslog: Facility %d out of range 1-23", cfg.Facility)
	}
	if cfg.Facility == 0 {
		cfg.Facility = FacilityLocal0
	}
	if cfg.DialTimeout < 0 {
		return nil, fmt.Errorf("syslog: DialTimeout %v is negative", cfg.DialTimeout)
	}
	if cfg.WriteTimeout < 0 {
		return nil, fmt.Errorf("syslog: WriteTimeout %v is negative", cfg.WriteTimeout)
	}
	if cfg.SDID == "" {
		cfg.SDID = SDID
	}
	if err := validSDName(cfg.SDID); err != nil {
		return nil, fmt.Errorf("syslog: SDID %q: %w", cfg.SDID, err)
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.AppName == "" {
		cfg.AppName = DefaultAppName
	}
	if cfg.ProcID == "" {
		cfg.ProcID = strconv.Itoa(os.Getpid())
	}
	w := &Writer{
		addr:         cfg.Addr,
		dial:         cfg.Dial,
		dialTimeout:  cmp(cfg.DialTimeout, DefaultDialTimeout),
		writeTimeout: cmp(cfg.WriteTimeout, DefaultWriteTimeout),
		log:          cfg.Logger,
		f: formatter{
			pri:      int(cfg.Facility) * 8,
			hostname: headerField(cfg.Hostname, 255),
			appName:  headerField(cfg.AppName, 48),
			procID:   headerField(cfg.ProcID, 128),
			sdID:     cfg.SDID,
			severity: cfg.Severity,
		},
	}
	if w.f.severity == nil {
		w.f.severity = DefaultSeverity
	}
	if cfg.TLS != nil {
		w.tls = cfg.TLS.Clone()
		if w.tls.ServerName == "" {
			w.tls.ServerName = host
		}
	}
	if w.dial == nil {
		var d net.Dialer
		w.dial = d.DialContext
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	return w, nil
}

func cmp(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

func validSDName(s string) error {
	if len(s) == 0 || len(s) > 32 {
		return errors.New("must be 1 to 32 characters")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 33 || c > 126 || c == '=' || c == ']' || c == '"' {
			return fmt.Errorf("invalid character %q", c)
		}
	}
	return nil
}

// WriteEvents sends events as one write on the connection, connecting
// first when needed. It returns nil when every frame was handed to the
// kernel, or an error after which the connection is closed (the next call
// reconnects; frames may then be sent twice).
func (w *Writer) WriteEvents(ctx context.Context, events []detect.Event) error {
	if len(events) == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("syslog: writer closed")
	}
	w.buf = w.buf[:0]
	for i := range events {
		w.buf = w.f.appendFrame(w.buf, &events[i])
	}
	conn, err := w.connect(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(w.writeTimeout)
	fromCtx := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, fromCtx = d, true
	}
	if err := conn.SetWriteDeadline(deadline); err != nil {
		w.drop()
		return fmt.Errorf("syslog: %s: %w", w.addr, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Unix(1, 0)) })
	_, err = conn.Write(w.buf)
	stop()
	if cap(w.buf) > 4<<20 {
		w.buf = nil // do not keep a huge batch's buffer
	}
	if err != nil {
		w.drop()
		switch {
		case ctx.Err() != nil:
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		case fromCtx && errors.Is(err, os.ErrDeadlineExceeded):
			// The context's deadline, met a moment before its timer.
			err = fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
		}
		return fmt.Errorf("syslog: write %d events to %s: %w", len(events), w.addr, err)
	}
	return nil
}

// connect returns the open connection, replacing it when the receiver
// closed it. w.mu is held.
func (w *Writer) connect(ctx context.Context) (net.Conn, error) {
	if w.conn != nil {
		select {
		case <-w.dead:
			w.log.Info("syslog: receiver closed the connection, reconnecting", "addr", w.addr)
			w.drop()
		default:
			return w.conn, nil
		}
	}
	dctx, cancel := context.WithTimeout(ctx, w.dialTimeout)
	defer cancel()
	c, err := w.dial(dctx, "tcp", w.addr)
	if err != nil {
		return nil, fmt.Errorf("syslog: dial %s: %w", w.addr, err)
	}
	if w.tls != nil {
		tc := tls.Client(c, w.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("syslog: tls handshake with %s: %w", w.addr, err)
		}
		c = tc
	}
	dead := make(chan struct{})
	go func() {
		// The receiver never sends application data: a read returns
		// only when it closes the connection or the connection breaks.
		_, _ = io.Copy(io.Discard, c)
		close(dead)
	}()
	w.conn, w.dead = c, dead
	w.log.Info("syslog: connected", "addr", w.addr, "tls", w.tls != nil)
	return c, nil
}

// drop closes the connection. w.mu is held.
func (w *Writer) drop() {
	if w.conn != nil {
		_ = w.conn.Close()
		w.conn, w.dead = nil, nil
	}
}

// Close closes the connection. Later writes fail. It is safe to call more
// than once.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn, w.dead = nil, nil
	if err != nil {
		return fmt.Errorf("syslog: close: %w", err)
	}
	return nil
}
