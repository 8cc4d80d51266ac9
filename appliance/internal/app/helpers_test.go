package app

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runApp writes yaml as the config file, runs the appliance and returns it
// with its context; the appliance is stopped (and must exit cleanly) when
// the test ends.
func runApp(t *testing.T, yaml string) (*App, context.Context) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(yaml), 0o600))
	a, err := New(Options{ConfigPath: cfg, Log: io.Discard})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, 10*time.Second) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return a, ctx
}

// startedService waits until the function's service of type S is running
// and returns it.
func startedService[S service](t *testing.T, a *App) S {
	t.Helper()
	var svc S
	require.Eventually(t, func() bool {
		for _, f := range a.funcs {
			f.mu.Lock()
			s, ok := f.svc.(S)
			f.mu.Unlock()
			if ok {
				svc = s
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	return svc
}
