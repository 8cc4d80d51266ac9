//go:build !linux

package dnsres

import "testing"

// cpuTimer reports nothing where the thread's CPU time is not available.
func cpuTimer(*testing.B) (stop func()) { return func() {} }
