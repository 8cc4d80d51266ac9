package ratelimit

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Budget is a byte budget that the shaping wrappers charge: a *Limiter
// whose Rate is in bytes per second, or the per-tenant handle of a Fair
// scheduler (Fair.Tenant). Share one Budget between all connections of a
// tenant to shape the tenant as a whole.
type Budget interface {
	// WaitN blocks until n bytes may pass. n is never above Burst.
	WaitN(ctx context.Context, n int) error
	// Burst is the largest n that WaitN accepts; the wrappers move data in
	// chunks of at most this size.
	Burst() int
}

var (
	_ Budget = (*Limiter)(nil)
	_ Budget = (*FairTenant)(nil)
)

// Reader shapes reads from an io.Reader: each Read returns at most Burst
// bytes and then waits until the budget has paid for them, so the reader
// sees at most the budget's rate over time. The zero Reader is not usable;
// create one with NewReader. A Reader is as safe for concurrent use as the
// reader it wraps.
type Reader struct {
	r   io.Reader
	b   Budget
	ctx context.Context
}

// NewReader returns r shaped by b. A nil b leaves r unshaped.
func NewReader(r io.Reader, b Budget) *Reader { return NewReaderContext(context.Background(), r, b) }

// NewReaderContext is NewReader with a context that, once done, makes the
// waits end with the context's error.
func NewReaderContext(ctx context.Context, r io.Reader, b Budget) *Reader {
	return &Reader{r: r, b: b, ctx: ctx}
}

func (r *Reader) Read(p []byte) (int, error) {
	if r.b == nil {
		return r.r.Read(p)
	}
	if max := r.b.Burst(); len(p) > max {
		p = p[:max]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if werr := r.b.WaitN(r.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// Writer shapes writes to an io.Writer: each Write is cut into chunks of at
// most Burst bytes, and each chunk waits for the budget before it is
// written. The zero Writer is not usable; create one with NewWriter. A
// Writer is as safe for concurrent use as the writer it wraps.
type Writer struct {
	w   io.Writer
	b   Budget
	ctx context.Context
}

// NewWriter returns w shaped by b. A nil b leaves w unshaped.
func NewWriter(w io.Writer, b Budget) *Writer { return NewWriterContext(context.Background(), w, b) }

// NewWriterContext is NewWriter with a context that, once done, makes the
// waits end with the context's error.
func NewWriterContext(ctx context.Context, w io.Writer, b Budget) *Writer {
	return &Writer{w: w, b: b, ctx: ctx}
}

func (w *Writer) Write(p []byte) (int, error) {
	return shapedWrite(w.ctx, w.w, w.b, p)
}

func shapedWrite(ctx context.Context, w io.Writer, b Budget, p []byte) (int, error) {
	if b == nil {
		return w.Write(p)
	}
	max := b.Burst()
	written := 0
	for len(p) > 0 {
		chunk := p
		if len(chunk) > max {
			chunk = chunk[:max]
		}
		if err := b.WaitN(ctx, len(chunk)); err != nil {
			return written, err
		}
		n, err := w.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// Conn shapes a net.Conn in both directions: reads charge the read budget
// and writes the write budget (either may be nil for no shaping). Waits
// honour the deadlines set on the Conn, failing with os.ErrDeadlineExceeded
// like the connection would, and end when the Conn is closed. The zero
// Conn is not usable; create one with NewConn. A Conn is safe for
// concurrent use as a net.Conn is: one reader and one writer at a time.
type Conn struct {
	net.Conn
	read, write   Budget
	ctx           context.Context
	cancel        context.CancelFunc
	closeOnce     sync.Once
	readDeadline  atomic.Int64 // UnixNano; 0 = none
	writeDeadline atomic.Int64
}

var _ net.Conn = (*Conn)(nil)

// NewConn returns c shaped by the read and write budgets. To give a tenant
// one budget per direction, pass the same two budgets to all the tenant's
// connections.
func NewConn(c net.Conn, read, write Budget) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &Conn{Conn: c, read: read, write: write, ctx: ctx, cancel: cancel}
}

func (c *Conn) waitCtx(dl *atomic.Int64) (context.Context, context.CancelFunc) {
	if d := dl.Load(); d != 0 {
		return context.WithDeadline(c.ctx, time.Unix(0, d))
	}
	return c.ctx, func() {}
}

func (c *Conn) mapErr(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrDeadline):
		return os.ErrDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return net.ErrClosed
	}
	return err
}

// Read reads at most Burst bytes and waits for the read budget to pay for
// what was read.
func (c *Conn) Read(p []byte) (int, error) {
	if c.read == nil {
		return c.Conn.Read(p)
	}
	if max := c.read.Burst(); len(p) > max {
		p = p[:max]
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		ctx, cancel := c.waitCtx(&c.readDeadline)
		werr := c.read.WaitN(ctx, n)
		cancel()
		if werr != nil {
			return n, c.mapErr(werr)
		}
	}
	return n, err
}

// Write writes p in chunks of at most Burst bytes, each after the write
// budget has paid for it.
func (c *Conn) Write(p []byte) (int, error) {
	if c.write == nil {
		return c.Conn.Write(p)
	}
	ctx, cancel := c.waitCtx(&c.writeDeadline)
	defer cancel()
	n, err := shapedWrite(ctx, c.Conn, c.write, p)
	return n, c.mapErr(err)
}

// Close closes the connection and ends any wait in progress.
func (c *Conn) Close() error {
	c.closeOnce.Do(c.cancel)
	return c.Conn.Close()
}

func storeDeadline(dl *atomic.Int64, t time.Time) {
	if t.IsZero() || t.Year() > 2200 { // no deadline, or one UnixNano cannot hold
		dl.Store(0)
		return
	}
	dl.Store(t.UnixNano())
}

// SetDeadline sets the read and write deadlines of the connection and of
// the waits for budget.
func (c *Conn) SetDeadline(t time.Time) error {
	storeDeadline(&c.readDeadline, t)
	storeDeadline(&c.writeDeadline, t)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline sets the deadline of reads and of their waits.
func (c *Conn) SetReadDeadline(t time.Time) error {
	storeDeadline(&c.readDeadline, t)
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the deadline of writes and of their waits.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	storeDeadline(&c.writeDeadline, t)
	return c.Conn.SetWriteDeadline(t)
}
