package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRecoverAndTornTail(t *testing.T) {
	dir := t.TempDir()
	s, ents, err := Open(Options{Dir: dir})
	require.NoError(t, err)
	require.Empty(t, ents)
	refs := map[string]Ref{}
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("id%d", i)
		ref, err := s.Put(id, 0, []byte(`{"env":`+fmt.Sprint(i)+`}`), []byte("data "+id), nil)
		require.NoError(t, err)
		refs[id] = ref
		b, err := s.ReadData(ref)
		require.NoError(t, err)
		assert.Equal(t, "data "+id, string(b))
	}
	require.NoError(t, s.Done("id1", refs["id1"]))
	// A new generation of id2 replaces the first.
	_, err = s.Put("id2", 1, []byte(`{"gen":1}`), []byte("data id2 v1"), ptr(refs["id2"]))
	require.NoError(t, err)
	require.NoError(t, s.Close())

	// A torn record (crash in the middle of an append) and a stray temp
	// file are ignored.
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	require.Len(t, segs, 1)
	f, err := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	rec, _ := encodeMessage("torn", 0, nil, []byte("never acknowledged"))
	f.Write(rec[:len(rec)-5])
	f.Close()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x.tmp"), []byte("junk"), 0o600))

	s, ents, err = Open(Options{Dir: dir})
	require.NoError(t, err)
	defer s.Close()
	var ids []string
	for _, e := range ents {
		ids = append(ids, e.ID)
		b, err := s.ReadData(e.Ref)
		require.NoError(t, err)
		if e.ID == "id2" {
			assert.Equal(t, uint32(1), e.Gen)
			assert.Equal(t, "data id2 v1", string(b))
			assert.Equal(t, `{"gen":1}`, string(e.Envelope))
		} else {
			assert.Equal(t, "data "+e.ID, string(b))
		}
	}
	assert.ElementsMatch(t, []string{"id0", "id2", "id3", "id4"}, ids)
	_, err = os.Stat(filepath.Join(dir, "x.tmp"))
	assert.True(t, os.IsNotExist(err))
}

func TestCorruptRecordStopsSegment(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(Options{Dir: dir})
	require.NoError(t, err)
	_, err = s.Put("a", 0, nil, []byte("aaaa"), nil)
	require.NoError(t, err)
	_, err = s.Put("b", 0, nil, []byte("bbbb"), nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	b, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	b[len(b)-1] ^= 0xff // flip a byte of the last record
	require.NoError(t, os.WriteFile(segs[0], b, 0o600))
	s, ents, err := Open(Options{Dir: dir})
	require.NoError(t, err)
	defer s.Close()
	require.Len(t, ents, 1)
	assert.Equal(t, "a", ents[0].ID)
}

func TestSegmentsCollected(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(Options{Dir: dir, SegmentSize: 1024, NoSync: true})
	require.NoError(t, err)
	defer s.Close()
	var refs []Ref
	for i := 0; i < 50; i++ {
		ref, err := s.Put(fmt.Sprint("m", i), 0, nil, make([]byte, 200), nil)
		require.NoError(t, err)
		refs = append(refs, ref)
	}
	require.Greater(t, len(s.Segments()), 5)
	for i, r := range refs {
		require.NoError(t, s.Done(fmt.Sprint("m", i), r))
	}
	// One more durable write flushes the done records and collects.
	r, err := s.Put("last", 0, nil, []byte("x"), nil)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(s.Segments()), 2)
	_, err = s.ReadData(r)
	require.NoError(t, err)
}

func ptr[T any](v T) *T { return &v }

func BenchmarkPut(b *testing.B) {
	s, _, err := Open(Options{Dir: b.TempDir(), NoSync: true})
	require.NoError(b, err)
	defer s.Close()
	data := make([]byte, 10<<10)
	env := []byte(`{"f":"a@b.example","t":["c@d.example"]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			ref, err := s.Put(fmt.Sprint("id", i), 0, env, data, nil)
			if err != nil {
				b.Fatal(err)
			}
			s.Done(fmt.Sprint("id", i), ref)
		}
	})
}
