package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
)

// smallFS mounts a tmpfs of size bytes (root only) and returns its path
// and a function that resizes it.
func smallFS(t *testing.T, size string) (string, func(string)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small filesystem needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir, func(size string) {
		out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
}

// TestFullDisk fills a 256 KiB filesystem: writes fail with ENOSPC and a
// clear error, nothing already written is damaged, and after space is
// freed (the filesystem grown) the reopened store holds every event whose
// write succeeded, verifies, and takes new events.
func TestFullDisk(t *testing.T) {
	dir, resize := smallFS(t, "256k")
	at := time.Now().UTC().Truncate(time.Hour)
	st, err := store.Open(store.Config{Dir: dir})
	require.NoError(t, err)
	ok := 0
	var werr error
	for i := 0; i < 100_000; i++ {
		batch := make([]detect.Event, 20)
		for k := range batch {
			n := i*20 + k
			batch[k] = detect.Event{Time: at.Add(time.Duration(n) * time.Millisecond), Module: "dns", Tenant: "aoba",
				Message: fmt.Sprintf("query %d with some padding to fill the disk faster %x", n, n*7919)}
		}
		if werr = st.WriteEvents(context.Background(), batch); werr != nil {
			break
		}
		ok += len(batch)
	}
	require.Error(t, werr, "the disk never filled")
	assert.True(t, errors.Is(werr, syscall.ENOSPC), "want ENOSPC in the error chain, got %v", werr)
	assert.Contains(t, werr.Error(), "store")
	require.NotZero(t, ok)
	// Further small writes may still fit (the failed frame was cut from the
	// log); whatever is acknowledged must survive like the rest.
	var more []string
	for i := range 50 {
		msg := fmt.Sprintf("more %d", i)
		if st.WriteEvents(context.Background(), []detect.Event{{Time: at, Module: "dns", Tenant: "aoba", Message: msg}}) == nil {
			more = append(more, msg)
		}
	}
	_ = st.Close() // may fail too: the disk is full

	resize("16m")
	st, err = store.Open(store.Config{Dir: dir})
	require.NoError(t, err, "the store reopens after space is freed")
	defer st.Close()
	seen := map[string]bool{}
	require.NoError(t, st.Query(context.Background(), store.Filter{Tenant: "aoba", Since: at.Add(-time.Hour), Until: at.Add(24 * time.Hour)},
		func(e detect.Event) error { seen[e.Message] = true; return nil }))
	for i := 0; i < ok; i++ {
		if !seen[fmt.Sprintf("query %d with some padding to fill the disk faster %x", i, i*7919)] {
			t.Fatalf("event %d, written before the disk filled, is missing (%d of %d found)", i, len(seen), ok)
		}
	}
	for _, m := range more {
		assert.True(t, seen[m], "%q was acknowledged after the disk filled and is missing", m)
	}
	rep, err := st.Verify(context.Background())
	require.NoError(t, err)
	assert.True(t, rep.OK())
	require.NoError(t, st.WriteEvents(context.Background(), []detect.Event{{Time: at, Module: "dns", Tenant: "aoba", Message: "after"}}))
}
