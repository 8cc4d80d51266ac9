package incident_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/judge"
	"github.com/jichitai/seccloud/detect/rules"
)

var t0 = time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)

type clock struct{ t atomic.Int64 }

func newClock() *clock               { c := &clock{}; c.t.Store(t0.UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.t.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.t.Add(int64(d)) }

type waker struct{ n atomic.Int32 }

func (w *waker) Wake() { w.n.Add(1) }

func open(t *testing.T, dir string, c *clock, w *waker) *incident.Manager {
	t.Helper()
	cfg := incident.Config{Dir: dir, Now: c.Now, NoSync: true,
		Ladder: func(tenant string) []incident.Step {
			return []incident.Step{{Contact: "担当 一郎", Channel: "email", Address: "ichiro@" + tenant + ".example.jp"}}
		}}
	if w != nil {
		cfg.Waker = w
	}
	m, err := incident.Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func wafBlock(i int) detect.Event {
	return detect.Event{Time: t0.Add(time.Duration(i) * 100 * time.Millisecond), Module: "waf", Tenant: "a",
		Client: netip.MustParseAddrPort("203.0.113.9:5000"), DestDomain: "www.city.example.jp",
		URL: "https://www.city.example.jp/?id=1'--", HTTP: detect.HTTPInfo{Status: 403},
		Verdict: detect.Verdict{Action: detect.ActionBlock, Rule: "crs-942100"}}
}

// 1,000 repeated WAF blocks from one scanner make one level-1 incident with
// count 1000, through the shipped default rules.
func TestThousandWAFBlocksOneIncident(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	m := open(t, dir, c, nil)
	def, err := rules.Default()
	require.NoError(t, err)
	e := rules.New(rules.Config{Rules: def, Handler: m, Now: c.Now})
	for i := range 1000 {
		ev := wafBlock(i)
		e.Process(&ev)
	}
	incs := m.List(incident.Filter{})
	require.Len(t, incs, 1)
	inc := incs[0]
	assert.Equal(t, 1000, inc.Count)
	assert.Equal(t, detect.SeverityStopped, inc.Severity)
	assert.Equal(t, "seccloud-waf-attack", inc.Rule)
	assert.Equal(t, "203.0.113.9", inc.Terminal)
	assert.Equal(t, incident.StateOpen, inc.State)
	assert.Len(t, inc.Events, incident.DefaultMaxEvents)
	assert.Equal(t, t0, inc.First)
	assert.Equal(t, wafBlock(999).Time, inc.Last)
	assert.Len(t, inc.Timeline, 1)

	// Count updates past the sample are coalesced: a few journal lines,
	// and the count survives a restart.
	require.NoError(t, m.Close())
	b, err := os.ReadFile(filepath.Join(dir, incident.JournalName))
	require.NoError(t, err)
	assert.LessOrEqual(t, strings.Count(string(b), "\n"), incident.DefaultMaxEvents+1)
	m2 := open(t, dir, c, nil)
	again, _ := m2.Get(inc.ID)
	assert.Equal(t, 1000, again.Count)
	assert.Equal(t, inc.Last, again.Last)
}

func TestCoalescedCountsFlushedEverySecond(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	m, err := incident.Open(incident.Config{Dir: dir, Now: c.Now, NoSync: true, MaxEvents: 1})
	require.NoError(t, err)
	r := testRule(t)
	for i := range 30 {
		_, _ = m.Add(alert(r, "x", t0.Add(time.Duration(i)*100*time.Millisecond), detect.ActionBlock))
		c.t.Add(int64(100 * time.Millisecond))
	}
	// Crash without Close: at most the last second of counts is lost.
	b, err := os.ReadFile(filepath.Join(dir, incident.JournalName))
	require.NoError(t, err)
	m.Close()
	require.NoError(t, os.WriteFile(filepath.Join(dir, incident.JournalName), b, 0o640))
	m2 := open(t, dir, c, nil)
	incs := m2.List(incident.Filter{})
	require.Len(t, incs, 1)
	assert.GreaterOrEqual(t, incs[0].Count, 20)
	assert.LessOrEqual(t, strings.Count(string(b), "\n"), 5)
}

func alert(rule *rules.Rule, terminal string, at time.Time, action detect.Action) *rules.Alert {
	ev := wafBlock(0)
	ev.Time = at
	ev.Verdict.Action = action
	ev.Terminal = terminal
	return &rules.Alert{Rule: rule, Tenant: "a", Terminal: terminal, Count: 1, First: at, Last: at, Events: []detect.Event{ev}}
}

func testRule(t *testing.T) *rules.Rule {
	rs, err := rules.Parse("t.yml", strings.NewReader("id: r\ntitle: test rule\ndetection: {s: {event.module: waf}, condition: s}\n"))
	require.NoError(t, err)
	return rs[0]
}

func TestGroupingWindowAndKey(t *testing.T) {
	c := newClock()
	m := open(t, t.TempDir(), c, nil)
	r := testRule(t)
	id1, err := m.Add(alert(r, "x", t0, detect.ActionBlock))
	require.NoError(t, err)
	id2, _ := m.Add(alert(r, "x", t0.Add(59*time.Minute), detect.ActionBlock))
	assert.Equal(t, id1, id2, "within the window")
	id3, _ := m.Add(alert(r, "y", t0.Add(59*time.Minute), detect.ActionBlock))
	assert.NotEqual(t, id1, id3, "other terminal")
	id4, _ := m.Add(alert(r, "x", t0.Add(59*time.Minute+61*time.Minute), detect.ActionBlock))
	assert.NotEqual(t, id1, id4, "after the window")
	require.NoError(t, m.SetState(id4, incident.StateResolved, "soc", "done"))
	id5, _ := m.Add(alert(r, "x", t0.Add(121*time.Minute), detect.ActionBlock))
	assert.NotEqual(t, id4, id5, "closed incidents take no more alerts")
	assert.Equal(t, "INC-20261102-00001", id1)
	assert.Equal(t, "INC-20261102-00004", id5)
}

func TestSeverityRaisedWakes(t *testing.T) {
	c := newClock()
	w := &waker{}
	m := open(t, t.TempDir(), c, w)
	r := testRule(t)
	id, _ := m.Add(alert(r, "x", t0, detect.ActionBlock))
	assert.Equal(t, int32(1), w.n.Load())
	require.NoError(t, m.Ack(id, "soc", "phone", "", ""))
	c.Add(time.Minute)
	_, _ = m.Add(alert(r, "x", t0.Add(time.Minute), detect.ActionReport)) // reached: level 2
	assert.Equal(t, int32(2), w.n.Load())
	inc, _ := m.Get(id)
	assert.Equal(t, detect.SeverityReached, inc.Severity)
	assert.Equal(t, incident.StateOpen, inc.State, "a raised severity is notified afresh")
	assert.Equal(t, t0.Add(time.Minute), inc.JudgedAt)
	_, _ = m.Add(alert(r, "x", t0.Add(2*time.Minute), detect.ActionBlock)) // lower: no change
	inc, _ = m.Get(id)
	assert.Equal(t, detect.SeverityReached, inc.Severity)
	assert.Equal(t, 3, inc.Count)
	assert.Equal(t, int32(2), w.n.Load())
}

func TestLifecycle(t *testing.T) {
	c := newClock()
	m := open(t, t.TempDir(), c, nil)
	id, _ := m.Add(alert(testRule(t), "x", t0, detect.ActionBlock))
	require.NoError(t, m.Record(id, incident.Entry{Kind: incident.KindNotify, Step: 0, Channel: "email", To: "a@example.jp"}))
	inc, _ := m.Get(id)
	assert.Equal(t, incident.StateNotified, inc.State)
	require.NoError(t, m.Ack(id, "a@example.jp", "link", "tok1", ""))
	assert.True(t, m.TokenUsed(id, "tok1"))
	assert.False(t, m.TokenUsed(id, "tok2"))
	err := m.SetState(id, incident.StateNotified, "soc", "")
	assert.True(t, errors.Is(err, incident.ErrTransition))
	require.NoError(t, m.Assign(id, "lead", "suzuki"))
	require.NoError(t, m.Note(id, "suzuki", "端末を隔離しました"))
	require.NoError(t, m.SetState(id, incident.StateFalsePositive, "suzuki", "検証用の通信"))
	assert.True(t, errors.Is(m.SetState(id, incident.StateResolved, "x", ""), incident.ErrTransition))
	assert.True(t, errors.Is(m.Ack(id, "x", "link", "t", ""), incident.ErrTransition))
	assert.True(t, errors.Is(m.Note("nope", "x", "y"), incident.ErrNotFound))
	inc, _ = m.Get(id)
	assert.Equal(t, incident.StateFalsePositive, inc.State)
	assert.Equal(t, "suzuki", inc.Assignee)
	var kinds []string
	for _, e := range inc.Timeline {
		kinds = append(kinds, e.Kind)
	}
	assert.Equal(t, []string{"opened", "notify", "ack", "assign", "note", "state"}, kinds)
}

func TestReplayAndTornTail(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	m := open(t, dir, c, nil)
	r := testRule(t)
	id, _ := m.Add(alert(r, "x", t0, detect.ActionBlock))
	_, _ = m.Add(alert(r, "x", t0.Add(time.Second), detect.ActionBlock))
	require.NoError(t, m.Ack(id, "soc", "phone", "", "電話で連絡済み"))
	before, _ := m.Get(id)
	require.NoError(t, m.Close())

	// Simulate a crash in the middle of the next write.
	path := filepath.Join(dir, incident.JournalName)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"op":"entry","id":"` + id + `","entry":{"time":"2026-11-02T01:0`)
	require.NoError(t, err)
	f.Close()
	st1, _ := os.Stat(path)

	m2 := open(t, dir, c, nil)
	after, ok := m2.Get(id)
	require.True(t, ok)
	assert.Equal(t, before.Count, after.Count)
	assert.Equal(t, before.State, after.State)
	assert.Equal(t, len(before.Timeline), len(after.Timeline))
	assert.Equal(t, before.Evidence, after.Evidence)
	assert.Equal(t, before.Ladder, after.Ladder)
	require.Len(t, after.Events, 2)
	assert.Equal(t, before.Events[1].URL, after.Events[1].URL)
	st2, _ := os.Stat(path)
	assert.Less(t, st2.Size(), st1.Size(), "torn tail truncated")
	// Sequence continues after a restart; the journal stays appendable.
	id2, err := m2.Add(alert(r, "z", t0, detect.ActionBlock))
	require.NoError(t, err)
	assert.Equal(t, "INC-20261102-00002", id2)
	require.NoError(t, m2.Close())
	m3 := open(t, dir, c, nil)
	assert.Len(t, m3.List(incident.Filter{}), 2)
}

func TestCorruptMiddleRefused(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	m := open(t, dir, c, nil)
	r := testRule(t)
	_, _ = m.Add(alert(r, "x", t0, detect.ActionBlock))
	_, _ = m.Add(alert(r, "y", t0, detect.ActionBlock))
	require.NoError(t, m.Close())
	path := filepath.Join(dir, incident.JournalName)
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(b), "\n")
	lines[0] = "garbage\n"
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "")), 0o640))
	_, err := incident.Open(incident.Config{Dir: dir})
	require.Error(t, err)
	assert.Contains(t, err.Error(), incident.JournalName+":1: corrupt record")
}

func TestListFilter(t *testing.T) {
	c := newClock()
	m := open(t, t.TempDir(), c, nil)
	r := testRule(t)
	_, _ = m.Add(alert(r, "x", t0, detect.ActionBlock))
	a := alert(r, "y", t0, detect.ActionReport)
	a.Tenant = "b"
	_, _ = m.Add(a)
	assert.Len(t, m.List(incident.Filter{Tenant: "b"}), 1)
	assert.Len(t, m.List(incident.Filter{MinSeverity: detect.SeverityReached}), 1)
	assert.Len(t, m.List(incident.Filter{Active: true}), 2)
}

func TestJudgeEvidenceStored(t *testing.T) {
	c := newClock()
	m, err := incident.Open(incident.Config{Dir: t.TempDir(), Now: c.Now, NoSync: true,
		Judge: &judge.Default{Vuln: judge.StaticVuln{"a": {"www.city.example.jp": true}}}})
	require.NoError(t, err)
	defer m.Close()
	id, _ := m.Add(alert(testRule(t), "x", t0, detect.ActionReport))
	inc, _ := m.Get(id)
	assert.Equal(t, detect.SeveritySucceeded, inc.Severity)
	assert.Equal(t, "www.city.example.jp", inc.Host)
	assert.NotEmpty(t, inc.Evidence)
	assert.Equal(t, inc.Evidence, inc.Timeline[0].Evidence)
}

// ReadJournal reads what a running Manager wrote, ignores a half-written
// last line without cutting it, and changes nothing.
func TestReadJournal(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	m := open(t, dir, c, nil)
	r := testRule(t)
	id, _ := m.Add(alert(r, "x", t0, detect.ActionBlock))
	require.NoError(t, m.Note(id, "suzuki", "確認中"))
	want := m.List(incident.Filter{})

	path := filepath.Join(dir, incident.JournalName)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"op":"entry","id":"` + id + `","entry":{"ti`)
	require.NoError(t, err)
	f.Close()
	st1, _ := os.Stat(path)

	got, err := incident.ReadJournal(dir)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, want[0].ID, got[0].ID)
	assert.Equal(t, len(want[0].Timeline), len(got[0].Timeline))
	assert.Equal(t, want[0].Count, got[0].Count)
	st2, _ := os.Stat(path)
	assert.Equal(t, st1.Size(), st2.Size(), "read-only: nothing cut")

	none, err := incident.ReadJournal(t.TempDir())
	require.NoError(t, err)
	assert.Empty(t, none)
}

// Compact keeps every incident as it was and shrinks a journal of many
// count updates and entries; writing goes on after it.
func TestCompact(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	m := open(t, dir, c, nil)
	r := testRule(t)
	var id string
	for i := range 300 {
		id, _ = m.Add(alert(r, "x", t0.Add(time.Duration(i)*time.Second), detect.ActionBlock))
		c.Add(2 * time.Second) // every count update is journaled
	}
	require.NoError(t, m.Note(id, "suzuki", "確認中"))
	_, _ = m.Add(alert(r, "y", t0, detect.ActionBlock)) // a pending, coalesced count
	_, _ = m.Add(alert(r, "y", t0.Add(time.Second), detect.ActionBlock))
	want := m.List(incident.Filter{})
	path := filepath.Join(dir, incident.JournalName)
	st1, _ := os.Stat(path)
	require.NoError(t, m.Compact())
	st2, _ := os.Stat(path)
	assert.Less(t, st2.Size(), st1.Size())
	require.NoError(t, m.Note(id, "suzuki", "対応完了"))
	require.NoError(t, m.Close())

	m2 := open(t, dir, c, nil)
	got := m2.List(incident.Filter{})
	require.Len(t, got, len(want))
	for i := range want {
		assert.Equal(t, want[i].ID, got[i].ID)
		assert.Equal(t, want[i].Count, got[i].Count)
		assert.Equal(t, want[i].Last, got[i].Last)
	}
	assert.Len(t, got[0].Timeline, len(want[0].Timeline)+1, "the note written after compaction")
	id3, err := m2.Add(alert(r, "z", t0, detect.ActionBlock))
	require.NoError(t, err)
	assert.Equal(t, "INC-20261102-00003", id3)
}

// With a small CompactSize the journal compacts itself while running and
// stays bounded; a restart replays the same incidents.
func TestAutoCompact(t *testing.T) {
	run := func(dir string, compact int64) (*incident.Manager, string, int64) {
		c := newClock()
		m, err := incident.Open(incident.Config{Dir: dir, Now: c.Now, NoSync: true, CompactSize: compact})
		require.NoError(t, err)
		r := testRule(t)
		var id string
		for i := range 400 {
			id, _ = m.Add(alert(r, "x", t0.Add(time.Duration(i)*time.Second), detect.ActionBlock))
			require.NoError(t, m.Note(id, "soc", fmt.Sprintf("確認 %d", i)))
			c.Add(2 * time.Second)
		}
		st, err := os.Stat(filepath.Join(dir, incident.JournalName))
		require.NoError(t, err)
		return m, id, st.Size()
	}
	plain, _, full := run(t.TempDir(), -1)
	require.NoError(t, plain.Close())
	dir := t.TempDir()
	m, id, size := run(dir, 16<<10)
	t.Logf("journal: %d bytes without compaction, %d with", full, size)
	assert.Less(t, size, full*3/4, "compacted while running")
	want, _ := m.Get(id)
	require.NoError(t, m.Close())
	c := newClock()
	m2, err := incident.Open(incident.Config{Dir: dir, Now: c.Now, NoSync: true})
	require.NoError(t, err)
	defer m2.Close()
	got, ok := m2.Get(id)
	require.True(t, ok)
	assert.Equal(t, want.Count, got.Count)
	assert.Equal(t, len(want.Timeline), len(got.Timeline))
	assert.Len(t, m2.List(incident.Filter{}), 1)
}
