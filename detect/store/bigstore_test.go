//go:build bigstore

package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
)

// The big store: 30 days × 2,000,000 realistic events. Build it once with
//
//	go test -tags bigstore -run TestBigStore -timeout 3h ./detect/store/
//
// (into $STORE_BIG_DIR, default $TMPDIR/seccloud-bigstore), then measure
//
//	go test -tags bigstore -run '^$' -bench BigQuery -count 3 ./detect/store/
const (
	bigDays   = 30
	bigPerDay = 2_000_000
)

func bigDir() string {
	if d := os.Getenv("STORE_BIG_DIR"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "seccloud-bigstore")
}

func TestBigStore(t *testing.T) {
	dir := bigDir()
	if _, err := os.Stat(filepath.Join(dir, "BUILT")); err == nil {
		t.Skipf("%s already built", dir)
	}
	require.NoError(t, os.RemoveAll(dir))
	now := day0
	s, err := store.Open(store.Config{Dir: dir, Now: func() time.Time { return now }})
	require.NoError(t, err)
	evs := pool(200_000)
	buf := make([]detect.Event, 1000)
	start := time.Now()
	for d := range bigDays {
		ds := time.Now()
		for i := 0; i < bigPerDay; i += len(buf) {
			for j := range buf {
				buf[j] = evs[(d*bigPerDay+i+j)%len(evs)]
				buf[j].Time = day0.Add(time.Duration(d)*24*time.Hour + time.Duration(i+j)*dayStep)
			}
			// The clock follows the events, so each day seals an hour
			// after it ends, as in production.
			now = buf[0].Time
			require.NoError(t, s.WriteEvents(context.Background(), buf))
		}
		t.Logf("day %d: %v", d+1, time.Since(ds).Round(time.Millisecond))
	}
	now = day0.Add(bigDays*24*time.Hour + 2*time.Hour)
	require.NoError(t, s.Close())
	el := time.Since(start)
	var total int64
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, p := range segs {
		st, err := os.Stat(p)
		require.NoError(t, err)
		total += st.Size()
	}
	t.Logf("built %d events in %v (%.0f events/s); %d segments, %d bytes, %.1f bytes/event",
		bigDays*bigPerDay, el.Round(time.Second), float64(bigDays*bigPerDay)/el.Seconds(), len(segs), total, float64(total)/float64(bigDays*bigPerDay))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "BUILT"), []byte(el.String()+"\n"), 0o640))
}

// BenchmarkBigQuery reads one tenant's day (day 15, tenant t07) from the
// 30 × 2 M store built by TestBigStore.
func BenchmarkBigQuery(b *testing.B) {
	dir := bigDir()
	if _, err := os.Stat(filepath.Join(dir, "BUILT")); err != nil {
		b.Skip("run TestBigStore first")
	}
	s, err := store.Open(store.Config{Dir: dir, ReadOnly: true})
	require.NoError(b, err)
	defer s.Close()
	f := store.Filter{Tenant: "t07", Since: day0.Add(14 * 24 * time.Hour), Until: day0.Add(15 * 24 * time.Hour)}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n = 0
		if err := s.Query(context.Background(), f, func(detect.Event) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "events/query")
}
