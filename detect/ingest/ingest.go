package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jichitai/seccloud/detect"
)

// Config configures an [Ingester].
type Config struct {
	// Sink receives the accepted events. Required.
	Sink detect.Sink
	// Tenant names the tenant of an event from its source and destination
	// addresses (e.g. a tenant.Directory lookup of either); nil leaves the
	// tenant empty.
	Tenant func(src, dst netip.Addr) string
	// Limits bound the accepted events (field size, time window).
	Limits Limits
	// Syslog sets the RFC 3164 time zone and the module of syslog events.
	Syslog SyslogOptions
	// MaxLine is the longest EVE line or syslog message read; default
	// 64 KiB. Longer ones are skipped whole and counted (DropTooLarge).
	MaxLine int
	// Now gives the time used for the time window; nil means time.Now.
	Now func() time.Time
	// Logger receives listener errors and, at most once a minute, a
	// summary of dropped records; nil discards.
	Logger *slog.Logger
}

// Stats counts what an Ingester read.
type Stats struct {
	// Accepted events were emitted to the Sink.
	Accepted uint64
	// Dropped counts the records dropped, by reason (Drop* constants).
	Dropped map[string]uint64
}

// Ingester reads external security events — Suricata EVE JSON and syslog
// from firewalls — and emits them as detect events, so IDS and firewall
// alerts correlate with the cloud's own. Malformed or hostile records are
// counted and dropped; nothing a sender writes stops ingest. Safe for
// concurrent use; one Ingester may serve several listeners and files.
type Ingester struct {
	cfg      Config
	log      *slog.Logger
	accepted atomic.Uint64
	dropped  [5]atomic.Uint64
	lastLog  atomic.Int64
}

var dropReasons = [5]string{DropMalformed, DropTooLarge, DropUTF8, DropTime, DropIgnored}

// New returns an Ingester.
func New(cfg Config) (*Ingester, error) {
	if cfg.Sink == nil {
		return nil, errors.New("ingest: Config.Sink is required")
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = 64 << 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Limits = cfg.Limits.withDefaults()
	cfg.Syslog.Limits = cfg.Limits
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Ingester{cfg: cfg, log: log}, nil
}

// Stats returns the counters.
func (in *Ingester) Stats() Stats {
	s := Stats{Accepted: in.accepted.Load(), Dropped: map[string]uint64{}}
	for i, r := range dropReasons {
		if n := in.dropped[i].Load(); n > 0 {
			s.Dropped[r] = n
		}
	}
	return s
}

func (in *Ingester) count(reason string) {
	for i, r := range dropReasons {
		if r == reason {
			in.dropped[i].Add(1)
		}
	}
	now := time.Now().Unix()
	if last := in.lastLog.Load(); now-last >= 60 && in.lastLog.CompareAndSwap(last, now) {
		in.log.Warn("ingest: external records dropped", "stats", in.Stats().Dropped)
	}
}

func (in *Ingester) handle(ev detect.Event, err error) {
	if err != nil {
		var de *DropError
		if errors.As(err, &de) {
			in.count(de.Reason)
		} else {
			in.count(DropMalformed)
		}
		return
	}
	if ev.Tenant == "" && in.cfg.Tenant != nil {
		ev.Tenant = in.cfg.Tenant(ev.Client.Addr(), ev.Dest.Addr())
	}
	in.accepted.Add(1)
	in.cfg.Sink.Emit(ev)
}

// EVE ingests one EVE JSON line.
func (in *Ingester) EVE(line []byte) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	if len(line) > in.cfg.MaxLine {
		in.count(DropTooLarge)
		return
	}
	in.handle(ParseEVE(line, in.cfg.Now(), in.cfg.Limits))
}

// Syslog ingests one syslog message (without framing).
func (in *Ingester) Syslog(msg []byte) {
	if len(msg) > in.cfg.MaxLine {
		in.count(DropTooLarge)
		return
	}
	in.handle(ParseSyslog(msg, in.cfg.Now(), in.cfg.Syslog))
}

// readLines calls fn with each line of r (without the newline); lines
// longer than max are skipped whole and counted as too large.
func (in *Ingester) readLines(r io.Reader, fn func([]byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	skipping := false
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !skipping {
				buf = append(buf, chunk...)
				if len(buf) > in.cfg.MaxLine {
					in.count(DropTooLarge)
					skipping, buf = true, buf[:0]
				}
			}
			continue
		}
		if len(chunk) > 0 && (err == nil || len(bytes.TrimSpace(chunk)) > 0) {
			if skipping {
				skipping = false
			} else {
				line := chunk
				if len(buf) > 0 {
					buf = append(buf, chunk...)
					line = buf
				}
				line = bytes.TrimRight(line, "\r\n")
				if len(line) > in.cfg.MaxLine {
					in.count(DropTooLarge)
				} else {
					fn(line)
				}
			}
			buf = buf[:0]
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// ReadEVE ingests every line of r (an EVE file, a pipe) until EOF.
func (in *Ingester) ReadEVE(r io.Reader) error { return in.readLines(r, in.EVE) }

// serve accepts connections until ctx ends or ln fails, handling each in
// its own goroutine; it closes ln and waits for the handlers.
func serve(ctx context.Context, ln net.Listener, handle func(net.Conn)) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("ingest: accept: %w", err)
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
			handle(c)
		}()
	}
}

// ServeEVE reads newline-delimited EVE JSON from every connection accepted
// on ln (Suricata's unix_stream output, or TCP) until ctx ends.
func (in *Ingester) ServeEVE(ctx context.Context, ln net.Listener) error {
	return serve(ctx, ln, func(c net.Conn) {
		if err := in.readLines(c, in.EVE); err != nil && ctx.Err() == nil {
			in.log.Debug("ingest: EVE connection", "err", err)
		}
	})
}

// ServeSyslogTCP reads syslog over TCP from every connection accepted on
// ln until ctx ends: octet-counted framing (RFC 6587 3.4.1, "LEN SP MSG")
// when a frame starts with a digit, else one message per line.
func (in *Ingester) ServeSyslogTCP(ctx context.Context, ln net.Listener) error {
	return serve(ctx, ln, func(c net.Conn) {
		if err := in.readSyslogStream(c); err != nil && ctx.Err() == nil {
			in.log.Debug("ingest: syslog connection", "err", err)
		}
	})
}

func (in *Ingester) readSyslogStream(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		b, err := br.Peek(1)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch {
		case b[0] >= '1' && b[0] <= '9':
			var n int
			for {
				c, err := br.ReadByte()
				if err != nil {
					return err
				}
				if c == ' ' {
					break
				}
				if c < '0' || c > '9' || n > 1<<24 {
					in.count(DropMalformed)
					return errors.New("bad octet count") // framing lost: drop the connection
				}
				n = n*10 + int(c-'0')
			}
			if n > in.cfg.MaxLine {
				in.count(DropTooLarge)
				if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
					return err
				}
				continue
			}
			msg := make([]byte, n)
			if _, err := io.ReadFull(br, msg); err != nil {
				return err
			}
			in.Syslog(msg)
		case b[0] == '\n' || b[0] == '\r':
			_, _ = br.ReadByte()
		default:
			// Non-transparent framing: up to the newline.
			var line []byte
			too := false
			for {
				chunk, err := br.ReadSlice('\n')
				if !too {
					line = append(line, chunk...)
					if len(line) > in.cfg.MaxLine+2 {
						too, line = true, nil
					}
				}
				if errors.Is(err, bufio.ErrBufferFull) {
					continue
				}
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				if too {
					in.count(DropTooLarge)
				} else if len(bytes.TrimSpace(line)) > 0 {
					in.Syslog(line)
				}
				if err != nil {
					return nil
				}
				break
			}
		}
	}
}

// ServeSyslogUDP reads one syslog message per datagram from pc until ctx
// ends (it closes pc).
func (in *Ingester) ServeSyslogUDP(ctx context.Context, pc net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	buf := make([]byte, 64<<10)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("ingest: syslog UDP: %w", err)
		}
		in.Syslog(buf[:n])
	}
}

// TailOptions configure TailEVE.
type TailOptions struct {
	// FromStart reads the file from its beginning; by default tailing
	// starts at its end (a restart does not ingest the file again).
	FromStart bool
	// Poll is how often the file is checked for new lines and rotation;
	// default 250 ms.
	Poll time.Duration
}

// TailEVE follows an EVE JSON file (Suricata's eve.json) like tail -F
// until ctx ends: new complete lines are ingested; when the file is
// rotated (a new file at path, or truncated) the rest of the old file is
// read and the new one followed from its start. A missing file is waited
// for.
func (in *Ingester) TailEVE(ctx context.Context, path string, opts TailOptions) error {
	if opts.Poll <= 0 {
		opts.Poll = 250 * time.Millisecond
	}
	var f *os.File
	var fi os.FileInfo
	var off int64
	var buf []byte
	skipping := false
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	first := true
	chunk := make([]byte, 64<<10)
	drain := func() error {
		for {
			n, err := f.Read(chunk)
			off += int64(n)
			data := chunk[:n]
			for len(data) > 0 {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					if !skipping {
						buf = append(buf, data...)
						if len(buf) > in.cfg.MaxLine {
							in.count(DropTooLarge)
							skipping, buf = true, buf[:0]
						}
					}
					break
				}
				if skipping {
					skipping = false
				} else {
					buf = append(buf, data[:i]...)
					if len(buf) > in.cfg.MaxLine {
						in.count(DropTooLarge)
					} else {
						in.EVE(buf)
					}
				}
				buf = buf[:0]
				data = data[i+1:]
			}
			if err == io.EOF || n == 0 {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	t := time.NewTicker(opts.Poll)
	defer t.Stop()
	for {
		if f == nil {
			nf, err := os.Open(path)
			if err == nil {
				f = nf
				fi, _ = f.Stat()
				off = 0
				buf, skipping = buf[:0], false
				if first && !opts.FromStart {
					if off, err = f.Seek(0, io.SeekEnd); err != nil {
						return fmt.Errorf("ingest: %w", err)
					}
				}
			} else if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("ingest: %w", err)
			}
			first = false
		}
		if f != nil {
			if err := drain(); err != nil {
				return fmt.Errorf("ingest: reading %s: %w", path, err)
			}
			if cur, err := os.Stat(path); err == nil && (!os.SameFile(cur, fi) || cur.Size() < off) {
				if os.SameFile(cur, fi) {
					// Truncated in place (copytruncate): start again.
					off = 0
					if _, err := f.Seek(0, io.SeekStart); err != nil {
						return fmt.Errorf("ingest: %w", err)
					}
					buf, skipping = buf[:0], false
				} else {
					// Rotated: read what was appended to the old file since
					// the drain above, then follow the new one.
					if err := drain(); err != nil {
						return fmt.Errorf("ingest: reading %s: %w", path, err)
					}
					f.Close()
					f = nil
					continue
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
