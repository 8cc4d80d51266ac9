package backup_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/appliance/backup"
	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
)

func write(t *testing.T, dir, rel, data string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o750))
	require.NoError(t, os.WriteFile(p, []byte(data), 0o640))
}

// tree returns every regular file under dir with its contents.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[filepath.ToSlash(rel)] = string(b)
		return nil
	}))
	return m
}

func newBackup(t *testing.T, src string, keep int) *backup.Backup {
	t.Helper()
	n := 0
	b, err := backup.New(backup.Config{
		Source: src, Dest: filepath.Join(t.TempDir(), "bk"), Keep: keep,
		Exclude: []string{"LOCK", "*.run"},
		// distinct, increasing ids even within one clock tick
		Now: func() time.Time { n++; return time.Date(2026, 11, 25, 3, 0, n, 0, time.UTC) },
	})
	require.NoError(t, err)
	return b
}

func TestBackupDestroyRestore(t *testing.T) {
	src := t.TempDir()
	write(t, src, "events/MANIFEST", "m1\n")
	write(t, src, "events/20261125-000.seg", "segment data")
	write(t, src, "quarantine/aoba/0001.eml", "Subject: x\r\n\r\nEICAR\r\n")
	write(t, src, "config-history/gen-000001.yaml", "version: 1\n")
	write(t, src, "events/LOCK", "")
	write(t, src, "seccloud.run", "127.0.0.1:9090")
	want := tree(t, src)
	delete(want, "events/LOCK")
	delete(want, "seccloud.run")

	b := newBackup(t, src, 3)
	snap, err := b.Run(context.Background())
	require.NoError(t, err)
	assert.Len(t, snap.Files, 4)
	assert.Equal(t, snap.Bytes, snap.Copied, "first backup copies everything")

	require.NoError(t, os.RemoveAll(src)) // the disaster
	target := filepath.Join(t.TempDir(), "restored")
	rep, err := b.Restore(context.Background(), "latest", target)
	require.NoError(t, err)
	assert.True(t, rep.OK())
	assert.Equal(t, 4, rep.Files)
	assert.Equal(t, want, tree(t, target))

	_, err = b.Restore(context.Background(), "latest", target)
	assert.ErrorContains(t, err, "not empty", "restore never overwrites")
}

func TestIncremental(t *testing.T) {
	src := t.TempDir()
	write(t, src, "a", "aaaa")
	write(t, src, "b", "bbbbbbbb")
	b := newBackup(t, src, 10)
	s1, err := b.Run(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 12, s1.Copied)

	s2, err := b.Run(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 0, s2.Copied, "nothing changed, nothing copied")
	assert.EqualValues(t, 12, s2.Bytes)

	write(t, src, "b", "bbbbbbbbB") // appended
	write(t, src, "c", "aaaa")      // same content as a: stored once
	s3, err := b.Run(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 9, s3.Copied)
	assert.Len(t, s3.Files, 3)

	ids, err := b.List()
	require.NoError(t, err)
	assert.Equal(t, []string{s1.ID, s2.ID, s3.ID}, ids)
	// The first snapshot still restores to what the tree was then.
	target := filepath.Join(t.TempDir(), "r")
	_, err = b.Restore(context.Background(), s1.ID, target)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "aaaa", "b": "bbbbbbbb"}, tree(t, target))
}

func TestVerifyFindsCorruption(t *testing.T) {
	src := t.TempDir()
	write(t, src, "x/one", "first file")
	write(t, src, "x/two", "second file")
	dest := filepath.Join(t.TempDir(), "bk")
	b, err := backup.New(backup.Config{Source: src, Dest: dest})
	require.NoError(t, err)
	snap, err := b.Run(context.Background())
	require.NoError(t, err)

	scratch := t.TempDir()
	var checked string
	rep, err := b.Verify(context.Background(), snap.ID, scratch, func(dir string) error {
		b, err := os.ReadFile(filepath.Join(dir, "x", "two"))
		checked = string(b)
		return err
	})
	require.NoError(t, err)
	assert.True(t, rep.OK())
	assert.Equal(t, "second file", checked)
	ents, _ := os.ReadDir(scratch)
	assert.Empty(t, ents, "verify cleans its scratch directory")

	// Flip one byte of one object.
	var obj string
	for _, f := range snap.Files {
		if f.Path == "x/two" {
			obj = filepath.Join(dest, "objects", f.SHA256[:2], f.SHA256)
		}
	}
	data, err := os.ReadFile(obj)
	require.NoError(t, err)
	data[0] ^= 1
	require.NoError(t, os.WriteFile(obj, data, 0o640))
	rep, err = b.Verify(context.Background(), snap.ID, scratch, nil)
	require.ErrorIs(t, err, backup.ErrVerify)
	assert.Equal(t, []string{"x/two"}, rep.Bad)

	// A check that fails fails the verification.
	require.NoError(t, os.WriteFile(obj, append([]byte{}, "second file"...), 0o640))
	_, err = b.Verify(context.Background(), snap.ID, scratch, func(string) error { return errors.New("store chain broken") })
	assert.ErrorIs(t, err, backup.ErrVerify)
	assert.ErrorContains(t, err, "store chain broken")
}

func TestPrune(t *testing.T) {
	src := t.TempDir()
	b := newBackup(t, src, 2)
	for i := range 4 {
		write(t, src, "f", fmt.Sprint("version ", i))
		_, err := b.Run(context.Background())
		require.NoError(t, err)
	}
	snaps, objs, err := b.Prune()
	require.NoError(t, err)
	assert.Equal(t, 2, snaps)
	assert.Equal(t, 2, objs)
	ids, err := b.List()
	require.NoError(t, err)
	require.Len(t, ids, 2)
	for _, id := range ids {
		_, err := b.Verify(context.Background(), id, t.TempDir(), nil)
		assert.NoError(t, err, "kept snapshots still verify after pruning")
	}
}

func TestDestInsideSourceRefused(t *testing.T) {
	src := t.TempDir()
	_, err := backup.New(backup.Config{Source: src, Dest: filepath.Join(src, "backups")})
	assert.ErrorContains(t, err, "inside the source")
	_, err = backup.New(backup.Config{Source: src, Dest: t.TempDir(), Exclude: []string{"["}})
	assert.Error(t, err)
}

func TestBadSnapshotIDs(t *testing.T) {
	b := newBackup(t, t.TempDir(), 2)
	for _, id := range []string{"", "../x", ".hidden", "a/b"} {
		_, err := b.Load(id)
		assert.Error(t, err, id)
	}
	_, err := b.Load("latest")
	assert.ErrorContains(t, err, "no snapshot")
}

// A live event store keeps taking events while it is backed up; the
// restored copy opens, passes its hash-chain check, and holds every event
// written before the backup began.
func TestLiveStore(t *testing.T) {
	src := t.TempDir()
	dir := filepath.Join(src, "events")
	st, err := store.Open(store.Config{Dir: dir})
	require.NoError(t, err)
	defer st.Close()
	at := time.Now().UTC().Truncate(time.Second)
	ev := func(i int) detect.Event {
		return detect.Event{Time: at.Add(time.Duration(i) * time.Millisecond), Module: "dns", Tenant: "aoba",
			Client: netip.MustParseAddrPort("127.0.1.5:5300"), DNS: detect.DNSInfo{QName: fmt.Sprintf("n%d.example.", i), QType: "A"}}
	}
	const before = 2000
	batch := make([]detect.Event, 0, before)
	for i := range before {
		batch = append(batch, ev(i))
	}
	require.NoError(t, st.WriteEvents(context.Background(), batch))
	require.NoError(t, st.Sync())

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // keep writing during the backup
		defer wg.Done()
		for i := before; !stop.Load(); i++ {
			if err := st.WriteEvents(context.Background(), []detect.Event{ev(i)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	b, err := backup.New(backup.Config{Source: src, Dest: filepath.Join(t.TempDir(), "bk"),
		Exclude: []string{"LOCK"}, First: []string{"MANIFEST"}})
	require.NoError(t, err)
	snap, err := b.Run(context.Background())
	stop.Store(true)
	wg.Wait()
	require.NoError(t, err)

	target := filepath.Join(t.TempDir(), "restored")
	_, err = b.Restore(context.Background(), snap.ID, target)
	require.NoError(t, err)
	rep, err := store.VerifyDir(context.Background(), filepath.Join(target, "events"))
	require.NoError(t, err)
	assert.True(t, rep.OK())
	rs, err := store.Open(store.Config{Dir: filepath.Join(target, "events")})
	require.NoError(t, err)
	defer rs.Close()
	seen := map[string]bool{}
	require.NoError(t, rs.Query(context.Background(), store.Filter{Tenant: "aoba", Since: at.Add(-time.Hour), Until: at.Add(time.Hour)},
		func(e detect.Event) error { seen[e.DNS.QName] = true; return nil }))
	for i := range before {
		if !seen[fmt.Sprintf("n%d.example.", i)] {
			t.Fatalf("event %d written before the backup is missing from the restored store (%d found)", i, len(seen))
		}
	}
}
