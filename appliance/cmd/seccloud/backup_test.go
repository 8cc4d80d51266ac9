package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
)

// TestBackupDestroyRestore backs up a data directory with a sealed and an
// open store segment, an incident journal and a quarantined mail, destroys
// it, restores it with the CLI, and finds every event and file back.
func TestBackupDestroyRestore(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	bkDir := filepath.Join(dir, "backups")
	cfgPath := filepath.Join(dir, "seccloud.yaml")
	cfg := configYAML(dataDir, "127.0.0.1:0", tenantYAML("tsu", "津市", "127.0.1.0/24")) +
		fmt.Sprintf("backup:\n  dir: %s\n  keep: 3\n", bkDir)
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o640))

	day := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	now := day.Add(time.Hour)
	st, err := store.Open(store.Config{Dir: filepath.Join(dataDir, "events"), Now: func() time.Time { return now }})
	require.NoError(t, err)
	var evs []detect.Event
	for i := range 50 {
		evs = append(evs, detect.Event{Time: day.Add(time.Duration(i) * time.Minute), Module: "proxy", Tenant: "tsu",
			Action: "http_request", URL: fmt.Sprintf("http://example.jp/%d", i)})
	}
	require.NoError(t, st.WriteEvents(context.Background(), evs))
	now = day.Add(26 * time.Hour) // the first day is sealed on the next write
	require.NoError(t, st.WriteEvents(context.Background(), []detect.Event{{Time: now, Module: "proxy", Tenant: "tsu", URL: "http://example.jp/open"}}))
	require.NoError(t, st.Close())
	extra := map[string]string{
		"incidents/journal.jsonl":     `{"id":"INC-1"}` + "\n",
		"quarantine/tsu/q1.eml":       "Subject: EICAR\r\n\r\nX5O!P%@AP\r\n",
		"quarantine/tsu/q1.meta.json": `{"reason":"virus"}`,
		"config-history/gen-1.yaml":   "version: 1\n",
	}
	for rel, data := range extra {
		p := filepath.Join(dataDir, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o750))
		require.NoError(t, os.WriteFile(p, []byte(data), 0o640))
	}
	eventsOut := func() string {
		out, rc := seccloud(t, bin, "events", "-tenant", "tsu", "-since", "2025-04-01", "-until", "2025-04-02", "-config", cfgPath)
		require.Equal(t, 0, rc, out)
		return out
	}
	before := eventsOut()
	require.Equal(t, 51, strings.Count(before, "http://example.jp/"), before)

	out, rc := seccloud(t, bin, "backup", "run", "-config", cfgPath)
	require.Equal(t, 0, rc, out)
	assert.Contains(t, out, "snapshot ")
	out, rc = seccloud(t, bin, "backup", "run", "-config", cfgPath)
	require.Equal(t, 0, rc, out)
	assert.Contains(t, out, " 0 bytes new", "nothing changed: the second backup copies nothing")
	out, rc = seccloud(t, bin, "backup", "list", "-config", cfgPath)
	require.Equal(t, 0, rc, out)
	assert.Equal(t, 2, strings.Count(out, "files"), out)
	out, rc = seccloud(t, bin, "backup", "verify", "-config", cfgPath)
	require.Equal(t, 0, rc, out)
	assert.Contains(t, out, "OK")

	// Restore refuses to write over a data directory that still holds data.
	out, rc = seccloud(t, bin, "backup", "restore", "-config", cfgPath)
	assert.Equal(t, 1, rc, out)
	assert.Contains(t, out, "not empty")

	require.NoError(t, os.RemoveAll(dataDir)) // the disk is lost
	out, rc = seccloud(t, bin, "backup", "restore", "-config", cfgPath)
	require.Equal(t, 0, rc, out)
	assert.Contains(t, out, "all checked")
	assert.Equal(t, before, eventsOut(), "every event is back")
	for rel, data := range extra {
		got, err := os.ReadFile(filepath.Join(dataDir, filepath.FromSlash(rel)))
		require.NoError(t, err, rel)
		assert.Equal(t, data, string(got), rel)
	}
	out, rc = seccloud(t, bin, "store", "verify", "-config", cfgPath)
	require.Equal(t, 0, rc, out)

	// A damaged backup object fails verification with exit code 1.
	objs, err := filepath.Glob(filepath.Join(bkDir, "objects", "*", "*"))
	require.NoError(t, err)
	require.NotEmpty(t, objs)
	for _, o := range objs {
		require.NoError(t, os.WriteFile(o, []byte("damaged"), 0o640))
	}
	out, rc = seccloud(t, bin, "backup", "verify", "-config", cfgPath)
	assert.Equal(t, 1, rc, out)
	assert.Contains(t, out, "verify failed")

	out, rc = seccloud(t, bin, "backup", "list", "-config", filepath.Join(dir, "missing.yaml"))
	assert.Equal(t, 1, rc, out)
	out, rc = seccloud(t, bin, "backup")
	assert.Equal(t, 2, rc, out)
}
