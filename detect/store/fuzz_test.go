package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
)

// sampleFiles returns the write-ahead log, an open part and a sealed
// segment of a small real store.
func sampleFiles(tb testing.TB) (wal, part, seg []byte) {
	dir := tb.TempDir()
	clk := &clock{t: day0.Add(26 * time.Hour)}
	s, err := store.Open(store.Config{Dir: dir, Now: clk.Now, BlockSize: 4096})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	_ = s.WriteEvents(ctx, events(1, 40, day0.Add(time.Hour), time.Minute, "a"))
	clk.Set(day0.Add(30 * time.Hour))
	_ = s.WriteEvents(ctx, events(2, 400, day0.Add(29*time.Hour), time.Second, "b"))
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	wal, part, seg = read("wal"), read("20250611-000.open"), read("20250610-000.seg")
	_ = s.Close()
	return wal, part, seg
}

// FuzzOpen opens a store whose write-ahead log, open part and sealed
// segment hold arbitrary bytes: Open must repair or refuse with an error,
// and Query and Verify must return errors, never panic.
func FuzzOpen(f *testing.F) {
	wal, part, seg := sampleFiles(f)
	f.Add(wal, part, seg)
	f.Add(wal[:len(wal)/2], part[:len(part)/3], seg[:len(seg)-1])
	f.Add([]byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, wal, part, seg []byte) {
		dir := t.TempDir()
		for name, b := range map[string][]byte{"wal": wal, "20250611-000.open": part, "20250610-000.seg": seg} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
				t.Fatal(err)
			}
		}
		now := func() time.Time { return day0.Add(30 * time.Hour) }
		ctx := context.Background()
		_, _ = store.VerifyDir(ctx, dir)
		s, err := store.Open(store.Config{Dir: dir, Now: now})
		if err != nil {
			return
		}
		defer s.Close()
		_ = s.Query(ctx, store.Filter{}, func(detect.Event) error { return nil })
		_ = s.Query(ctx, store.Filter{Tenant: "t01"}, func(detect.Event) error { return nil })
		_, _ = s.Verify(ctx)
		if err := s.WriteEvents(ctx, events(3, 5, day0.Add(29*time.Hour), time.Second, "c")); err != nil {
			t.Fatalf("repaired store refuses writes: %v", err)
		}
	})
}

// TestWriteFuzzCorpus regenerates the committed seed corpus of FuzzOpen
// from a real store: STORE_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("STORE_WRITE_CORPUS") == "" {
		t.Skip("set STORE_WRITE_CORPUS=1 to regenerate testdata/fuzz/FuzzOpen")
	}
	wal, part, seg := sampleFiles(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seeds := map[string][3][]byte{
		"real-store":      {wal, part, seg},
		"torn-tails":      {wal[:len(wal)-7], part[:len(part)*2/3], seg[:len(seg)-1]},
		"garbage-tail":    {append(append([]byte(nil), wal...), 0xde, 0xad, 0xbe, 0xef, 9, 9, 9, 9, 2), append(append([]byte(nil), part...), "SCBK junk"...), seg},
		"wal-header-only": {wal[:8], part[:16], seg[:0]},
	}
	for name, s := range seeds {
		text := "go test fuzz v1\n"
		for _, b := range s {
			text += fmt.Sprintf("[]byte(%s)\n", strconv.Quote(string(b)))
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
