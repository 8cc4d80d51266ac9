package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fillSource writes a spool with five messages: m0..m4, m1 done, m2 at
// generation 1. It returns the live ids and their data.
func fillSource(t *testing.T, dir string) map[string]string {
	t.Helper()
	s, _, err := Open(Options{Dir: dir})
	require.NoError(t, err)
	refs := map[string]Ref{}
	for i := range 5 {
		id := fmt.Sprintf("m%d", i)
		refs[id], err = s.Put(id, 0, []byte(`{"n":`+fmt.Sprint(i)+`}`), []byte("data "+id), nil)
		require.NoError(t, err)
	}
	require.NoError(t, s.Done("m1", refs["m1"]))
	_, err = s.Put("m2", 1, []byte(`{"n":2,"a":1}`), []byte("data m2"), ptr(refs["m2"]))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	return map[string]string{"m0": "data m0", "m2": "data m2", "m3": "data m3", "m4": "data m4"}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(to, 0o700))
	names, err := filepath.Glob(filepath.Join(from, "*"))
	require.NoError(t, err)
	for _, n := range names {
		b, err := os.ReadFile(n)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(to, filepath.Base(n)), b, 0o600))
	}
}

func TestRehomeImportsOnceAndMarksSource(t *testing.T) {
	src, dstDir := t.TempDir(), t.TempDir()
	want := fillSource(t, src)
	dst, _, err := Open(Options{Dir: dstDir})
	require.NoError(t, err)
	own, err := dst.Put("own", 0, []byte(`{}`), []byte("own data"), nil)
	require.NoError(t, err)

	got := map[string]string{}
	st, err := dst.Rehome(src, func(r Rehomed) {
		got[r.ID] = string(r.Data)
		b, err := dst.ReadData(r.Ref) // durable here, readable by ref
		require.NoError(t, err)
		assert.Equal(t, r.Data, b)
		if r.ID == "m2" {
			assert.Equal(t, uint32(1), r.Gen)
			assert.Equal(t, `{"n":2,"a":1}`, string(r.Envelope))
		}
	})
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, RehomeStats{Imported: 4, Bytes: int64(4 * len("data m0"))}, st)

	// A second run finds the source empty: it was marked done.
	st, err = dst.Rehome(src, func(r Rehomed) { t.Errorf("imported %s twice", r.ID) })
	require.NoError(t, err)
	assert.Equal(t, RehomeStats{}, st)

	// The node that owned the source comes back: nothing to deliver.
	s, ents, err := Open(Options{Dir: src})
	require.NoError(t, err)
	assert.Empty(t, ents)
	require.NoError(t, s.Close())

	// This node restarts: its own message and the imported ones are there.
	require.NoError(t, dst.Close())
	dst, ents, err = Open(Options{Dir: dstDir})
	require.NoError(t, err)
	defer dst.Close()
	ids := map[string]string{}
	for _, e := range ents {
		b, err := dst.ReadData(e.Ref)
		require.NoError(t, err)
		ids[e.ID] = string(b)
	}
	want["own"] = "own data"
	assert.Equal(t, want, ids)
	_ = own
}

// A copy of the source taken before the import (a second disk copy, or a
// crash before the source was marked) is recognised: nothing twice, even
// after the imported messages were delivered here.
func TestRehomeCopyIsDuplicate(t *testing.T) {
	src, dstDir := t.TempDir(), t.TempDir()
	want := fillSource(t, src)
	snapshot := filepath.Join(t.TempDir(), "copy")
	copyDir(t, src, snapshot)

	dst, _, err := Open(Options{Dir: dstDir})
	require.NoError(t, err)
	var delivered []Rehomed
	st, err := dst.Rehome(src, func(r Rehomed) { delivered = append(delivered, r) })
	require.NoError(t, err)
	require.Equal(t, len(want), st.Imported)
	for _, r := range delivered { // delivered: done records
		require.NoError(t, dst.Done(r.ID, r.Ref))
	}
	_, err = dst.Put("flush", 0, nil, []byte("x"), nil)
	require.NoError(t, err)

	st, err = dst.Rehome(snapshot, func(r Rehomed) { t.Errorf("imported %s twice", r.ID) })
	require.NoError(t, err)
	assert.Equal(t, RehomeStats{Duplicates: len(want)}, st)
	// and the copy is marked done as well
	s, ents, err := Open(Options{Dir: snapshot})
	require.NoError(t, err)
	assert.Empty(t, ents)
	require.NoError(t, s.Close())
	require.NoError(t, dst.Close())
}

// A crash after the import records were durable but before the ledger
// line was (simulated by cutting the ledger, leaving a torn line): Open
// adds the live import records to the ledger, and the source, never
// marked, is then recognised as already imported.
func TestRehomeCrashBeforeLedger(t *testing.T) {
	src, dstDir := t.TempDir(), t.TempDir()
	want := fillSource(t, src)
	unmarked := filepath.Join(t.TempDir(), "unmarked")
	copyDir(t, src, unmarked)

	dst, _, err := Open(Options{Dir: dstDir})
	require.NoError(t, err)
	_, err = dst.Rehome(src, nil)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dstDir, ledgerName), []byte("m0\nm2"), 0o600)) // torn

	dst, ents, err := Open(Options{Dir: dstDir})
	require.NoError(t, err)
	defer dst.Close()
	assert.Len(t, ents, len(want))
	b, err := os.ReadFile(filepath.Join(dstDir, ledgerName))
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"m0", "m2", "m3", "m4"}, splitLines(string(b)))

	st, err := dst.Rehome(unmarked, func(r Rehomed) { t.Errorf("imported %s twice", r.ID) })
	require.NoError(t, err)
	assert.Equal(t, RehomeStats{Duplicates: len(want)}, st)
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

func TestRehomeRefuses(t *testing.T) {
	dstDir := t.TempDir()
	dst, _, err := Open(Options{Dir: dstDir})
	require.NoError(t, err)
	defer dst.Close()

	live := t.TempDir()
	fillSource(t, live)
	running, _, err := Open(Options{Dir: live}) // its node still runs
	require.NoError(t, err)
	_, err = dst.Rehome(live, nil)
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, running.Close())

	for name, dir := range map[string]string{
		"own directory": dstDir,
		"empty":         t.TempDir(),
		"missing":       filepath.Join(t.TempDir(), "nope"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := dst.Rehome(dir, nil)
			require.Error(t, err)
			_, statErr := os.Stat(filepath.Join(dir, "LOCK"))
			if name != "own directory" {
				assert.True(t, os.IsNotExist(statErr), "no spool created in %s", dir)
			}
		})
	}
}

func TestOpenLocksDirectory(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(Options{Dir: dir})
	require.NoError(t, err)
	_, _, err = Open(Options{Dir: dir})
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, s.Close())
	s, _, err = Open(Options{Dir: dir})
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

func TestRehomeAfterClose(t *testing.T) {
	src := t.TempDir()
	fillSource(t, src)
	dst, _, err := Open(Options{Dir: t.TempDir()})
	require.NoError(t, err)
	require.NoError(t, dst.Close())
	_, err = dst.Rehome(src, nil)
	require.ErrorIs(t, err, ErrClosed)
}
