package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jichitai/seccloud/detect"
)

// Kinds of rollup rows.
const (
	kindVolume     uint8 = 1 // a = module; c[0] events, c[1] bytes
	kindDetect     uint8 = 2 // sev, a = rule id, b = rule name; c[0] detections
	kindBreakout   uint8 = 3 // a = SaaS app; c[0] requests, c[1] bytes, c[2] blocked
	kindSite       uint8 = 4 // a = site; c[0] requests, c[1] bytes, c[2] cache hits, c[3] attacks blocked
	kindMail       uint8 = 5 // a = direction; c[0] messages, c[1] quarantined, c[2] bytes
	kindQuarantine uint8 = 6 // a = reason; c[0] messages
	kindMax        uint8 = 6
)

// maxField caps the strings of a row (a hostile rule id or site name must
// not grow the rollups without bound).
const maxField = 200

// key is one rollup row: an hour (UTC, hours since the Unix epoch) of one
// tenant, of one kind, with the kind's dimensions.
type key struct {
	kind   uint8
	sev    uint8
	hour   int32
	tenant string
	a, b   string
}

// counters are a row's sums; the meaning of each depends on the kind.
type counters [4]int64

// delta is a set of rows to add.
type delta map[key]*counters

func (d delta) add(k key, c0, c1, c2, c3 int64) {
	c := d[k]
	if c == nil {
		c = new(counters)
		d[k] = c
	}
	c[0] += c0
	c[1] += c1
	c[2] += c2
	c[3] += c3
}

func (d delta) merge(o delta) {
	for k, c := range o {
		d.add(k, c[0], c[1], c[2], c[3])
	}
}

func clean(s string) string {
	if len(s) > maxField {
		s = s[:maxField]
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		for len(s) > maxField {
			_, n := utf8.DecodeLastRuneInString(s)
			s = s[:len(s)-n]
		}
	}
	return s
}

// Detection reports whether ev counts as a detection (不正アクセス検知) in
// the reports: an alert (event.kind "alert"), or an event a policy rule
// decided to stop or would have stopped (report-only): a verdict with a rule
// id and an action of report, block, quarantine, sinkhole, drop or delete.
func Detection(ev *detect.Event) bool {
	if ev.Kind == "alert" {
		return true
	}
	if ev.Verdict.Rule == "" {
		return false
	}
	switch ev.Verdict.Action {
	case detect.ActionReport, detect.ActionBlock, detect.ActionQuarantine, detect.ActionSinkhole,
		detect.ActionDrop, detect.ActionDelete:
		return true
	}
	return false
}

// Level is the severity a detection is counted under: the event's own
// Severity when it carries one (a judged alert of module "detect" keeps even
// level 0), else 1 when the action stopped it and 2 when it passed
// (report-only, an IDS alert on allowed traffic) — the first two steps of
// detect/judge. Incidents keep their judged level separately.
func Level(ev *detect.Event) detect.Severity {
	if ev.Severity > 0 && ev.Severity.Valid() || ev.Module == "detect" && ev.Severity.Valid() {
		return ev.Severity
	}
	if ev.Verdict.Action.Stopped() {
		return detect.SeverityStopped
	}
	return detect.SeverityReached
}

// hourOf returns the hour index of t, clamped to the int32 range.
func hourOf(t time.Time) int32 {
	h := t.Unix() / 3600
	if t.Unix() < 0 && t.Unix()%3600 != 0 {
		h--
	}
	if h < 0 {
		return 0
	}
	if h > 1<<31-1 {
		return 1<<31 - 1
	}
	return int32(h)
}

func label(ev *detect.Event, keys ...string) string {
	for _, k := range keys {
		if v, ok := ev.Label(k); ok && v != "" {
			return v
		}
	}
	return ""
}

// classify adds the rows of one event to d.
func classify(d delta, ev *detect.Event, now time.Time) {
	t := ev.Time
	if t.IsZero() {
		t = now
	}
	h := hourOf(t)
	tenant := clean(ev.Tenant)
	module := clean(ev.Module)
	bytes := max(ev.BytesIn, 0) + max(ev.BytesOut, 0)
	d.add(key{kind: kindVolume, hour: h, tenant: tenant, a: module}, 1, bytes, 0, 0)
	stopped := ev.Verdict.Action.Stopped()
	if Detection(ev) {
		rule := ev.Verdict.Rule
		name := ev.Verdict.RuleName
		if rule == "" {
			rule = label(ev, "rule")
		}
		if rule == "" {
			rule = module
		}
		d.add(key{kind: kindDetect, sev: uint8(Level(ev)), hour: h, tenant: tenant, a: clean(rule), b: clean(name)}, 1, 0, 0, 0)
	}
	switch ev.Module {
	case "proxy":
		// proxy labels a SaaS app's requests "app" (with "egress" breakout,
		// or fallback when the breakout line was down).
		if app := label(ev, "app", "saas", "breakout"); app != "" {
			var blocked int64
			if stopped {
				blocked = 1
			}
			d.add(key{kind: kindBreakout, hour: h, tenant: tenant, a: clean(strings.ToLower(app))}, 1, bytes, blocked, 0)
		}
	case "waf":
		site := label(ev, "site")
		if site == "" {
			site = ev.DestDomain
		}
		if site != "" {
			var hit, attack int64
			switch label(ev, "cache", "cdn_cache") {
			case "hit", "stale", "revalidated", "HIT", "STALE":
				hit = 1
			}
			if stopped && ev.Verdict.Rule != "" {
				attack = 1
			}
			d.add(key{kind: kindSite, hour: h, tenant: tenant, a: clean(strings.ToLower(site))}, 1, bytes, hit, attack)
		}
	case "mail":
		if ev.Dataset != "" && ev.Dataset != "mail.message" {
			break
		}
		dir := ev.Email.Direction
		if dir == "" {
			dir = "unknown"
		}
		var q int64
		if ev.Verdict.Action == detect.ActionQuarantine {
			q = 1
			reason := ev.Verdict.Rule
			if reason == "" {
				reason = ev.Verdict.RuleName
			}
			if reason == "" {
				reason = ev.Verdict.Reason
			}
			if reason == "" {
				reason = "unknown"
			}
			d.add(key{kind: kindQuarantine, hour: h, tenant: tenant, a: clean(reason)}, 1, 0, 0, 0)
		}
		d.add(key{kind: kindMail, hour: h, tenant: tenant, a: clean(dir)}, 1, q, max(ev.File.Size, 0), 0)
	}
}

// Config configures a [Rollup].
type Config struct {
	// Dir holds the rollups (one snapshot file per JST month and a
	// write-ahead log). Required; created when missing (not in ReadOnly).
	Dir string
	// ReadOnly opens a snapshot for reports from another process: nothing is
	// written, WriteEvents fails.
	ReadOnly bool
	// WALSize is the log growth that triggers a checkpoint (the month
	// snapshots are rewritten and the log starts afresh). Zero means 8 MiB.
	WALSize int64
	// CheckpointEvery checkpoints at the first write after this long since
	// the last checkpoint. Zero means 10 minutes.
	CheckpointEvery time.Duration
	// Now stamps events with a zero Time; nil means time.Now.
	Now func() time.Time
	// Logger receives checkpoints and repairs; nil discards.
	Logger *slog.Logger
}

// Rollup keeps the report counts up to date at ingest: per UTC hour ×
// tenant, the event volume per module, detections per severity × signature,
// breakout use per SaaS app, public-site traffic per site and mail volume
// per direction and quarantine reason. It is a detect.BatchWriter (put it
// behind detect.NewAsync beside the store). Counts survive kill -9: every
// WriteEvents appends the batch's sums to a write-ahead log with one write;
// checkpoints fold the log into one snapshot file per JST month, so a
// month's report reads one small file whatever the number of events.
//
// All methods are safe for concurrent use.
type Rollup struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	wal      *os.File
	walSize  int64
	gen      uint64
	pending  map[int]delta // JST month (yyyymm) -> rows not yet in its snapshot
	lastCkpt time.Time
	err      error
	closed   bool
}

var _ detect.BatchWriter = (*Rollup)(nil)

// Errors.
var (
	ErrReadOnly = errors.New("report: rollup opened read-only")
	ErrClosed   = errors.New("report: rollup closed")
)

// Open opens (or creates) the rollups in cfg.Dir and replays the log.
func Open(cfg Config) (*Rollup, error) {
	if cfg.Dir == "" {
		return nil, errors.New("report: Config.Dir is required")
	}
	if cfg.WALSize <= 0 {
		cfg.WALSize = 8 << 20
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Rollup{cfg: cfg, log: log, pending: map[int]delta{}, lastCkpt: cfg.Now()}
	if !cfg.ReadOnly {
		if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
	}
	if err := r.recover(); err != nil {
		return nil, err
	}
	return r, nil
}

// Add counts events in memory only (no log write); WriteEvents is the
// durable form. For tests, benchmarks and rebuilding rollups from the store.
func (r *Rollup) Add(evs ...detect.Event) {
	d := delta{}
	now := r.cfg.Now()
	for i := range evs {
		classify(d, &evs[i], now)
	}
	r.mu.Lock()
	r.applyLocked(d)
	r.mu.Unlock()
}

func (r *Rollup) applyLocked(d delta) {
	for k, c := range d {
		m := monthOfHour(k.hour)
		p := r.pending[m]
		if p == nil {
			p = delta{}
			r.pending[m] = p
		}
		p.add(k, c[0], c[1], c[2], c[3])
	}
}

// WriteEvents counts a batch: the batch's sums are appended to the log with
// one write (the counts survive kill -9 once it returns) and applied.
func (r *Rollup) WriteEvents(ctx context.Context, evs []detect.Event) error {
	if r.cfg.ReadOnly {
		return detect.Permanent(ErrReadOnly)
	}
	d := delta{}
	now := r.cfg.Now()
	for i := range evs {
		classify(d, &evs[i], now)
	}
	frame := appendFrame(nil, d)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return detect.Permanent(ErrClosed)
	}
	if r.err != nil {
		return r.err
	}
	if _, err := r.wal.Write(frame); err != nil {
		// Cut a partial frame back off so the log stays readable.
		if terr := r.wal.Truncate(r.walSize); terr != nil {
			r.err = fmt.Errorf("report: rollup log: %w", errors.Join(err, terr))
			return r.err
		}
		_, _ = r.wal.Seek(r.walSize, 0)
		return fmt.Errorf("report: rollup log: %w", err)
	}
	r.walSize += int64(len(frame))
	r.applyLocked(d)
	if r.walSize >= r.cfg.WALSize || now.Sub(r.lastCkpt) >= r.cfg.CheckpointEvery {
		if err := r.checkpointLocked(); err != nil {
			r.log.Error("report: rollup checkpoint failed", "err", err)
		}
	}
	return nil
}

// Checkpoint folds the pending counts into the month snapshots and starts a
// new log.
func (r *Rollup) Checkpoint() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg.ReadOnly {
		return ErrReadOnly
	}
	if r.closed {
		return ErrClosed
	}
	return r.checkpointLocked()
}

// Close checkpoints and closes the log.
func (r *Rollup) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.cfg.ReadOnly {
		return nil
	}
	err := r.checkpointLocked()
	if r.wal != nil {
		err = errors.Join(err, r.wal.Close())
	}
	return err
}

// Month is one JST month's rollup rows (whole cloud).
type Month struct {
	// Start is the first instant of the month in JST; End the first of the next.
	Start, End time.Time
	rows       delta
}

// Month returns the rows of the JST month starting at start (any instant
// of the month will do): the month's snapshot plus the counts not yet
// checkpointed.
func (r *Rollup) Month(year int, month time.Month) (*Month, error) {
	start := time.Date(year, month, 1, 0, 0, 0, 0, JST)
	id := year*100 + int(month)
	r.mu.Lock()
	defer r.mu.Unlock()
	rows, _, err := readSnapshot(filepath.Join(r.cfg.Dir, snapName(id)))
	if err != nil {
		return nil, err
	}
	if rows == nil {
		rows = delta{}
	}
	rows.merge(r.pending[id])
	return &Month{Start: start, End: start.AddDate(0, 1, 0), rows: rows}, nil
}

// JST is Japan Standard Time (UTC+9, no daylight saving): report months and
// days are JST.
var JST = time.FixedZone("JST", 9*3600)

func monthOfHour(h int32) int {
	t := time.Unix(int64(h)*3600, 0).In(JST)
	return t.Year()*100 + int(t.Month())
}

func snapName(id int) string { return fmt.Sprintf("%06d.rollup", id) }
