package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
	"github.com/jichitai/seccloud/detect/store/internal/gen"
)

var day0 = time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC)

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func open(t testing.TB, cfg store.Config) *store.Store {
	t.Helper()
	s, err := store.Open(cfg)
	require.NoError(t, err)
	return s
}

// events makes n realistic events with strictly increasing times from
// start by step, with IDs prefix-i.
func events(seed uint64, n int, start time.Time, step time.Duration, prefix string) []detect.Event {
	g := gen.New(seed, 5)
	out := g.Batch(nil, n, start, step)
	for i := range out {
		out[i].ID = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func write(t testing.TB, s *store.Store, evs []detect.Event, batch int) {
	t.Helper()
	for len(evs) > 0 {
		n := min(batch, len(evs))
		require.NoError(t, s.WriteEvents(context.Background(), evs[:n]))
		evs = evs[n:]
	}
}

func query(t testing.TB, s *store.Store, f store.Filter) []detect.Event {
	t.Helper()
	var out []detect.Event
	require.NoError(t, s.Query(context.Background(), f, func(e detect.Event) error {
		out = append(out, e)
		return nil
	}))
	return out
}

// want filters evs (sorted by time) as a Filter would.
func want(evs []detect.Event, f store.Filter) []detect.Event {
	var out []detect.Event
	for _, e := range evs {
		if (f.Tenant == "" || e.Tenant == f.Tenant) && (f.Module == "" || e.Module == f.Module) &&
			(f.Since.IsZero() || !e.Time.Before(f.Since)) && (f.Until.IsZero() || e.Time.Before(f.Until)) {
			e.Time = e.Time.UTC()
			out = append(out, e)
		}
	}
	return out
}

func ids(evs []detect.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func TestWriteQueryRoundTrip(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: day0.Add(2*24*time.Hour + 12*time.Hour)}
	cfg := store.Config{Dir: dir, Now: clk.Now, BlockSize: 4096}
	s := open(t, cfg)
	// Three days, 3000 events, 86.4 s apart.
	evs := events(1, 3000, day0, 86400*time.Millisecond, "e")
	write(t, s, evs, 100)

	tenant := evs[7].Tenant
	cases := []struct {
		name string
		f    store.Filter
	}{
		{"all", store.Filter{}},
		{"tenant", store.Filter{Tenant: tenant}},
		{"module", store.Filter{Module: "dns"}},
		{"tenant and module", store.Filter{Tenant: tenant, Module: "proxy"}},
		{"one day", store.Filter{Since: day0.Add(24 * time.Hour), Until: day0.Add(48 * time.Hour)}},
		{"range across days, one tenant", store.Filter{Tenant: tenant, Since: day0.Add(20 * time.Hour), Until: day0.Add(30 * time.Hour)}},
		{"since only", store.Filter{Since: day0.Add(50 * time.Hour)}},
		{"until only", store.Filter{Until: day0.Add(5 * time.Hour)}},
		{"unknown tenant", store.Filter{Tenant: "nobody"}},
		{"empty range", store.Filter{Since: day0.Add(time.Hour), Until: day0.Add(time.Hour)}},
		{"before everything", store.Filter{Until: day0.Add(-time.Hour)}},
	}
	check := func(t *testing.T, s *store.Store) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got := query(t, s, tc.f)
				w := want(evs, tc.f)
				require.Equal(t, len(w), len(got))
				if len(w) > 0 {
					assert.Equal(t, w, got)
				}
			})
		}
	}
	t.Run("open", func(t *testing.T) { check(t, s) })
	require.NoError(t, s.Close())

	// Reopen later: the three days are sealed.
	clk.Set(day0.Add(5 * 24 * time.Hour))
	s = open(t, cfg)
	defer s.Close()
	t.Run("sealed", func(t *testing.T) { check(t, s) })
	rep, err := s.Verify(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 3, rep.Segments)
	assert.True(t, rep.OK())
	assert.Len(t, rep.Head, 64)
}

func TestQueryStopsOnCallbackError(t *testing.T) {
	s := open(t, store.Config{Dir: t.TempDir(), Now: func() time.Time { return day0 }})
	defer s.Close()
	write(t, s, events(2, 100, day0, time.Second, "e"), 100)
	stop := fmt.Errorf("enough")
	n := 0
	err := s.Query(context.Background(), store.Filter{}, func(detect.Event) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	require.ErrorIs(t, err, stop)
	assert.Equal(t, 10, n)
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: day0.Add(12 * time.Hour)}
	cfg := store.Config{Dir: dir, Now: clk.Now, BlockSize: 8192, WALSize: 1 << 20}
	var all []detect.Event
	for round := range 4 {
		s := open(t, cfg)
		evs := events(uint64(round), 5000, day0.Add(time.Duration(round)*6*time.Hour), time.Second, fmt.Sprint("r", round))
		write(t, s, evs, 250)
		all = append(all, evs...)
		require.NoError(t, s.Close())
		clk.Set(clk.Now().Add(7 * time.Hour)) // crosses into the next day: seal
	}
	slices.SortStableFunc(all, func(a, b detect.Event) int { return a.Time.Compare(b.Time) })
	s := open(t, cfg)
	defer s.Close()
	assert.Equal(t, ids(all), ids(query(t, s, store.Filter{})))
	_, err := s.Verify(context.Background())
	require.NoError(t, err)
}

func TestZeroTimeStampedWithNow(t *testing.T) {
	now := day0.Add(3 * time.Hour)
	s := open(t, store.Config{Dir: t.TempDir(), Now: func() time.Time { return now }})
	defer s.Close()
	require.NoError(t, s.WriteEvents(context.Background(), []detect.Event{{Module: "dns", Tenant: "a"}}))
	got := query(t, s, store.Filter{})
	require.Len(t, got, 1)
	assert.True(t, got[0].Time.Equal(now))
}

func TestWriteRefusesLongTenant(t *testing.T) {
	s := open(t, store.Config{Dir: t.TempDir()})
	defer s.Close()
	err := s.WriteEvents(context.Background(), []detect.Event{{Tenant: strings.Repeat("x", 256)}})
	require.ErrorContains(t, err, "store: event 0: tenant id longer than 255 bytes")
}

func TestOpenValidates(t *testing.T) {
	cases := []struct {
		name string
		cfg  store.Config
		err  string
	}{
		{"no dir", store.Config{}, "Config.Dir is required"},
		{"negative seal delay", store.Config{Dir: "x", SealDelay: -1}, "Config.SealDelay"},
		{"tiny block", store.Config{Dir: "x", BlockSize: 100}, "Config.BlockSize"},
		{"tiny wal", store.Config{Dir: "x", WALSize: 100}, "Config.WALSize"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := store.Open(tc.cfg)
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestSecondWriterRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, store.Config{Dir: dir})
	defer s.Close()
	_, err := store.Open(store.Config{Dir: dir})
	require.ErrorContains(t, err, "in use by another process")
}

func TestReadOnlySeesUnflushedEvents(t *testing.T) {
	dir := t.TempDir()
	s := open(t, store.Config{Dir: dir, Now: func() time.Time { return day0.Add(time.Hour) }})
	defer s.Close()
	evs := events(3, 500, day0, time.Second, "e")
	write(t, s, evs, 50)
	ro := open(t, store.Config{Dir: dir, ReadOnly: true})
	defer ro.Close()
	assert.Equal(t, ids(evs), ids(query(t, ro, store.Filter{})))
	require.ErrorIs(t, ro.WriteEvents(context.Background(), evs[:1]), store.ErrReadOnly)
	// Nothing was created or changed by the reader.
	_, err := os.Stat(filepath.Join(dir, "wal.tmp"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestLateEventsAfterSealGoToNextPart(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: day0.Add(10 * time.Hour)}
	s := open(t, store.Config{Dir: dir, Now: clk.Now})
	evs := events(4, 100, day0.Add(time.Hour), time.Second, "a")
	write(t, s, evs, 100)
	clk.Set(day0.Add(26 * time.Hour)) // day 0 ended 2 h ago: sealed on this write
	write(t, s, events(7, 10, day0.Add(25*time.Hour), time.Second, "next"), 10)
	late := events(5, 10, day0.Add(2*time.Hour), time.Second, "late")
	write(t, s, late, 10)
	clk.Set(day0.Add(28 * time.Hour)) // the late part's hour is over
	write(t, s, events(6, 10, day0.Add(27*time.Hour), time.Second, "today"), 10)
	require.NoError(t, s.Close())
	names, err := filepath.Glob(filepath.Join(dir, "20250610-*"))
	require.NoError(t, err)
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	assert.Equal(t, []string{"20250610-000.seg", "20250610-001.seg"}, names)
	s = open(t, store.Config{Dir: dir, Now: clk.Now})
	defer s.Close()
	got := query(t, s, store.Filter{Until: day0.Add(24 * time.Hour)})
	assert.Len(t, got, 110)
	assert.True(t, slices.IsSortedFunc(got, func(a, b detect.Event) int { return a.Time.Compare(b.Time) }))
	rep, err := s.Verify(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, rep.Segments)
	assert.Equal(t, 1, rep.Open)
}

func TestConcurrentWritersAndReaders(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: day0.Add(12 * time.Hour)}
	s := open(t, store.Config{Dir: dir, Now: clk.Now, BlockSize: 4096, WALSize: 1 << 20})
	const writers, batches, per = 4, 60, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				evs := events(uint64(w*1000+b), per, day0.Add(time.Duration(b)*time.Minute), time.Millisecond, fmt.Sprintf("w%d-b%d", w, b))
				assert.NoError(t, s.WriteEvents(context.Background(), evs))
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 20 {
				prev := time.Time{}
				assert.NoError(t, s.Query(context.Background(), store.Filter{Module: "dns"}, func(e detect.Event) error {
					if e.Time.Before(prev) {
						return fmt.Errorf("out of order")
					}
					prev = e.Time
					return nil
				}))
			}
		})
	}
	wg.Go(func() {
		clk.Set(day0.Add(36 * time.Hour)) // seal while writing
		_, err := s.Verify(context.Background())
		assert.NoError(t, err)
	})
	wg.Wait()
	got := query(t, s, store.Filter{})
	assert.Len(t, got, writers*batches*per)
	seen := make(map[string]bool)
	for _, e := range got {
		assert.False(t, seen[e.ID], "duplicate %s", e.ID)
		seen[e.ID] = true
	}
	require.NoError(t, s.Close())
}
