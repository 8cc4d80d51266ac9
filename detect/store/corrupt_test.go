package store_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
)

// crashCopy copies a store directory as a crash would leave it: the files
// as they are, without Close.
func crashCopy(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), b, 0o640))
	}
	return dst
}

// liveStore writes evs into a store left open (as at a crash) and returns
// its directory.
func liveStore(t *testing.T, evs []detect.Event) (string, func()) {
	dir := t.TempDir()
	s := open(t, store.Config{Dir: dir, Now: func() time.Time { return day0.Add(20 * time.Hour) }, BlockSize: 4096})
	write(t, s, evs, 50)
	return dir, func() { s.Close() }
}

func TestTornWALTail(t *testing.T) {
	evs := events(10, 1000, day0, time.Second, "e")
	dir, done := liveStore(t, evs)
	defer done()
	walSize := fileSize(t, filepath.Join(dir, "wal"))
	r := rand.New(rand.NewPCG(1, 2))
	t.Run("garbage appended", func(t *testing.T) {
		for i := range 5 {
			d := crashCopy(t, dir)
			junk := make([]byte, 1+r.IntN(5000))
			for j := range junk {
				junk[j] = byte(r.Uint32())
			}
			if i == 0 {
				junk = junk[:3] // shorter than a frame header
			}
			appendFile(t, filepath.Join(d, "wal"), junk)
			appendFile(t, filepath.Join(d, "20250610-000.open"), junk)
			s := open(t, store.Config{Dir: d, Now: func() time.Time { return day0.Add(21 * time.Hour) }})
			assert.Equal(t, ids(evs), ids(query(t, s, store.Filter{})))
			require.NoError(t, s.Close())
		}
	})
	t.Run("truncated at random offsets", func(t *testing.T) {
		for range 10 {
			d := crashCopy(t, dir)
			cut := r.Int64N(walSize)
			require.NoError(t, os.Truncate(filepath.Join(d, "wal"), cut))
			s := open(t, store.Config{Dir: d, Now: func() time.Time { return day0.Add(21 * time.Hour) }})
			got := query(t, s, store.Filter{})
			assert.Subset(t, ids(evs), ids(got), "cut at %d", cut)
			// The repaired store takes writes and keeps them.
			more := events(11, 10, day0.Add(time.Hour), time.Millisecond, "more")
			write(t, s, more, 10)
			require.NoError(t, s.Close())
			s = open(t, store.Config{Dir: d, Now: func() time.Time { return day0.Add(21 * time.Hour) }})
			assert.Len(t, query(t, s, store.Filter{}), len(got)+10, "cut at %d", cut)
			require.NoError(t, s.Close())
		}
	})
	t.Run("open part truncated", func(t *testing.T) {
		d := crashCopy(t, dir)
		p := filepath.Join(d, "20250610-000.open")
		require.NoError(t, os.Truncate(p, fileSize(t, p)/2))
		s := open(t, store.Config{Dir: d, Now: func() time.Time { return day0.Add(21 * time.Hour) }})
		assert.Subset(t, ids(evs), ids(query(t, s, store.Filter{})))
		require.NoError(t, s.Close())
	})
}

func TestVerifyNamesFlippedSegment(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: day0.Add(5 * 24 * time.Hour)}
	s := open(t, store.Config{Dir: dir, Now: clk.Now})
	for d := range 4 {
		write(t, s, events(uint64(d), 2000, day0.Add(time.Duration(d)*24*time.Hour), 10*time.Second, "e"), 500)
	}
	require.NoError(t, s.Close())
	s = open(t, store.Config{Dir: dir, Now: clk.Now}) // seals the four days
	rep, err := s.Verify(context.Background())
	require.NoError(t, err)
	require.Equal(t, 4, rep.Segments)
	require.NoError(t, s.Close())

	victim := "20250612-000.seg"
	size := fileSize(t, filepath.Join(dir, victim))
	r := rand.New(rand.NewPCG(3, 4))
	offsets := []int64{0, 20, size / 2, size - 200, size - 100, size - 1}
	for range 4 {
		offsets = append(offsets, r.Int64N(size))
	}
	for _, off := range offsets {
		d := crashCopy(t, dir)
		flip(t, filepath.Join(d, victim), off)
		rep, err := store.VerifyDir(context.Background(), d)
		require.ErrorIs(t, err, store.ErrVerify, "offset %d", off)
		assert.Equal(t, victim, rep.Broken, "offset %d: %s", off, rep.Problem)
		assert.Contains(t, err.Error(), victim)
		assert.Equal(t, 2, rep.Segments, "the two earlier segments checked")
	}

	t.Run("segment deleted", func(t *testing.T) {
		d := crashCopy(t, dir)
		require.NoError(t, os.Remove(filepath.Join(d, victim)))
		rep, err := store.VerifyDir(context.Background(), d)
		require.ErrorIs(t, err, store.ErrVerify)
		assert.Equal(t, victim, rep.Broken)
	})
	t.Run("manifest record changed", func(t *testing.T) {
		d := crashCopy(t, dir)
		b, err := os.ReadFile(filepath.Join(d, "MANIFEST"))
		require.NoError(t, err)
		// Change the size field of the second record.
		lines := splitLines(b)
		lines[1] = []byte(string(lines[1][:len("seal 2 20250611-000.seg ")]) + "1" + string(lines[1][len("seal 2 20250611-000.seg "):]))
		require.NoError(t, os.WriteFile(filepath.Join(d, "MANIFEST"), joinLines(lines), 0o640))
		rep, err := store.VerifyDir(context.Background(), d)
		require.ErrorIs(t, err, store.ErrVerify)
		assert.Equal(t, "20250611-000.seg", rep.Broken)
	})
	t.Run("store still opens and queries other days", func(t *testing.T) {
		d := crashCopy(t, dir)
		flip(t, filepath.Join(d, victim), size/2)
		s := open(t, store.Config{Dir: d, Now: clk.Now})
		defer s.Close()
		assert.Len(t, query(t, s, store.Filter{Until: day0.Add(48 * time.Hour)}), 4000)
	})
}

func TestRetentionDeletesExpiredDaysOnly(t *testing.T) {
	dir := t.TempDir()
	now := day0.Add(30*24*time.Hour + 12*time.Hour)
	clk := &clock{t: now}
	cfg := store.Config{Dir: dir, Now: clk.Now, Retention: 10 * 24 * time.Hour}
	s := open(t, cfg)
	for d := range 30 {
		write(t, s, events(uint64(d), 20, day0.Add(time.Duration(d)*24*time.Hour), time.Minute, "e"), 20)
	}
	require.NoError(t, s.Close())
	s = open(t, cfg) // seals the past days and expires
	defer s.Close()
	// Day X goes once X + 1 day + 10 days <= now (day 30, 12:00): X <= day 19.
	got := query(t, s, store.Filter{})
	require.Len(t, got, 10*20)
	assert.Equal(t, day0.Add(20*24*time.Hour), got[0].Time.Truncate(24*time.Hour))
	names, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	assert.Len(t, names, 10)
	rep, err := s.Verify(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 20, rep.Expired)
	assert.Equal(t, 10, rep.Segments)

	// A day later, one more day goes.
	clk.Set(now.Add(24 * time.Hour))
	n, err := s.Expire(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	_, err = s.Verify(context.Background())
	require.NoError(t, err)
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	require.NoError(t, err)
	return st.Size()
}

func appendFile(t *testing.T, p string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func flip(t *testing.T, p string, off int64) {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	b[off] ^= 0x40
	require.NoError(t, os.WriteFile(p, b, 0o640))
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		out = append(out, b[:i])
		if i < len(b) {
			i++
		}
		b = b[i:]
	}
	return out
}

func joinLines(ls [][]byte) []byte {
	var out []byte
	for _, l := range ls {
		out = append(out, l...)
		out = append(out, '\n')
	}
	return out
}
