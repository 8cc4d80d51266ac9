package app

import (
	"bufio"
	"bytes"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The Go runtime's soft memory limit of the appliance process. Go's
// collector lets the heap grow to about twice the live data before it
// collects; under load the WAF's CDN cache, the DNS cache and the
// in-flight bodies make that a real amount (appliance README, "Memory
// under load"). A soft limit makes the collector work harder as the
// process nears it instead of growing past the machine.
//
// memory_limit_mb: > 0 that many MiB; 0 (default) three quarters of the
// memory the process may use (the machine's MemTotal, or the cgroup's
// memory.max when that is lower); < 0 no limit. The GOMEMLIMIT
// environment variable, when set, wins (the runtime applied it at start).

// memoryLimit returns the limit in bytes (math.MaxInt64 = none) and where
// it comes from. memTotal and cgroupMax are in bytes; 0 means unknown.
func memoryLimit(cfgMB int64, env string, memTotal, cgroupMax int64) (int64, string) {
	switch {
	case env != "":
		return -1, "GOMEMLIMIT"
	case cfgMB > 0:
		return cfgMB << 20, "memory_limit_mb"
	case cfgMB < 0:
		return math.MaxInt64, "memory_limit_mb (none)"
	}
	avail := memTotal
	if cgroupMax > 0 && (avail == 0 || cgroupMax < avail) {
		avail = cgroupMax
	}
	if avail <= 0 {
		return math.MaxInt64, "unknown memory size (none)"
	}
	return avail / 4 * 3, "3/4 of the memory available"
}

// memTotal reads MemTotal from a /proc/meminfo text; 0 when absent.
func memTotal(meminfo []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil && kb > 0 {
				return kb << 10
			}
		}
	}
	return 0
}

// cgroupLimit reads a cgroup memory limit file (v2 memory.max: a number
// or "max"; v1 memory.limit_in_bytes: a number, huge when unlimited); 0
// when there is no limit.
func cgroupLimit(b []byte) int64 {
	s := strings.TrimSpace(string(b))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= 1<<60 {
		return 0
	}
	return n
}

// applyMemoryLimit sets the process's soft memory limit from cfgMB and
// logs it.
func applyMemoryLimit(cfgMB int64, log *slog.Logger) {
	mi, _ := os.ReadFile("/proc/meminfo")
	var cg int64
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if b, err := os.ReadFile(p); err == nil {
			if cg = cgroupLimit(b); cg > 0 {
				break
			}
		}
	}
	limit, src := memoryLimit(cfgMB, os.Getenv("GOMEMLIMIT"), memTotal(mi), cg)
	if limit < 0 {
		log.Info("memory limit from GOMEMLIMIT", "bytes", debug.SetMemoryLimit(-1))
		return
	}
	debug.SetMemoryLimit(limit)
	if limit == math.MaxInt64 {
		log.Info("no memory limit", "source", src)
		return
	}
	log.Info("memory limit", "mib", limit>>20, "source", src)
}
