//go:build !unix

package spool

import "os"

// lockDir is a no-op where flock is not available: run one relay per
// queue directory.
func lockDir(string) (*os.File, error) { return nil, nil }
