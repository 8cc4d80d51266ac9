package spool

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzLedger opens a spool whose import ledger holds arbitrary bytes (a
// torn or damaged file): Open never panics, keeps only whole lines, and
// the file ends with a newline (or is empty) so the next append starts a
// fresh line.
func FuzzLedger(f *testing.F) {
	f.Add([]byte("a\nb\n"))
	f.Add([]byte("a\nbro"))
	f.Add([]byte("\n\n\x00\xff\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, ledgerName), b, 0o600))
		s, _, err := Open(Options{Dir: dir, NoSync: true})
		require.NoError(t, err)
		defer s.Close()
		got, err := os.ReadFile(filepath.Join(dir, ledgerName))
		require.NoError(t, err)
		require.True(t, len(got) == 0 || got[len(got)-1] == '\n')
		require.True(t, bytes.HasPrefix(b, got))
		for id := range s.imp.ids {
			require.NotEmpty(t, id)
			require.Contains(t, string(got), id+"\n")
		}
	})
}

// BenchmarkRehome imports a queue of 1,000 messages of 10 KiB per
// iteration (fsync off: the CPU and copy path; with fsync the disk decides).
func BenchmarkRehome(b *testing.B) {
	const n = 1000
	data := make([]byte, 10<<10)
	env := []byte(`{"f":"a@b.example","t":["c@d.example"]}`)
	b.ReportAllocs()
	b.SetBytes(n * int64(len(data)))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		src, dst := b.TempDir(), b.TempDir()
		s, _, err := Open(Options{Dir: src, NoSync: true})
		require.NoError(b, err)
		for k := range n {
			_, err := s.Put(fmt.Sprint("m", k), 0, env, data, nil)
			require.NoError(b, err)
		}
		require.NoError(b, s.Close())
		d, _, err := Open(Options{Dir: dst, NoSync: true})
		require.NoError(b, err)
		b.StartTimer()
		st, err := d.Rehome(src, nil)
		b.StopTimer()
		require.NoError(b, err)
		require.Equal(b, n, st.Imported)
		require.NoError(b, d.Close())
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
