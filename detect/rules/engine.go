package rules

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
)

// Defaults of [Config].
const (
	DefaultLateness       = 2 * time.Minute
	DefaultMaxGroups      = 100_000
	DefaultMaxAlertEvents = 16
)

// Alert is what a rule raised: one matching event for a detection rule, or
// the group of events that satisfied a correlation. The engine hands each
// Alert to the [Handler]; the judge turns it into a severity and the
// incident store into an incident.
type Alert struct {
	// Rule is the rule that fired.
	Rule *Rule
	// Tenant is the group's organization.id (always part of the group).
	Tenant string
	// Terminal is the seccloud.terminal of the last event.
	Terminal string
	// Group holds the group-by values of a correlation, by group-by name.
	Group map[string]string
	// Count is the number of events (event_count), distinct values
	// (value_count), or events of the match (detection and temporal).
	Count int
	// First and Last are the times of the first and last counted event.
	First, Last time.Time
	// Events are evidence events, oldest first, at most MaxAlertEvents.
	Events []detect.Event
	// Final are the events that decide whether the attack reached its
	// target: the last step of a temporal_ordered correlation, all Events
	// otherwise.
	Final []detect.Event
}

// Handler receives alerts. HandleAlert is called synchronously from
// [Engine.Process], possibly from several goroutines at once; it must be
// safe for concurrent use and should not block for long. The Alert is owned
// by the handler.
type Handler interface {
	HandleAlert(*Alert)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(*Alert)

// HandleAlert calls f(a).
func (f HandlerFunc) HandleAlert(a *Alert) { f(a) }

// IntelSource gives the current threat-intel set for the |intel modifier;
// *intel.Live satisfies it.
type IntelSource interface {
	Load() *intel.Set
}

// Config configures an [Engine]. The zero value is usable: no rules, alerts
// discarded.
type Config struct {
	// Rules is the initial rule set; nil means none (see SetRules).
	Rules *Set
	// Handler receives alerts; nil discards them.
	Handler Handler
	// Intel supplies indicators for the |intel modifier; nil means |intel
	// never matches.
	Intel IntelSource
	// Lateness is how far behind the newest event time seen an event may
	// be and still take part in correlations; later events are counted in
	// Stats.Late (detection rules still match them). Events more than
	// Lateness ahead of Now are treated as happening now (Stats.Future).
	// Zero means DefaultLateness (2 min).
	Lateness time.Duration
	// MaxGroups bounds the groups held per correlation rule; new groups
	// beyond it are refused and counted in Stats.GroupsFull. Zero means
	// DefaultMaxGroups (100,000).
	MaxGroups int
	// MaxAlertEvents bounds the evidence events kept per alert. Zero means
	// DefaultMaxAlertEvents (16).
	MaxAlertEvents int
	// Now gives the current time for events without a time; nil means
	// time.Now.
	Now func() time.Time
	// Logger receives rule reloads; nil discards.
	Logger *slog.Logger
}

// Stats are the engine's counters; they only grow.
type Stats struct {
	Events     uint64 // events processed
	Matches    uint64 // detection rule matches
	Alerts     uint64 // alerts handed to the Handler
	Late       uint64 // events too late for correlations
	Future     uint64 // events too far in the future (clamped to now)
	GroupsFull uint64 // events refused because a correlation held MaxGroups
	Filtered   uint64 // events dropped by a global filter, or rule matches dropped by a rule's filter
}

// Engine matches events against a rule [Set] and correlates the matches.
// Process is safe for concurrent use; SetRules swaps rules atomically while
// events flow. Engine implements detect.BatchWriter so it can sit behind
// detect.NewAsync and never slow the data path.
type Engine struct {
	cfg   Config
	rules atomic.Pointer[Set]
	pool  sync.Pool
	seed  maphash.Seed

	mu    sync.Mutex
	corrs atomic.Pointer[map[*Rule]*corrState]
	byID  map[string]*corrState // state kept across reloads, by id+definition

	watermark atomic.Int64

	events, matches, alerts, late, future, full, filtered atomic.Uint64
}

var _ detect.BatchWriter = (*Engine)(nil)

// New returns an Engine for cfg.
func New(cfg Config) *Engine {
	if cfg.Lateness <= 0 {
		cfg.Lateness = DefaultLateness
	}
	if cfg.MaxGroups <= 0 {
		cfg.MaxGroups = DefaultMaxGroups
	}
	if cfg.MaxAlertEvents <= 0 {
		cfg.MaxAlertEvents = DefaultMaxAlertEvents
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, seed: maphash.MakeSeed(), byID: map[string]*corrState{}}
	e.pool.New = func() any { return newEvalCtx() }
	if cfg.Rules == nil {
		cfg.Rules, _ = Compile(nil)
	}
	e.SetRules(cfg.Rules)
	return e
}

// Rules returns the rule set in force.
func (e *Engine) Rules() *Set { return e.rules.Load() }

// SetRules puts s in force. Correlation state is kept for correlation rules
// whose id and definition did not change, and dropped for the others.
// A nil s is ignored.
func (e *Engine) SetRules(s *Set) {
	if s == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	m := map[*Rule]*corrState{}
	keep := map[string]*corrState{}
	for _, r := range s.corrs {
		key := corrKey(r)
		st, ok := e.byID[key]
		if !ok {
			st = newCorrState()
		}
		st.rule = r
		keep[key] = st
		m[r] = st
	}
	e.byID = keep
	e.corrs.Store(&m)
	e.rules.Store(s)
	e.cfg.Logger.Info("rules: rule set in force", "rules", s.Len(), "correlations", len(s.corrs))
}

// corrKey identifies a correlation's definition, so reloading an unchanged
// rule keeps its windows.
func corrKey(r *Rule) string {
	c := r.Correlation
	var b strings.Builder
	b.WriteString(r.ID)
	b.WriteString("\x00")
	b.WriteString(string(c.Type))
	b.WriteString("\x00")
	b.WriteString(strings.Join(c.refs, ","))
	b.WriteString("\x00")
	b.WriteString(strings.Join(c.GroupBy, ","))
	b.WriteString("\x00")
	b.WriteString(c.Timespan.String())
	b.WriteString(c.Op)
	b.WriteString(c.Field)
	return b.String() + "\x00" + itoa(c.Threshold)
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	return Stats{Events: e.events.Load(), Matches: e.matches.Load(), Alerts: e.alerts.Load(),
		Late: e.late.Load(), Future: e.future.Load(), GroupsFull: e.full.Load(), Filtered: e.filtered.Load()}
}

// WriteEvents processes a batch; it never fails. It lets an Engine be the
// Writer of detect.NewAsync.
func (e *Engine) WriteEvents(_ context.Context, events []detect.Event) error {
	for i := range events {
		e.Process(&events[i])
	}
	return nil
}

// Process matches one event against the rules in force, feeds the
// correlations and hands any alerts to the Handler before returning. It does
// not retain ev (evidence is copied). Safe for concurrent use.
func (e *Engine) Process(ev *detect.Event) {
	e.events.Add(1)
	s := e.rules.Load()
	cands := s.candidates(ev.Module)
	if len(cands) == 0 {
		return
	}
	c := e.pool.Get().(*evalCtx)
	var is *intel.Set
	if e.cfg.Intel != nil {
		is = e.cfg.Intel.Load()
	}
	c.reset(ev, is)
	for _, f := range s.global {
		if f.filterApplies(ev) && !f.cond.eval(c) {
			e.filtered.Add(1)
			c.e = nil
			e.pool.Put(c)
			return
		}
	}
	var matched []*Rule
	var buf [8]*Rule
	for _, r := range cands {
		if r.cond.eval(c) {
			if len(s.filters) > 0 && filteredOut(s.filters[r], ev, c) {
				e.filtered.Add(1)
				continue
			}
			if matched == nil {
				matched = buf[:0]
			}
			matched = append(matched, r)
		}
	}
	c.e = nil
	e.pool.Put(c)
	if len(matched) == 0 {
		return
	}
	e.matches.Add(uint64(len(matched)))
	t := e.eventTime(ev)
	for _, r := range matched {
		if !r.referenced || r.generate {
			evs := []detect.Event{*ev}
			e.emit(&Alert{Rule: r, Tenant: ev.Tenant, Terminal: Terminal(ev), Count: 1,
				First: t, Last: t, Events: evs, Final: evs})
		}
		if r.referenced {
			e.correlate(s, r, ev, t)
		}
	}
}

func (e *Engine) emit(a *Alert) {
	e.alerts.Add(1)
	if e.cfg.Handler != nil {
		e.cfg.Handler.HandleAlert(a)
	}
}

// eventTime returns the event's time, clamped to now + Lateness, and moves
// the watermark.
func (e *Engine) eventTime(ev *detect.Event) time.Time {
	t := ev.Time
	now := e.cfg.Now()
	if t.IsZero() {
		t = now
	} else if t.After(now.Add(e.cfg.Lateness)) {
		e.future.Add(1)
		t = now
	}
	n := t.UnixNano()
	for {
		w := e.watermark.Load()
		if n <= w || e.watermark.CompareAndSwap(w, n) {
			break
		}
	}
	return t
}

// ---- correlation state ----

const nShards = 16

type corrState struct {
	rule   *Rule
	groups atomic.Int64
	shards [nShards]corrShard
}

type corrShard struct {
	mu      sync.Mutex
	m       map[string]*group
	sweptAt int64
}

func newCorrState() *corrState {
	s := &corrState{}
	for i := range s.shards {
		s.shards[i].m = map[string]*group{}
	}
	return s
}

type stamped struct {
	t  int64
	ev detect.Event
}

type group struct {
	tenant string
	vals   []string
	last   int64
	// event_count: times of counted events, sorted.
	times []int64
	// value_count: (time, value) entries sorted by time, distinct counts.
	tv       []tval
	distinct map[string]int
	// sample: evidence, sorted by time (event_count, value_count).
	sample []stamped
	// stages: per referenced rule, recent matches (temporal types).
	stages [][]stamped
}

type tval struct {
	t int64
	v string
}

const maxStage = 16

func (e *Engine) correlate(s *Set, r *Rule, ev *detect.Event, t time.Time) {
	tn := t.UnixNano()
	lateness := int64(e.cfg.Lateness)
	if tn < e.watermark.Load()-lateness {
		e.late.Add(1)
		return
	}
	cm := *e.corrs.Load()
	for _, u := range s.uses[r] {
		st := cm[u.corr]
		if st == nil {
			continue
		}
		c := u.corr.Correlation
		// In an ordered correlation a later step only extends a chain
		// that exists: skip the key work while no chain is open.
		if c.Type == TemporalOrdered && u.idx > 0 && st.groups.Load() == 0 {
			continue
		}
		var vf *field
		if c.valueField != nil {
			vf = c.valueField[u.idx]
		}
		var buf [256]byte
		n := 0
		appendKeys(append(buf[:0], ev.Tenant...), ev, c.groupFields[u.idx], &n, func(key []byte) {
			if a := e.feed(st, u.corr, u.idx, key, ev, tn, vf); a != nil {
				e.emit(a)
			}
		})
	}
}

// maxFanout bounds the groups one event feeds when group-by fields have
// several values (e.g. dns.resolved_ip).
const maxFanout = 64

// appendKeys calls emit with each group key of ev: the tenant then each
// group-by value (lower-cased), separated by 0x1f. Several keys come out
// when a field has several values; none when a group-by field is absent (the
// event takes no part).
func appendKeys(key []byte, ev *detect.Event, fs []*field, n *int, emit func([]byte)) {
	if len(fs) == 0 {
		if *n < maxFanout {
			*n++
			emit(key)
		}
		return
	}
	f := fs[0]
	key = append(key, keySep)
	switch f.kind {
	case kindStr:
		v := f.str(ev)
		if v == "" {
			return
		}
		appendKeys(appendLower(key, v), ev, fs[1:], n, emit)
	case kindInt:
		v, ok := f.num(ev)
		if !ok {
			return
		}
		appendKeys(strconv.AppendInt(key, v, 10), ev, fs[1:], n, emit)
	case kindAddr:
		a := f.addr(ev)
		if !a.IsValid() {
			return
		}
		appendKeys(a.Unmap().AppendTo(key), ev, fs[1:], n, emit)
	case kindStrList:
		for _, v := range f.list(ev) {
			if v != "" {
				appendKeys(appendLower(key, v), ev, fs[1:], n, emit)
			}
		}
	case kindAddrList:
		for _, a := range f.addrs(ev) {
			appendKeys(a.Unmap().AppendTo(key), ev, fs[1:], n, emit)
		}
	}
}

const keySep = 0x1f

func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return append(b, strings.ToLower(s)...)
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

func (e *Engine) feed(st *corrState, r *Rule, idx int, key []byte, ev *detect.Event, tn int64, vf *field) *Alert {
	c := r.Correlation
	h := maphash.Bytes(e.seed, key)
	sh := &st.shards[h%nShards]
	span := int64(c.Timespan)
	lateness := int64(e.cfg.Lateness)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	wm := e.watermark.Load()
	if wm-sh.sweptAt > span {
		for k, g := range sh.m {
			if g.last < wm-span-lateness {
				delete(sh.m, k)
				st.groups.Add(-1)
			}
		}
		sh.sweptAt = wm
	}
	g := sh.m[string(key)]
	if g == nil {
		if c.Type == TemporalOrdered && idx > 0 {
			return nil // a later step never starts a chain
		}
		if st.groups.Load() >= int64(e.cfg.MaxGroups) {
			e.full.Add(1)
			return nil
		}
		parts := strings.Split(string(key), string(rune(keySep)))
		g = &group{tenant: parts[0], vals: parts[1:]}
		if c.Type == Temporal || c.Type == TemporalOrdered {
			g.stages = make([][]stamped, len(c.Rules))
		}
		if c.Type == ValueCount {
			g.distinct = map[string]int{}
		}
		sh.m[string(key)] = g
		st.groups.Add(1)
	}
	if tn > g.last {
		g.last = tn
	}
	lo := g.last - span // window [lo, g.last]
	maxEv := e.cfg.MaxAlertEvents
	switch c.Type {
	case EventCount:
		g.times = insertTime(g.times, tn)
		g.times = pruneTimes(g.times, lo-lateness)
		g.sample = addSample(g.sample, stamped{tn, *ev}, maxEv, lo)
		n := countIn(g.times, tn, span)
		if compare(c.Op, int64(n), c.Threshold) {
			a := e.groupAlert(r, g, n, g.sample, nil)
			g.times, g.sample = g.times[:0], nil
			return a
		}
	case ValueCount:
		vs := vf.values(ev)
		for _, v := range vs {
			v = strings.ToLower(v)
			i := sort.Search(len(g.tv), func(i int) bool { return g.tv[i].t > tn })
			g.tv = append(g.tv, tval{})
			copy(g.tv[i+1:], g.tv[i:])
			g.tv[i] = tval{tn, v}
			g.distinct[v]++
		}
		for len(g.tv) > 0 && g.tv[0].t < lo {
			o := g.tv[0]
			g.tv = g.tv[1:]
			if g.distinct[o.v]--; g.distinct[o.v] <= 0 {
				delete(g.distinct, o.v)
			}
		}
		if len(vs) > 0 {
			g.sample = addSample(g.sample, stamped{tn, *ev}, maxEv, lo)
		}
		n := len(g.distinct)
		if compare(c.Op, int64(n), c.Threshold) {
			a := e.groupAlert(r, g, n, g.sample, nil)
			g.tv, g.sample = nil, nil
			clear(g.distinct)
			return a
		}
	case Temporal, TemporalOrdered:
		stg := g.stages[idx]
		i := sort.Search(len(stg), func(i int) bool { return stg[i].t > tn })
		stg = append(stg, stamped{})
		copy(stg[i+1:], stg[i:])
		stg[i] = stamped{tn, *ev}
		if len(stg) > maxStage {
			stg = stg[len(stg)-maxStage:]
		}
		g.stages[idx] = stg
		for j := range g.stages {
			g.stages[j] = pruneStamped(g.stages[j], lo-lateness)
		}
		var chosen []stamped
		if c.Type == TemporalOrdered {
			chosen = matchOrdered(g.stages, span)
		} else {
			chosen = matchAny(g.stages, span)
		}
		if chosen != nil {
			var final []stamped
			if c.Type == TemporalOrdered {
				final = chosen[len(chosen)-1:]
			}
			a := e.groupAlert(r, g, len(chosen), chosen, final)
			for j := range g.stages {
				g.stages[j] = nil
			}
			return a
		}
	}
	return nil
}

func compare(op string, n, th int64) bool {
	switch op {
	case "gt":
		return n > th
	case "gte":
		return n >= th
	case "eq":
		return n == th
	}
	return false
}

func insertTime(ts []int64, t int64) []int64 {
	if n := len(ts); n == 0 || ts[n-1] <= t {
		return append(ts, t)
	}
	i := sort.Search(len(ts), func(i int) bool { return ts[i] > t })
	ts = append(ts, 0)
	copy(ts[i+1:], ts[i:])
	ts[i] = t
	return ts
}

func pruneTimes(ts []int64, before int64) []int64 {
	i := sort.Search(len(ts), func(i int) bool { return ts[i] >= before })
	if i == 0 {
		return ts
	}
	return append(ts[:0], ts[i:]...)
}

// countIn returns the largest number of times inside one window of length
// span that contains t (exact for in-order and out-of-order arrivals).
func countIn(ts []int64, t, span int64) int {
	lo := sort.Search(len(ts), func(i int) bool { return ts[i] >= t-span })
	hi := sort.Search(len(ts), func(i int) bool { return ts[i] > t+span })
	best, j := 0, lo
	for i := lo; i < hi && ts[i] <= t; i++ {
		for j < hi && ts[j] <= ts[i]+span {
			j++
		}
		if j-i > best {
			best = j - i
		}
	}
	return best
}

func addSample(s []stamped, x stamped, max int, before int64) []stamped {
	s = pruneStamped(s, before)
	if len(s) >= max {
		return s
	}
	i := sort.Search(len(s), func(i int) bool { return s[i].t > x.t })
	s = append(s, stamped{})
	copy(s[i+1:], s[i:])
	s[i] = x
	return s
}

func pruneStamped(s []stamped, before int64) []stamped {
	i := 0
	for i < len(s) && s[i].t < before {
		i++
	}
	if i == 0 {
		return s
	}
	return append(s[:0], s[i:]...)
}

// matchOrdered finds e0 ≤ e1 ≤ … (one per stage, in stage order) within span,
// preferring the latest chain ending at the newest last-stage match.
func matchOrdered(stages [][]stamped, span int64) []stamped {
	last := stages[len(stages)-1]
	for k := len(last) - 1; k >= 0; k-- {
		end := last[k]
		chain := make([]stamped, len(stages))
		chain[len(stages)-1] = end
		bound := end.t
		ok := true
		for j := len(stages) - 2; j >= 0; j-- {
			found := false
			for i := len(stages[j]) - 1; i >= 0; i-- {
				x := stages[j][i]
				if x.t <= bound && end.t-x.t <= span {
					chain[j] = x
					bound = x.t
					found = true
					break
				}
			}
			if !found {
				ok = false
				break
			}
		}
		if ok {
			return chain
		}
	}
	return nil
}

// matchAny finds one match per stage, all within span, in any order.
func matchAny(stages [][]stamped, span int64) []stamped {
	for _, s := range stages {
		if len(s) == 0 {
			return nil
		}
	}
	// Try each newest match as the window's end.
	var newest int64
	for _, s := range stages {
		if t := s[len(s)-1].t; t > newest {
			newest = t
		}
	}
	chain := make([]stamped, len(stages))
	for j, s := range stages {
		found := false
		for i := len(s) - 1; i >= 0; i-- {
			if s[i].t <= newest && newest-s[i].t <= span {
				chain[j] = s[i]
				found = true
				break
			}
		}
		if !found {
			return nil
		}
	}
	sort.SliceStable(chain, func(a, b int) bool { return chain[a].t < chain[b].t })
	return chain
}

func (e *Engine) groupAlert(r *Rule, g *group, n int, evs, final []stamped) *Alert {
	a := &Alert{Rule: r, Tenant: g.tenant, Count: n}
	if len(r.Correlation.GroupBy) > 0 {
		a.Group = make(map[string]string, len(g.vals))
		for i, name := range r.Correlation.GroupBy {
			if i < len(g.vals) {
				a.Group[name] = g.vals[i]
			}
		}
	}
	for _, x := range evs {
		a.Events = append(a.Events, x.ev)
	}
	if len(evs) > 0 {
		a.First = time.Unix(0, evs[0].t)
		a.Last = time.Unix(0, g.last)
		a.Terminal = Terminal(&a.Events[len(a.Events)-1])
	}
	if final == nil {
		a.Final = a.Events
	} else {
		for _, x := range final {
			a.Final = append(a.Final, x.ev)
		}
	}
	return a
}

// filteredOut reports whether one of a rule's filters drops ev.
func filteredOut(fs []*Rule, ev *detect.Event, c *evalCtx) bool {
	for _, f := range fs {
		if f.filterApplies(ev) && !f.cond.eval(c) {
			return true
		}
	}
	return false
}
