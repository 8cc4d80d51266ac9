package incident

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/judge"
	"github.com/jichitai/seccloud/detect/rules"
)

// Defaults of [Config].
const (
	DefaultWindow    = time.Hour
	DefaultMaxEvents = 20
	JournalName      = "incidents.jsonl"
)

// Waker is told when an incident may need notifying (opened, or its
// severity raised). Wake must not block; notify.Notifier implements it.
type Waker interface {
	Wake()
}

// Config configures a [Manager].
type Config struct {
	// Dir is the directory of the journal (incidents.jsonl). Required; it
	// is created if missing.
	Dir string
	// Judge judges each alert; nil means &judge.Default{} (no
	// vulnerability lookup).
	Judge judge.Judge
	// Window groups alerts: an alert of the same tenant, terminal and rule
	// whose first event is at most Window after the incident's last event
	// joins it (count grows) instead of opening a new incident. Zero means
	// DefaultWindow (1 h).
	Window time.Duration
	// MaxEvents is how many events an incident keeps as a sample (the
	// count goes on). Zero means DefaultMaxEvents (20).
	MaxEvents int
	// Ladder returns the notification ladder of a tenant, snapshotted into
	// each incident when it opens; nil means no ladder.
	Ladder func(tenant string) []Step
	// Waker is woken when an incident opens or its severity rises; nil
	// means nobody.
	Waker Waker
	// Now gives the wall-clock time; nil means time.Now.
	Now func() time.Time
	// NoSync skips fsync (tests, benchmarks). By default every record but
	// the event-count updates is fsynced before the call returns.
	NoSync bool
	// CompactSize compacts the journal (see Manager.Compact) when it has
	// grown past this size and twice its size after the last compaction.
	// Zero means 64 MiB; negative never compacts on its own.
	CompactSize int64
	// Logger receives journal errors; nil discards.
	Logger *slog.Logger
}

// Manager groups alerts into incidents, keeps their lifecycle and timeline,
// and persists everything in an append-only JSON-lines journal replayed on
// Open. It implements rules.Handler. Safe for concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	f         *os.File
	incs      map[string]*Incident
	order     []string          // ids in opening order
	latest    map[string]string // dedup key -> id of the latest incident
	seq       int
	dirty     map[string]*pending // count updates not yet in the journal
	size      int64               // journal bytes written in whole records
	compactAt int64               // size that triggers the next compaction
	closed    bool
	err       error // first journal write error
}

var _ rules.Handler = (*Manager)(nil)

// record is one journal line.
type record struct {
	Op     string         `json:"op"` // "open", "seen", "entry"
	ID     string         `json:"id,omitempty"`
	Inc    *Incident      `json:"inc,omitempty"`
	Count  int            `json:"count,omitempty"`
	Last   time.Time      `json:"last,omitzero"`
	Events []detect.Event `json:"events,omitempty"`
	Entry  *Entry         `json:"entry,omitempty"`
}

// Open opens (or creates) the journal in cfg.Dir and replays it. A torn last
// line (a crash in the middle of a write) is truncated away; a corrupt line
// elsewhere is an error naming the line.
func Open(cfg Config) (*Manager, error) {
	if cfg.Dir == "" {
		return nil, errors.New("incident: Config.Dir is required")
	}
	if cfg.Window < 0 || cfg.MaxEvents < 0 {
		return nil, errors.New("incident: Window and MaxEvents must not be negative")
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxEvents == 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	if cfg.Judge == nil {
		cfg.Judge = &judge.Default{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("incident: %w", err)
	}
	path := filepath.Join(cfg.Dir, JournalName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("incident: %w", err)
	}
	m := &Manager{cfg: cfg, log: log, f: f, incs: map[string]*Incident{}, latest: map[string]string{}, dirty: map[string]*pending{}}
	if err := m.replay(path); err != nil {
		f.Close()
		return nil, err
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("incident: %w", err)
	}
	m.size = end
	if cfg.CompactSize == 0 {
		m.cfg.CompactSize = 64 << 20
	}
	m.compactAt = max(m.cfg.CompactSize, 2*end)
	return m, nil
}

func (m *Manager) replay(path string) error {
	if _, err := m.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("incident: %w", err)
	}
	r := bufio.NewReaderSize(m.f, 1<<16)
	var good int64
	line := 0
	for {
		b, err := r.ReadBytes('\n')
		if len(b) > 0 && err != nil {
			// A last line without its newline: torn by a crash.
			return m.truncate(path, good, line+1, "no newline")
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("incident: reading %s: %w", path, err)
		}
		line++
		var rec record
		perr := json.Unmarshal(bytes.TrimSpace(b), &rec)
		if perr == nil {
			perr = m.applyRecord(&rec)
		}
		if perr != nil {
			// Corrupt: torn tail when nothing follows, else refuse.
			if _, err := r.Peek(1); err == io.EOF {
				return m.truncate(path, good, line, perr.Error())
			}
			return fmt.Errorf("incident: %s:%d: corrupt record: %v", path, line, perr)
		}
		good += int64(len(b))
	}
}

func (m *Manager) truncate(path string, at int64, line int, why string) error {
	m.log.Warn("incident: truncating torn journal tail", "file", path, "line", line, "offset", at, "why", why)
	if err := m.f.Truncate(at); err != nil {
		return fmt.Errorf("incident: truncating %s: %w", path, err)
	}
	return m.f.Sync()
}

// applyRecord applies one record to the in-memory state.
func (m *Manager) applyRecord(rec *record) error {
	switch rec.Op {
	case "open":
		if rec.Inc == nil || rec.Inc.ID == "" {
			return errors.New("open without incident")
		}
		inc := rec.Inc
		if _, dup := m.incs[inc.ID]; dup {
			return fmt.Errorf("incident %s opened twice", inc.ID)
		}
		m.incs[inc.ID] = inc
		m.order = append(m.order, inc.ID)
		m.latest[dedupKey(inc.Tenant, inc.Terminal, inc.Rule)] = inc.ID
		var n int
		if _, err := fmt.Sscanf(inc.ID[strings.LastIndexByte(inc.ID, '-')+1:], "%d", &n); err == nil && n > m.seq {
			m.seq = n
		}
	case "seen":
		inc, ok := m.incs[rec.ID]
		if !ok {
			return fmt.Errorf("seen for unknown incident %s", rec.ID)
		}
		inc.Count += rec.Count
		if rec.Last.After(inc.Last) {
			inc.Last = rec.Last
		}
		inc.Events = append(inc.Events, rec.Events...)
	case "entry":
		inc, ok := m.incs[rec.ID]
		if !ok || rec.Entry == nil {
			return fmt.Errorf("entry for unknown incident %q", rec.ID)
		}
		inc.apply(*rec.Entry)
	default:
		return fmt.Errorf("unknown op %q", rec.Op)
	}
	return nil
}

func dedupKey(tenant, terminal, rule string) string {
	return tenant + "\x00" + terminal + "\x00" + rule
}

// pending is a count update applied in memory but not yet journaled.
type pending struct {
	count int
	last  time.Time
	since time.Time // wall time of the first unjournaled update
}

// CoalesceEvery is how long count updates of a grouped incident are
// gathered in memory before one "seen" record is journaled (a flood of
// 1,000 alerts a second writes one record a second, not 1,000). Any other
// record of the incident, and Close, flush them first.
const CoalesceEvery = time.Second

// flush journals the pending count update of id (without re-applying it).
// Called with m.mu held.
func (m *Manager) flush(id string) error {
	p, ok := m.dirty[id]
	if !ok {
		return nil
	}
	delete(m.dirty, id)
	return m.writeRaw(&record{Op: "seen", ID: id, Count: p.count, Last: p.last}, false)
}

// write appends a record to the journal (fsynced when sync is set) and
// applies it. Called with m.mu held.
func (m *Manager) write(rec *record, sync bool) error {
	if rec.ID != "" {
		if err := m.flush(rec.ID); err != nil {
			return err
		}
	}
	if err := m.writeRaw(rec, sync); err != nil {
		return err
	}
	if err := m.applyRecord(rec); err != nil {
		return err
	}
	m.maybeCompact()
	return nil
}

// writeRaw appends a record to the journal. Called with m.mu held.
func (m *Manager) writeRaw(rec *record, sync bool) error {
	if m.closed {
		return ErrClosed
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("incident: encoding record: %w", err)
	}
	b = append(b, '\n')
	if _, err := m.f.Write(b); err != nil {
		// Cut a partial line off so later records stay readable.
		if terr := m.f.Truncate(m.size); terr == nil {
			_, _ = m.f.Seek(m.size, io.SeekStart)
		}
		m.fail(err)
		return fmt.Errorf("incident: journal: %w", err)
	}
	m.size += int64(len(b))
	if sync && !m.cfg.NoSync {
		if err := m.f.Sync(); err != nil {
			m.fail(err)
			return fmt.Errorf("incident: journal sync: %w", err)
		}
	}
	return nil
}

// maybeCompact compacts the journal once it has grown enough. Called with
// m.mu held, only when the in-memory state holds every journaled record
// (after it was applied), since compaction writes that state.
func (m *Manager) maybeCompact() {
	if m.cfg.CompactSize <= 0 || m.size < m.compactAt {
		return
	}
	if err := m.compactLocked(); err != nil {
		m.log.Warn("incident: journal compaction failed; it goes on growing", "err", err)
		m.compactAt = m.size + m.cfg.CompactSize
	}
}

func (m *Manager) fail(err error) {
	if m.err == nil {
		m.err = err
	}
	m.log.Error("incident: journal write failed", "err", err)
}

// HandleAlert judges an alert and opens an incident or groups the alert into
// the open one of the same tenant, terminal and rule.
func (m *Manager) HandleAlert(a *rules.Alert) {
	if _, err := m.Add(a); err != nil {
		m.log.Error("incident: alert lost", "rule", a.Rule.ID, "tenant", a.Tenant, "err", err)
	}
}

// Add is HandleAlert returning the incident's id and any journal error.
func (m *Manager) Add(a *rules.Alert) (string, error) {
	j := m.cfg.Judge.Judge(judge.FromAlert(a))
	now := m.cfg.Now()
	m.mu.Lock()
	id, wake, err := m.add(a, j, now)
	m.mu.Unlock()
	if wake && m.cfg.Waker != nil {
		m.cfg.Waker.Wake()
	}
	return id, err
}

func (m *Manager) add(a *rules.Alert, j judge.Judgement, now time.Time) (string, bool, error) {
	key := dedupKey(a.Tenant, a.Terminal, a.Rule.ID)
	first, last := a.First, a.Last
	if first.IsZero() {
		first, last = now, now
	}
	if id, ok := m.latest[key]; ok {
		inc := m.incs[id]
		if !inc.State.Closed() && first.Sub(inc.Last) <= m.cfg.Window {
			if room := m.cfg.MaxEvents - len(inc.Events); room > 0 {
				rec := &record{Op: "seen", ID: id, Count: max(a.Count, 1), Last: last, Events: a.Events[:min(room, len(a.Events))]}
				if err := m.write(rec, false); err != nil {
					return id, false, err
				}
			} else {
				// Sample full: only the count moves. Apply now, journal
				// at most once per CoalesceEvery.
				inc.Count += max(a.Count, 1)
				if last.After(inc.Last) {
					inc.Last = last
				}
				p := m.dirty[id]
				if p == nil {
					p = &pending{since: now}
					m.dirty[id] = p
				}
				p.count += max(a.Count, 1)
				if last.After(p.last) {
					p.last = last
				}
				if now.Sub(p.since) >= CoalesceEvery {
					if err := m.flush(id); err != nil {
						return id, false, err
					}
				}
			}
			if j.Severity > inc.Severity {
				err := m.write(&record{Op: "entry", ID: id, Entry: &Entry{Time: now, Kind: KindSeverity, Severity: j.Severity, Evidence: j.Evidence}}, true)
				return id, true, err
			}
			return id, false, nil
		}
	}
	m.seq++
	id := fmt.Sprintf("INC-%s-%05d", now.In(judge.JST).Format("20060102"), m.seq)
	title := a.Rule.Title
	if title == "" {
		title = a.Rule.ID
	}
	inc := &Incident{ID: id, Tenant: a.Tenant, Terminal: a.Terminal, Rule: a.Rule.ID, RuleTitle: title,
		Group: a.Group, Host: j.Host, State: StateOpen, Count: max(a.Count, 1), First: first, Last: last,
		Opened: now, Events: a.Events[:min(m.cfg.MaxEvents, len(a.Events))]}
	if m.cfg.Ladder != nil {
		inc.Ladder = m.cfg.Ladder(a.Tenant)
	}
	// The open record carries the opening entry: one atomic line.
	inc.apply(Entry{Time: now, Kind: KindOpened, Severity: j.Severity, Evidence: j.Evidence})
	if err := m.write(&record{Op: "open", Inc: inc}, true); err != nil {
		m.seq--
		return "", false, err
	}
	return id, true, nil
}

// Get returns a copy of the incident with the given id.
func (m *Manager) Get(id string) (Incident, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	inc, ok := m.incs[id]
	if !ok {
		return Incident{}, false
	}
	return inc.clone(), true
}

// Filter selects incidents for List. Zero fields match everything.
type Filter struct {
	Tenant      string
	MinSeverity detect.Severity
	// Active selects incidents not closed (open, notified, acknowledged).
	Active bool
	// Since selects incidents whose last event is at or after Since.
	Since time.Time
}

// List returns copies of the incidents matching f, oldest first.
func (m *Manager) List(f Filter) []Incident {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Incident
	for _, id := range m.order {
		inc := m.incs[id]
		if f.Tenant != "" && inc.Tenant != f.Tenant || inc.Severity < f.MinSeverity ||
			f.Active && inc.State.Closed() || !f.Since.IsZero() && inc.Last.Before(f.Since) {
			continue
		}
		out = append(out, inc.clone())
	}
	return out
}

// Record appends an entry to an incident's timeline (durably) and applies
// it: notifications, failures, acknowledgements, notes. A zero Time is set
// to now. Record does not check the lifecycle; use SetState, Ack, Assign
// and Note for operator actions.
func (m *Manager) Record(id string, e Entry) error {
	if e.Time.IsZero() {
		e.Time = m.cfg.Now()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.incs[id]; !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return m.write(&record{Op: "entry", ID: id, Entry: &e}, true)
}

// SetState moves an incident to state to on behalf of by (an operator),
// with an optional note. Allowed: open → notified; open/notified →
// acknowledged; any not closed → resolved or false_positive.
func (m *Manager) SetState(id string, to State, by, note string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	inc, ok := m.incs[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if !canTransition(inc.State, to) {
		return fmt.Errorf("%w: %s → %s", ErrTransition, inc.State, to)
	}
	return m.write(&record{Op: "entry", ID: id, Entry: &Entry{Time: m.cfg.Now(), Kind: KindState, State: to, By: by, Text: note}}, true)
}

// Ack records a confirmed receipt by by over channel ("link", "phone",
// ...), with token the acknowledgement token's id when there was one. An
// ack of an incident already acknowledged is recorded too (each contact's
// receipt counts) and the state stays.
func (m *Manager) Ack(id, by, channel, token, note string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	inc, ok := m.incs[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if inc.State.Closed() {
		return fmt.Errorf("%w: %s is %s", ErrTransition, id, inc.State)
	}
	return m.write(&record{Op: "entry", ID: id, Entry: &Entry{Time: m.cfg.Now(), Kind: KindAck, By: by, Channel: channel, Token: token, Text: note}}, true)
}

// Note adds a note by by.
func (m *Manager) Note(id, by, text string) error {
	return m.Record(id, Entry{Kind: KindNote, By: by, Text: text})
}

// Assign sets the assignee (by is who assigned).
func (m *Manager) Assign(id, by, assignee string) error {
	return m.Record(id, Entry{Kind: KindAssign, By: by, To: assignee})
}

// TokenUsed reports whether an ack with token id tok is in the incident's
// timeline.
func (m *Manager) TokenUsed(id, tok string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	inc, ok := m.incs[id]
	if !ok {
		return false
	}
	for _, e := range inc.Timeline {
		if e.Kind == KindAck && e.Token == tok {
			return true
		}
	}
	return false
}

// Err returns the first journal write error, if any.
func (m *Manager) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Close syncs and closes the journal. Later calls fail with ErrClosed.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	var err error
	for id := range m.dirty {
		if ferr := m.flush(id); ferr != nil && err == nil {
			err = ferr
		}
	}
	m.closed = true
	if serr := m.f.Sync(); err == nil {
		err = serr
	}
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadJournal reads the incidents of the journal in dir without opening it
// for writing (for reports and tools running beside the appliance): the
// incidents in opening order, as the Manager would have them after Open.
// A torn or half-written last line is ignored, not truncated; a corrupt line
// followed by others is an error naming it. A missing journal gives no
// incidents.
func ReadJournal(dir string) ([]Incident, error) {
	path := filepath.Join(dir, JournalName)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("incident: %w", err)
	}
	defer f.Close()
	m := &Manager{incs: map[string]*Incident{}, latest: map[string]string{}, dirty: map[string]*pending{}}
	r := bufio.NewReaderSize(f, 1<<16)
	line := 0
	for {
		b, err := r.ReadBytes('\n')
		if err == io.EOF {
			break // a last line without its newline is being written or torn
		}
		if err != nil {
			return nil, fmt.Errorf("incident: reading %s: %w", path, err)
		}
		line++
		var rec record
		perr := json.Unmarshal(bytes.TrimSpace(b), &rec)
		if perr == nil {
			perr = m.applyRecord(&rec)
		}
		if perr != nil {
			if _, err := r.Peek(1); err == io.EOF {
				break
			}
			return nil, fmt.Errorf("incident: %s:%d: corrupt record: %v", path, line, perr)
		}
	}
	out := make([]Incident, 0, len(m.order))
	for _, id := range m.order {
		out = append(out, m.incs[id].clone())
	}
	return out, nil
}

// Compact rewrites the journal as one "open" record per incident holding
// its whole current state (timeline, count, event sample), in opening
// order, replacing the file atomically (temp file, fsync, rename, fsync of
// the directory). Replaying the compacted journal gives the same incidents.
// Pending count updates are folded in. Safe for concurrent use; writes wait
// while it runs.
func (m *Manager) Compact() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return m.compactLocked()
}

// compactLocked is Compact with m.mu held.
func (m *Manager) compactLocked() error {
	path := filepath.Join(m.cfg.Dir, JournalName)
	tmp := path + ".compact"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("incident: compact: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	var size int64
	for _, id := range m.order {
		b, err := json.Marshal(&record{Op: "open", Inc: m.incs[id]})
		if err != nil {
			f.Close()
			os.Remove(tmp)
			return fmt.Errorf("incident: compact: %w", err)
		}
		b = append(b, '\n')
		if _, err := w.Write(b); err != nil {
			f.Close()
			os.Remove(tmp)
			return fmt.Errorf("incident: compact: %w", err)
		}
		size += int64(len(b))
	}
	err = errors.Join(w.Flush(), f.Sync())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("incident: compact: %w", err)
	}
	if d, derr := os.Open(m.cfg.Dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	// The new file is the journal now; the pending counts are in it.
	m.f.Close()
	m.f, m.size = f, size
	m.compactAt = max(m.cfg.CompactSize, 2*size)
	clear(m.dirty)
	m.log.Info("incident: journal compacted", "incidents", len(m.order), "bytes", size)
	return nil
}
