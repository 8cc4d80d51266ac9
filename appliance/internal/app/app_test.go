package app

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testConfig = `version: 1
data_dir: data
listen: {console: "127.0.0.1:0"}
tenants:
  - {id: tsu, name: 津市, networks: [127.0.1.0/24], egress_addr: 127.0.0.1}
`

// TestRunReloadShutdown runs the App in-process under the race detector:
// concurrent reloads and console requests, then a graceful shutdown.
func TestRunReloadShutdown(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(testConfig), 0o600))
	a, err := New(Options{ConfigPath: cfg, Log: io.Discard})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, 10*time.Second) }()
	base := "http://" + a.ConsoleAddr()
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)

	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			res, err := a.Reload("test")
			assert.NoError(t, err)
			assert.True(t, res.OK)
			assert.Equal(t, 1, res.Generation) // unchanged file: no new generation
		}()
		go func() {
			defer wg.Done()
			resp, err := http.Get(base + "/metrics")
			if assert.NoError(t, err) {
				resp.Body.Close()
			}
			_, ok := a.live.ByAddr(mustAddr("127.0.1.9"))
			assert.True(t, ok)
		}()
	}
	wg.Wait()

	require.NoError(t, os.WriteFile(cfg, []byte("version: 1\nbogus: 1\n"), 0o600))
	res, err := a.Reload("test")
	require.Error(t, err)
	assert.False(t, res.OK)
	assert.Len(t, res.Errors, 2) // unknown key, missing console
	assert.Equal(t, 1, len(a.live.Load().Tenants()))

	cancel()
	require.NoError(t, <-done)
	_, err = os.Stat(filepath.Join(dir, "data", "seccloud.run"))
	assert.True(t, os.IsNotExist(err))
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
