package incident_test

import (
	"testing"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
)

// BenchmarkAddGrouped: alerts that join an open incident (the flood case:
// one scanner, many blocks), journal written without fsync per alert.
func BenchmarkAddGrouped(b *testing.B) {
	m, err := incident.Open(incident.Config{Dir: b.TempDir(), Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	r := testRule(&testing.T{})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, _ = m.Add(alert(r, "x", t0.Add(time.Duration(i)*time.Millisecond), detect.ActionBlock))
	}
}

// BenchmarkAddGroupedParallel: the same from every core.
func BenchmarkAddGroupedParallel(b *testing.B) {
	m, err := incident.Open(incident.Config{Dir: b.TempDir(), Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	r := testRule(&testing.T{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = m.Add(alert(r, "x", t0, detect.ActionBlock))
		}
	})
}

// BenchmarkOpen: alerts that each open an incident (fsynced).
func BenchmarkOpen(b *testing.B) {
	m, err := incident.Open(incident.Config{Dir: b.TempDir(), Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	r := testRule(&testing.T{})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, _ = m.Add(alert(r, "x", t0.Add(time.Duration(i)*2*time.Hour), detect.ActionBlock))
	}
}
