//go:build !unix

package store

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir creates dir/LOCK; on this platform it does not exclude other
// processes.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("store: lock: %w", err)
	}
	return f, nil
}

func unlockDir(f *os.File) { f.Close() }
