package dnsres

import (
	"runtime"
	"syscall"
	"testing"
)

// threadCPU returns the CPU time the calling OS thread has used, in
// nanoseconds (RUSAGE_THREAD): unlike wall time it does not count the
// time the thread waited for a core, so that figures taken on a busy
// machine compare.
func threadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// cpuTimer measures the CPU time of the benchmark's goroutine, locked to
// its thread; stop reports it as cpu-ns/op.
func cpuTimer(b *testing.B) (stop func()) {
	runtime.LockOSThread()
	start := threadCPU()
	return func() {
		d := threadCPU() - start
		runtime.UnlockOSThread()
		if start > 0 && b.N > 0 {
			b.ReportMetric(float64(d)/float64(b.N), "cpu-ns/op")
		}
	}
}
