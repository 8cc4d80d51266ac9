package cache_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/waf/cache"
)

// TestMemoryBoundRealBytes fills caches three times over their bound with
// responses of different shapes and compares the live heap they hold
// (runtime.MemStats after a GC) with Config.MaxBytes: the bound must hold
// in real bytes, and the count must not be so pessimistic that the cache
// holds far less than it says. Before the count was made real, many small
// responses (headers and bookkeeping outweighing the body) held about 1.4
// times the bound.
func TestMemoryBoundRealBytes(t *testing.T) {
	const limit = 4 << 20
	cases := []struct {
		name  string
		body  int // bytes
		chunk int // the origin path writes the body in chunks of this size
		hdrs  int // extra response header fields
	}{
		{"empty bodies, many headers", 0, 1, 12},
		{"small page like the varied bench", 730, 32 << 10, 0},
		{"40 KiB page in 32 KiB writes", 40 << 10, 32 << 10, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(strings.Repeat("x", tc.body))
			origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// fresh strings per response, like a transport reading
				// them off the wire
				h := w.Header()
				h.Set("Server", strings.Clone("nginx/1.26.3"))
				h.Set("Content-Type", strings.Clone("text/html"))
				h.Set("Content-Length", strconv.Itoa(len(body)))
				h.Set("Last-Modified", strings.Clone("Wed, 25 Nov 2026 10:00:00 GMT"))
				h.Set("ETag", fmt.Sprintf("\"%x-%s\"", len(body), r.URL.RawQuery))
				h.Set("Accept-Ranges", strings.Clone("bytes"))
				for i := range tc.hdrs {
					h.Set(fmt.Sprintf("X-Extra-%d", i), fmt.Sprintf("value %d of %s", i, r.URL.RawQuery))
				}
				for b := body; len(b) > 0; {
					n := min(tc.chunk, len(b))
					_, _ = w.Write(b[:n])
					b = b[n:]
				}
			})
			before := liveHeap()
			c, err := cache.New(cache.Config{MaxBytes: limit})
			require.NoError(t, err)
			defer c.Close()
			stored := 0
			for i := 0; stored < 3*limit; i++ {
				r := httptest.NewRequest("GET", "http://app.bench.test/index.html?id="+strconv.Itoa(i)+"&q=weather", nil)
				res := c.Serve(httptest.NewRecorder(), r, origin, cache.Policy{})
				require.True(t, res.Stored, "request %d not stored", i)
				stored += tc.body + 200
			}
			held := liveHeap() - before
			st := c.Stats()
			require.Positive(t, st.Evictions, "the bound was reached")
			assert.LessOrEqual(t, st.Bytes, int64(limit), "counted bytes within the bound")
			assert.LessOrEqual(t, held, int64(limit)*105/100, "live heap %d for a bound of %d (%d entries)", held, limit, st.Entries)
			assert.GreaterOrEqual(t, held, st.Bytes*80/100, "the count %d overstates the live heap %d", st.Bytes, held)
			t.Logf("entries %d, counted %d, live heap %d (%.2f of counted)", st.Entries, st.Bytes, held, float64(held)/float64(st.Bytes))
			runtime.KeepAlive(c)
		})
	}
}

// liveHeap is the heap in use after a full collection.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestDiskIndexBound: the disk tier's index lives in memory, so many
// small responses evicted to disk must not grow it beyond its share of
// MaxBytes (half), even when the files' bound (MaxDiskBytes) is far
// away, and the memory tier and the index together stay within MaxBytes.
func TestDiskIndexBound(t *testing.T) {
	const limit = 256 << 10
	c, err := cache.New(cache.Config{MaxBytes: limit, Dir: t.TempDir(), MaxDiskBytes: 64 << 20})
	require.NoError(t, err)
	defer c.Close()
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.WriteHeader(http.StatusNoContent)
	})
	for i := range 3000 {
		r := httptest.NewRequest("GET", "http://www.example.jp/item?id="+strconv.Itoa(i), nil)
		require.True(t, c.Serve(httptest.NewRecorder(), r, origin, cache.Policy{}).Stored)
	}
	st := c.Stats()
	assert.Positive(t, st.DiskEntries)
	assert.LessOrEqual(t, st.DiskIndexBytes, int64(limit/2))
	assert.Positive(t, st.DiskIndexBytes)
	assert.LessOrEqual(t, st.Bytes+st.DiskIndexBytes, int64(limit))
	assert.Less(t, st.Entries+st.DiskEntries, 3000, "the index bound evicted files before MaxDiskBytes did")
	t.Logf("memory %d entries / %d bytes, disk %d files / %d bytes, index %d bytes", st.Entries, st.Bytes, st.DiskEntries, st.DiskBytes, st.DiskIndexBytes)
}
