package app

import (
	"math"
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestMemoryLimitChoice(t *testing.T) {
	const gib = int64(1) << 30
	for _, c := range []struct {
		name             string
		cfg              int64
		env              string
		total, cgroup    int64
		want             int64
		wantSourcePrefix string
	}{
		{"GOMEMLIMIT wins", 512, "2GiB", 16 * gib, 0, -1, "GOMEMLIMIT"},
		{"configured", 1536, "", 16 * gib, 0, 1536 << 20, "memory_limit_mb"},
		{"none", -1, "", 16 * gib, 0, math.MaxInt64, "memory_limit_mb"},
		{"machine", 0, "", 16 * gib, 0, 12 * gib, "3/4"},
		{"cgroup lower", 0, "", 16 * gib, 4 * gib, 3 * gib, "3/4"},
		{"cgroup higher", 0, "", 8 * gib, 64 * gib, 6 * gib, "3/4"},
		{"unknown", 0, "", 0, 0, math.MaxInt64, "unknown"},
	} {
		got, src := memoryLimit(c.cfg, c.env, c.total, c.cgroup)
		assert.Equal(t, c.want, got, c.name)
		assert.Contains(t, src, c.wantSourcePrefix, c.name)
	}
	assert.Equal(t, int64(24683620)<<10, memTotal([]byte("MemFree: 1 kB\nMemTotal:       24683620 kB\n")))
	assert.Zero(t, memTotal([]byte("garbage")))
	assert.Zero(t, cgroupLimit([]byte("max\n")))
	assert.Zero(t, cgroupLimit([]byte("9223372036854771712\n")), "v1 unlimited")
	assert.Equal(t, int64(4<<30), cgroupLimit([]byte("4294967296\n")))
}

// The appliance applies memory_limit_mb at start.
func TestMemoryLimitApplied(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "") // unset for the appliance
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	runApp(t, `version: 1
data_dir: data
memory_limit_mb: 3000
listen: {console: "127.0.0.1:0"}
functions: {proxy: false, dns: false, mail: false, waf: false}
`)
	assert.Eventually(t, func() bool { return debug.SetMemoryLimit(-1) == int64(3000)<<20 }, 10*time.Second, 10*time.Millisecond,
		"memory_limit_mb applied by Run")
}
