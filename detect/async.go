package detect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Defaults of [AsyncConfig].
const (
	DefaultAsyncQueueSize    = 16384
	DefaultAsyncBatchSize    = 1024
	DefaultAsyncInterval     = 200 * time.Millisecond
	DefaultAsyncWriteTimeout = 30 * time.Second
	DefaultAsyncRetryMin     = 100 * time.Millisecond
	DefaultAsyncRetryMax     = 30 * time.Second
	DefaultAsyncLogInterval  = 10 * time.Second
)

// AsyncConfig configures [NewAsync]. Every field but Writer has a usable zero
// value.
type AsyncConfig struct {
	// Writer receives the batches. Required. Async calls it from a single
	// goroutine, one batch at a time, so it need not be safe for concurrent
	// use. Async never closes it.
	Writer BatchWriter

	// QueueSize bounds the number of events held in memory: queued, being
	// batched, and being written or retried. When it is reached Emit drops
	// the new event and counts it in Stats.Dropped. Zero means
	// DefaultAsyncQueueSize (16384 events, about 12 MB of Event values at
	// 720 bytes each plus the strings they reference). It must be at least
	// BatchSize.
	QueueSize int

	// BatchSize is the largest batch passed to Writer. A batch is written as
	// soon as it is full. Zero means DefaultAsyncBatchSize (1024).
	BatchSize int

	// Interval is the longest an event waits for its batch to fill: every
	// Interval the partial batch is written. Zero means
	// DefaultAsyncInterval (200 ms).
	Interval time.Duration

	// WriteTimeout bounds one WriteEvents call (its context deadline). Zero
	// means DefaultAsyncWriteTimeout (30 s).
	WriteTimeout time.Duration

	// RetryMin and RetryMax bound the exponential backoff (with ±25 %
	// jitter) between attempts to write a batch that failed. Zero means
	// DefaultAsyncRetryMin (100 ms) and DefaultAsyncRetryMax (30 s).
	RetryMin, RetryMax time.Duration

	// MaxAttempts is how many times a batch is tried before it is given up
	// and counted in Stats.Failed. Zero (the default) retries until the
	// write succeeds, the error is marked with [Permanent], or Close gives
	// up: while the destination is down the queue fills and new events are
	// dropped at Emit, oldest events are kept.
	MaxAttempts int

	// LogInterval is the shortest time between two log records about
	// dropped events; each record carries the count since the previous one.
	// Zero means DefaultAsyncLogInterval (10 s).
	LogInterval time.Duration

	// Logger receives drop and write-failure records. Nil discards them.
	// Emit never logs: the writer goroutine does.
	Logger *slog.Logger
}

// AsyncStats are the counters of an [Async] sink. They only grow, except
// Queued. Every snapshot satisfies Emitted == Written + Failed + Queued;
// after Close returns, Queued is 0.
type AsyncStats struct {
	// Emitted counts events accepted into the queue.
	Emitted uint64
	// Dropped counts events refused by Emit because the queue was full or
	// the sink closed. They were never queued.
	Dropped uint64
	// Written counts events the Writer reported durable.
	Written uint64
	// Failed counts accepted events that were given up: the batch failed
	// MaxAttempts times or with a [Permanent] error, or Close's context
	// ended before they were written.
	Failed uint64
	// WriteErrors counts failed WriteEvents calls (each retry counts).
	WriteErrors uint64
	// Queued is the number of events held now (queued or being written).
	Queued uint64
}

// Async is a [Sink] that queues events in a bounded in-memory queue and
// writes them in batches to a [BatchWriter] from one background goroutine,
// so the data path never waits for the destination.
//
// Policy. Emit never blocks and never allocates once the queue's buffers
// exist: when QueueSize events are held, the new event is dropped and
// counted (Stats.Dropped) and the writer goroutine logs the drops at most
// once per LogInterval. A batch is written when BatchSize events are queued
// or Interval has passed. A failing write is retried with exponential
// backoff between RetryMin and RetryMax, keeping the batch and its order;
// the queue stays bounded, so when the destination is down for long the
// oldest QueueSize events are kept and the newest are dropped. Retries may
// deliver a batch twice when the destination stored it but reported an
// error (at-least-once).
//
// Async is safe for concurrent use. Emit after Close drops the event.
type Async struct {
	w    BatchWriter
	cfg  AsyncConfig
	log  *slog.Logger
	kick chan struct{} // buffered(1): a batch is full or a flush is wanted

	mu       sync.Mutex
	cur      []Event   // batch being filled
	full     [][]Event // full batches, oldest first
	free     [][]Event // recycled buffers
	queued   int       // events in cur + full + the batch being written
	emitted  uint64
	dropped  uint64
	done     uint64        // events written or failed
	progress chan struct{} // closed and replaced when done grows
	flushReq bool          // write the partial batch now
	closed   bool

	written     uint64
	failed      uint64
	writeErrors uint64

	runCtx    context.Context // cancelled when Close gives up
	runCancel context.CancelFunc
	stopped   chan struct{} // closed when the goroutine exits
	closeOnce sync.Once
	closeErr  error

	// Owned by the writer goroutine.
	lastLog     time.Time
	lastDropped uint64
}

var _ Sink = (*Async)(nil)

// NewAsync validates cfg, applies defaults and starts the writer goroutine.
// Call Close to flush and stop it.
func NewAsync(cfg AsyncConfig) (*Async, error) {
	if cfg.Writer == nil {
		return nil, errors.New("detect: async: Writer is required")
	}
	def := func(name string, v *int, d int) error {
		if *v < 0 {
			return fmt.Errorf("detect: async: %s %d is negative", name, *v)
		}
		if *v == 0 {
			*v = d
		}
		return nil
	}
	defd := func(name string, v *time.Duration, d time.Duration) error {
		if *v < 0 {
			return fmt.Errorf("detect: async: %s %v is negative", name, *v)
		}
		if *v == 0 {
			*v = d
		}
		return nil
	}
	for _, err := range []error{
		def("QueueSize", &cfg.QueueSize, DefaultAsyncQueueSize),
		def("BatchSize", &cfg.BatchSize, DefaultAsyncBatchSize),
		def("MaxAttempts", &cfg.MaxAttempts, 0),
		defd("Interval", &cfg.Interval, DefaultAsyncInterval),
		defd("WriteTimeout", &cfg.WriteTimeout, DefaultAsyncWriteTimeout),
		defd("RetryMin", &cfg.RetryMin, DefaultAsyncRetryMin),
		defd("RetryMax", &cfg.RetryMax, DefaultAsyncRetryMax),
		defd("LogInterval", &cfg.LogInterval, DefaultAsyncLogInterval),
	} {
		if err != nil {
			return nil, err
		}
	}
	if cfg.QueueSize < cfg.BatchSize {
		return nil, fmt.Errorf("detect: async: QueueSize %d is smaller than BatchSize %d", cfg.QueueSize, cfg.BatchSize)
	}
	if cfg.RetryMax < cfg.RetryMin {
		return nil, fmt.Errorf("detect: async: RetryMax %v is smaller than RetryMin %v", cfg.RetryMax, cfg.RetryMin)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Async{
		w:        cfg.Writer,
		cfg:      cfg,
		log:      log,
		kick:     make(chan struct{}, 1),
		cur:      make([]Event, 0, cfg.BatchSize),
		progress: make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	a.runCtx, a.runCancel = context.WithCancel(context.Background())
	go a.run()
	return a, nil
}

// Emit queues e, or drops and counts it when the queue is full or the sink
// is closed. It never blocks on the destination.
func (a *Async) Emit(e Event) {
	a.mu.Lock()
	if a.closed || a.queued >= a.cfg.QueueSize {
		a.dropped++
		a.mu.Unlock()
		return
	}
	a.cur = append(a.cur, e)
	a.queued++
	a.emitted++
	if len(a.cur) < a.cfg.BatchSize {
		a.mu.Unlock()
		return
	}
	a.full = append(a.full, a.cur)
	if n := len(a.free); n > 0 {
		a.cur = a.free[n-1]
		a.free = a.free[:n-1]
	} else {
		a.cur = make([]Event, 0, a.cfg.BatchSize)
	}
	a.mu.Unlock()
	a.signal()
}

func (a *Async) signal() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the counters.
func (a *Async) Stats() AsyncStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return AsyncStats{
		Emitted:     a.emitted,
		Dropped:     a.dropped,
		Written:     a.written,
		Failed:      a.failed,
		WriteErrors: a.writeErrors,
		Queued:      uint64(a.queued),
	}
}

// Flush writes every event emitted before the call and returns when they
// are written or given up (see AsyncStats.Failed), or when ctx ends; then
// it returns ctx's error wrapped. The events stay queued after ctx ends.
func (a *Async) Flush(ctx context.Context) error {
	a.mu.Lock()
	target := a.emitted
	a.mu.Unlock()
	return a.waitDone(ctx, target, "flush")
}

func (a *Async) waitDone(ctx context.Context, target uint64, op string) error {
	for {
		a.mu.Lock()
		if a.done >= target {
			a.mu.Unlock()
			return nil
		}
		ch := a.progress
		a.flushReq = true
		a.mu.Unlock()
		a.signal()
		select {
		case <-ch:
		case <-a.stopped:
			a.mu.Lock()
			done := a.done
			a.mu.Unlock()
			if done >= target {
				return nil
			}
			return fmt.Errorf("detect: async %s: sink stopped with %d events unwritten", op, target-done)
		case <-ctx.Done():
			return fmt.Errorf("detect: async %s: %w", op, ctx.Err())
		}
	}
}

// Close stops accepting events, writes what is queued and stops the writer
// goroutine. If ctx ends first, the write in progress is cancelled, the
// events still queued are counted in Stats.Failed and Close returns an
// error wrapping ctx's error. Close does not close the Writer. Calls after
// the first return the first call's result. Close waits for a write in
// progress to return, so the Writer must honour its context.
func (a *Async) Close(ctx context.Context) error {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.closed = true
		target := a.emitted
		a.mu.Unlock()
		a.signal()
		a.mu.Lock()
		failedBefore := a.failed
		a.mu.Unlock()
		err := a.waitDone(ctx, target, "close")
		a.runCancel()
		<-a.stopped
		if err != nil {
			a.mu.Lock()
			left := a.queued
			a.queued = 0
			a.done += uint64(left)
			a.cur = a.cur[:0]
			a.full = nil
			a.failed += uint64(left)
			lost := a.failed - failedBefore
			a.mu.Unlock()
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			a.closeErr = fmt.Errorf("detect: async close: %d events not written: %w", lost, err)
		}
	})
	return a.closeErr
}

// take returns the next batch to write, or nil. A partial batch is taken
// when force is set, a flush was requested or the sink is closed.
func (a *Async) take(force bool) []Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.full) > 0 {
		b := a.full[0]
		a.full[0] = nil
		a.full = a.full[1:]
		return b
	}
	if len(a.cur) == 0 {
		a.flushReq = false
		return nil
	}
	if !force && !a.flushReq && !a.closed {
		return nil
	}
	b := a.cur
	if n := len(a.free); n > 0 {
		a.cur = a.free[n-1]
		a.free = a.free[:n-1]
	} else {
		a.cur = make([]Event, 0, a.cfg.BatchSize)
	}
	return b
}

// finish accounts for a batch, written or given up, and recycles its
// buffer.
func (a *Async) finish(b []Event, written bool) {
	n := len(b)
	clear(b)
	a.mu.Lock()
	if written {
		a.written += uint64(n)
	} else {
		a.failed += uint64(n)
	}
	a.queued -= n
	a.done += uint64(n)
	close(a.progress)
	a.progress = make(chan struct{})
	if len(a.free) < a.cfg.QueueSize/a.cfg.BatchSize+1 {
		a.free = append(a.free, b[:0])
	}
	a.mu.Unlock()
}

func (a *Async) run() {
	defer close(a.stopped)
	tick := time.NewTicker(a.cfg.Interval)
	defer tick.Stop()
	logTick := time.NewTicker(a.cfg.LogInterval)
	defer logTick.Stop()
	a.lastLog = time.Now()
	for {
		force := false
		select {
		case <-a.kick:
		case <-tick.C:
			force = true
		case <-logTick.C:
		case <-a.runCtx.Done():
			return
		}
		for {
			b := a.take(force)
			if b == nil {
				break
			}
			a.write(b)
			if a.runCtx.Err() != nil {
				return
			}
		}
		a.logDrops()
		a.mu.Lock()
		closed := a.closed && a.queued == 0
		a.mu.Unlock()
		if closed {
			return
		}
	}
}

// logDrops logs the drops since the last record, at most once per
// LogInterval. Only the writer goroutine calls it.
func (a *Async) logDrops() {
	now := time.Now()
	if now.Sub(a.lastLog) < a.cfg.LogInterval {
		return
	}
	a.mu.Lock()
	d, q := a.dropped, a.queued
	a.mu.Unlock()
	if d > a.lastDropped {
		a.log.Warn("detect: async queue full, events dropped",
			"dropped", d-a.lastDropped, "dropped_total", d, "queued", q,
			"since", now.Sub(a.lastLog).Round(time.Millisecond))
		a.lastDropped = d
	}
	a.lastLog = now
}

// write writes b, retrying per the policy, then accounts for it.
func (a *Async) write(b []Event) {
	backoff := a.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(a.runCtx, a.cfg.WriteTimeout)
		err := a.w.WriteEvents(ctx, b)
		cancel()
		if err == nil {
			a.finish(b, true)
			return
		}
		a.mu.Lock()
		a.writeErrors++
		a.mu.Unlock()
		giveUp := errors.Is(err, errPermanent) ||
			(a.cfg.MaxAttempts > 0 && attempt >= a.cfg.MaxAttempts) ||
			a.runCtx.Err() != nil
		if giveUp {
			a.log.Error("detect: async write failed, batch given up",
				"events", len(b), "attempts", attempt, "err", err)
			a.finish(b, false)
			return
		}
		a.log.Warn("detect: async write failed, will retry",
			"events", len(b), "attempt", attempt, "retry_in", backoff, "err", err)
		// ±25 % jitter.
		d := backoff - backoff/4 + rand.N(backoff/2+1)
		a.sleep(d)
		backoff = min(backoff*2, a.cfg.RetryMax)
	}
}

// sleep waits d, logging drops meanwhile, or until Close gives up.
func (a *Async) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(min(a.cfg.LogInterval, d))
	defer tick.Stop()
	for {
		select {
		case <-t.C:
			return
		case <-tick.C:
			a.logDrops()
		case <-a.runCtx.Done():
			return
		}
	}
}

var errPermanent = errors.New("permanent")

type permanentError struct{ err error }

func (p permanentError) Error() string        { return p.err.Error() }
func (p permanentError) Unwrap() error        { return p.err }
func (p permanentError) Is(target error) bool { return target == errPermanent }

// Permanent marks err as not worth retrying: a [BatchWriter] returns
// Permanent(err) when the batch can never be written (e.g. refused as
// malformed), and [Async] gives the batch up at once, counting it in
// AsyncStats.Failed. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err or an error it wraps was marked with
// [Permanent].
func IsPermanent(err error) bool { return errors.Is(err, errPermanent) }
