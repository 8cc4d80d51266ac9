package clamd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnavailable wraps every failure to reach or talk to clamd (dial, I/O,
// deadline): "the scanner is down", as opposed to a *ReplyError (clamd is up
// and refused the job) or an error reading the caller's own stream.
var ErrUnavailable = errors.New("clamd: unavailable")

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("clamd: client closed")

// Config configures a Client. The zero value of every field but Address is
// its default.
type Config struct {
	// Address of clamd: "host:port" (TCP) or a unix socket path. Required.
	Address string
	// Network is "tcp" or "unix". Empty: "unix" when Address contains a
	// '/', else "tcp".
	Network string
	// DialTimeout bounds connecting. Zero: 5 s.
	DialTimeout time.Duration
	// Timeout bounds one Scan, Ping or Version when the context has no
	// deadline of its own. Zero: 60 s.
	Timeout time.Duration
	// ChunkSize is the INSTREAM chunk size. Zero: 64 KiB.
	ChunkSize int
	// MaxStream, when positive, stops sending after that many bytes: the
	// prefix is scanned and a clean prefix yields TooLarge. Keep it at or
	// under clamd's StreamMaxLength (default 25 MiB), which yields TooLarge
	// too. Zero: no client-side limit.
	MaxStream int64
	// MaxIdle is how many IDSESSION connections are kept for reuse. Zero:
	// 4. Negative: no reuse (one connection per scan, no IDSESSION).
	MaxIdle int
	// IdleTimeout drops a kept session unused for that long, before clamd's
	// own IdleTimeout (default 30 s) closes it. Zero: 20 s.
	IdleTimeout time.Duration
	// Logger receives connection problems at debug level. Nil: discard.
	Logger *slog.Logger
}

// Client talks to one clamd. It is safe for concurrent use: each scan holds
// one connection (or one IDSESSION) for its duration.
type Client struct {
	cfg     Config
	network string
	dialer  net.Dialer
	log     *slog.Logger
	bufs    sync.Pool

	dials atomic.Int64 // connections opened, for tests and metrics

	mu     sync.Mutex
	idle   []*session
	closed bool
}

// New checks cfg and returns a Client. It does not connect: use Ping to
// check that clamd answers.
func New(cfg Config) (*Client, error) {
	if cfg.Address == "" {
		return nil, errors.New("clamd: Config.Address is required")
	}
	network := cfg.Network
	if network == "" {
		network = "tcp"
		if strings.Contains(cfg.Address, "/") {
			network = "unix"
		}
	}
	if network != "tcp" && network != "tcp4" && network != "tcp6" && network != "unix" {
		return nil, fmt.Errorf("clamd: Config.Network %q: want tcp or unix", cfg.Network)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 64 << 10
	}
	if cfg.ChunkSize > 1<<24 {
		return nil, fmt.Errorf("clamd: Config.ChunkSize %d: at most 16 MiB", cfg.ChunkSize)
	}
	if cfg.MaxStream < 0 {
		return nil, fmt.Errorf("clamd: Config.MaxStream %d: must not be negative", cfg.MaxStream)
	}
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = 4
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 20 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, network: network, log: log}
	c.dialer.Timeout = cfg.DialTimeout
	size := 4 + cfg.ChunkSize
	c.bufs.New = func() any { b := make([]byte, size); return &b }
	return c, nil
}

// Ping sends PING on a new connection and expects PONG.
func (c *Client) Ping(ctx context.Context) error {
	reply, err := c.command(ctx, "PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("%w: PING answered %q", errMalformed, truncate(reply))
	}
	return nil
}

// Version returns clamd's VERSION reply, e.g.
// "ClamAV 1.4.6/27000/Tue Nov 25 09:00:00 2026".
func (c *Client) Version(ctx context.Context) (string, error) {
	reply, err := c.command(ctx, "VERSION")
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(reply, "ClamAV ") {
		return "", fmt.Errorf("%w: VERSION answered %q", errMalformed, truncate(reply))
	}
	return reply, nil
}

// ScanBytes scans b. See Scan.
func (c *Client) ScanBytes(ctx context.Context, b []byte) (Result, error) {
	return c.Scan(ctx, bytes.NewReader(b))
}

// Scan streams r to clamd (INSTREAM) until io.EOF and returns the verdict.
// TooLarge is a result, not an error. Errors: ErrUnavailable (wrapped) when
// clamd cannot be reached or the connection fails, *ReplyError when clamd
// answers ERROR, ErrClosed, or the error r returned.
//
// A reused session that turns out to have been closed by clamd is retried
// once on a new connection when r is an io.Seeker (ScanBytes always is).
func (c *Client) Scan(ctx context.Context, r io.Reader) (Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	seeker, _ := r.(io.Seeker)
	var start int64
	if seeker != nil {
		var err error
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			seeker = nil
		}
	}
	for attempt := 0; ; attempt++ {
		s, reused, err := c.get(ctx)
		if err != nil {
			return Result{}, err
		}
		res, keep, err := c.instream(ctx, s, r)
		if err == nil {
			if keep {
				c.put(s)
			} else {
				s.close()
			}
			return res, nil
		}
		s.close()
		if reused && attempt == 0 && seeker != nil && errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
			if _, serr := seeker.Seek(start, io.SeekStart); serr == nil {
				c.log.Debug("clamd: kept session was closed, retrying on a new one", "err", err)
				continue
			}
		}
		return Result{}, err
	}
}

// Dials returns how many connections the client has opened so far.
func (c *Client) Dials() int64 { return c.dials.Load() }

// Close closes the kept sessions; later calls fail with ErrClosed. Scans
// in progress finish and their connections are then closed.
func (c *Client) Close() error {
	c.mu.Lock()
	idle := c.idle
	c.idle, c.closed = nil, true
	c.mu.Unlock()
	for _, s := range idle {
		s.close()
	}
	return nil
}

// session is one connection to clamd, in IDSESSION mode when next > 0.
type session struct {
	conn net.Conn
	br   *bufio.Reader
	next uint64 // id clamd gives the next command; 0 = not a session
	used time.Time
}

func (s *session) close() {
	if s.next > 0 {
		_ = s.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = s.conn.Write([]byte("zEND\x00"))
	}
	_ = s.conn.Close()
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	c.dials.Add(1)
	conn, err := c.dialer.DialContext(ctx, c.network, c.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s %s: %w", ErrUnavailable, c.network, c.cfg.Address, err)
	}
	return conn, nil
}

// get returns a kept session or a new connection (a new IDSESSION when
// reuse is on).
func (c *Client) get(ctx context.Context) (*session, bool, error) {
	now := time.Now()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, ErrClosed
	}
	var stale []*session
	var s *session
	for len(c.idle) > 0 {
		last := c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		if now.Sub(last.used) < c.cfg.IdleTimeout {
			s = last
			break
		}
		stale = append(stale, last)
	}
	c.mu.Unlock()
	for _, st := range stale {
		st.close()
	}
	if s != nil {
		return s, true, nil
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	s = &session{conn: conn, br: bufio.NewReaderSize(conn, 512)}
	if c.cfg.MaxIdle > 0 {
		if err := withDeadline(ctx, conn, func() error {
			_, err := conn.Write([]byte("zIDSESSION\x00"))
			return err
		}); err != nil {
			_ = conn.Close()
			return nil, false, fmt.Errorf("%w: IDSESSION: %w", ErrUnavailable, err)
		}
		s.next = 1
	}
	return s, false, nil
}

// put keeps s for reuse, or closes it when reuse is off or the pool full.
func (c *Client) put(s *session) {
	if s.next == 0 {
		s.close()
		return
	}
	s.used = time.Now()
	c.mu.Lock()
	if !c.closed && len(c.idle) < c.cfg.MaxIdle {
		c.idle = append(c.idle, s)
		s = nil
	}
	c.mu.Unlock()
	if s != nil {
		s.close()
	}
}

// withDeadline runs f with conn's deadline set from ctx, and breaks f off
// when ctx is cancelled.
func withDeadline(ctx context.Context, conn net.Conn, f func() error) error {
	dl, _ := ctx.Deadline()
	if err := conn.SetDeadline(dl); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	err := f()
	stop()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w (%w)", cerr, err)
		} else if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) && errors.Is(err, os.ErrDeadlineExceeded) {
			// The connection's deadline (the context's) fired first.
			err = fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
		}
	}
	return err
}

// instream runs one INSTREAM on s. keep says whether s may be reused.
func (c *Client) instream(ctx context.Context, s *session, r io.Reader) (res Result, keep bool, err error) {
	bp := c.bufs.Get().(*[]byte)
	defer c.bufs.Put(bp)
	buf := *bp
	var srcErr error
	truncated := false
	err = withDeadline(ctx, s.conn, func() error {
		if _, err := s.conn.Write([]byte("zINSTREAM\x00")); err != nil {
			return err
		}
		for {
			want := c.cfg.ChunkSize
			if c.cfg.MaxStream > 0 {
				if left := c.cfg.MaxStream - res.Scanned; left < int64(want) {
					want = int(left)
				}
			}
			if want == 0 {
				var one [1]byte
				if n, _ := io.ReadFull(r, one[:]); n > 0 {
					truncated = true
				}
				break
			}
			n, rerr := io.ReadFull(r, buf[4:4+want])
			if n > 0 {
				binary.BigEndian.PutUint32(buf[:4], uint32(n))
				if _, werr := s.conn.Write(buf[:4+n]); werr != nil {
					// clamd stops reading and answers at its size limit:
					// the reply tells more than the write error.
					if line, e := s.br.ReadString(0); e == nil {
						if _, pres, perr := parseReply(line); perr == nil && pres.Status == TooLarge {
							res.Status = TooLarge
							return nil
						}
					}
					return werr
				}
				res.Scanned += int64(n)
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				break
			}
			if rerr != nil {
				srcErr = rerr
				return nil
			}
		}
		_, err := s.conn.Write([]byte{0, 0, 0, 0})
		return err
	})
	if srcErr != nil {
		return Result{}, false, fmt.Errorf("clamd: reading the stream to scan: %w", srcErr)
	}
	if err != nil {
		return Result{}, false, fmt.Errorf("%w: INSTREAM: %w", ErrUnavailable, err)
	}
	if res.Status == TooLarge { // answered during the upload; clamd closes
		return res, false, nil
	}
	var line string
	err = withDeadline(ctx, s.conn, func() error {
		var e error
		line, e = s.br.ReadString(0)
		return e
	})
	if err != nil {
		return Result{}, false, fmt.Errorf("%w: reading the INSTREAM reply: %w", ErrUnavailable, err)
	}
	id, pres, err := parseReply(line)
	if err != nil {
		return Result{}, false, err
	}
	if s.next > 0 {
		if id != s.next {
			return Result{}, false, fmt.Errorf("%w: reply for session command %d, want %d", errMalformed, id, s.next)
		}
		s.next++
	}
	pres.Scanned = res.Scanned
	keep = pres.Status != TooLarge // clamd closes after its size limit
	if truncated && pres.Status == Clean {
		pres.Status = TooLarge
	}
	return pres, keep, nil
}

// command sends a one-line command on a new connection and returns the
// reply without its terminator.
func (c *Client) command(ctx context.Context, cmd string) (string, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return "", ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	var line string
	err = withDeadline(ctx, conn, func() error {
		if _, err := conn.Write([]byte("z" + cmd + "\x00")); err != nil {
			return err
		}
		var e error
		line, e = bufio.NewReaderSize(conn, 256).ReadString(0)
		return e
	})
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrUnavailable, cmd, err)
	}
	return strings.TrimRight(line, "\x00\n"), nil
}
