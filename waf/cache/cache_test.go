package cache_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/waf/cache"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is an origin on loopback behind a ReverseProxy behind the cache.
type fixture struct {
	t      *testing.T
	clk    *clock
	c      *cache.Cache
	h      http.Handler
	hits   atomic.Int64
	mu     sync.Mutex
	handle func(w http.ResponseWriter, r *http.Request)
	last   atomic.Pointer[http.Request]
}

func newFixture(t *testing.T, cfg cache.Config, p cache.Policy) *fixture {
	f := &fixture{t: t, clk: &clock{t: time.Now().Truncate(time.Second)}}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		f.last.Store(r.Clone(r.Context()))
		w.Header().Set("Date", f.clk.Now().UTC().Format(http.TimeFormat))
		f.mu.Lock()
		h := f.handle
		f.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(origin.Close)
	u, _ := url.Parse(origin.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	cfg.Now = f.clk.Now
	c, err := cache.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	f.c = c
	f.h = c.Handler(rp, p)
	f.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "page "+r.URL.Path)
	})
	return f
}

func (f *fixture) setHandler(h func(w http.ResponseWriter, r *http.Request)) {
	f.mu.Lock()
	f.handle = h
	f.mu.Unlock()
}

func (f *fixture) get(path string, hdr ...string) *httptest.ResponseRecorder {
	return f.do(http.MethodGet, path, hdr...)
}

func (f *fixture) do(method, path string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://www.example.jp"+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func TestHitMissAndAge(t *testing.T) {
	f := newFixture(t, cache.Config{}, cache.Policy{})
	w := f.get("/a")
	require.Equal(t, 200, w.Code)
	assert.Equal(t, "page /a", w.Body.String())
	assert.Equal(t, "seccloud; fwd=uri-miss; fwd-status=200; stored", w.Header().Get("Cache-Status"))
	f.clk.Add(10 * time.Second)
	w = f.get("/a")
	assert.Equal(t, "page /a", w.Body.String())
	assert.Equal(t, "seccloud; hit; ttl=50", w.Header().Get("Cache-Status"))
	assert.Equal(t, "10", w.Header().Get("Age"))
	assert.EqualValues(t, 1, f.hits.Load())
	w = f.do(http.MethodHead, "/a")
	assert.Equal(t, 200, w.Code)
	assert.Empty(t, w.Body.String())
	assert.Equal(t, "7", w.Header().Get("Content-Length"))
	assert.EqualValues(t, 1, f.hits.Load(), "HEAD is answered from the GET entry")
	st := f.c.Stats()
	assert.EqualValues(t, 1, st.Entries)
	assert.EqualValues(t, 2, st.Hits)
}

func TestNotStored(t *testing.T) {
	for name, tc := range map[string]struct {
		hdr  map[string]string
		req  []string
		code int
	}{
		"no-store":      {hdr: map[string]string{"Cache-Control": "no-store, max-age=60"}},
		"private":       {hdr: map[string]string{"Cache-Control": "private, max-age=60"}},
		"set-cookie":    {hdr: map[string]string{"Cache-Control": "max-age=60", "Set-Cookie": "sid=1"}},
		"vary-star":     {hdr: map[string]string{"Cache-Control": "max-age=60", "Vary": "*"}},
		"no-freshness":  {hdr: map[string]string{}},
		"500":           {hdr: map[string]string{"Cache-Control": "max-age=60"}, code: 500},
		"authorization": {hdr: map[string]string{"Cache-Control": "max-age=60"}, req: []string{"Authorization", "Basic eDp5"}},
		"req-no-store":  {hdr: map[string]string{"Cache-Control": "max-age=60"}, req: []string{"Cache-Control", "no-store"}},
		"range":         {hdr: map[string]string{"Cache-Control": "max-age=60"}, req: []string{"Range", "bytes=0-1"}},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, cache.Config{}, cache.Policy{})
			f.setHandler(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.hdr {
					w.Header().Set(k, v)
				}
				if tc.code != 0 {
					w.WriteHeader(tc.code)
				}
				fmt.Fprint(w, "x")
			})
			f.get("/n", tc.req...)
			f.get("/n", tc.req...)
			assert.EqualValues(t, 2, f.hits.Load())
			assert.Zero(t, f.c.Stats().Entries)
		})
	}
}

func TestVary(t *testing.T) {
	f := newFixture(t, cache.Config{}, cache.Policy{})
	f.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprint(w, "lang="+r.Header.Get("Accept-Language"))
	})
	assert.Equal(t, "lang=ja", f.get("/v", "Accept-Language", "ja").Body.String())
	w := f.get("/v", "Accept-Language", "en")
	assert.Equal(t, "lang=en", w.Body.String())
	assert.Contains(t, w.Header().Get("Cache-Status"), "fwd=vary-miss")
	assert.Equal(t, "lang=ja", f.get("/v", "Accept-Language", "ja").Body.String())
	assert.Equal(t, "lang=en", f.get("/v", "Accept-Language", "en").Body.String())
	assert.EqualValues(t, 2, f.hits.Load())
}

func TestRevalidation(t *testing.T) {
	f := newFixture(t, cache.Config{}, cache.Policy{})
	f.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "body v1")
	})
	f.get("/r")
	f.clk.Add(20 * time.Second)
	w := f.get("/r")
	assert.Equal(t, 200, w.Code)
	assert.Equal(t, "body v1", w.Body.String())
	assert.Equal(t, "seccloud; fwd=stale; fwd-status=304; ttl=10", w.Header().Get("Cache-Status"))
	assert.Equal(t, `"v1"`, f.last.Load().Header.Get("If-None-Match"))
	// fresh again after the 304
	w = f.get("/r")
	assert.Contains(t, w.Header().Get("Cache-Status"), "hit")
	assert.EqualValues(t, 2, f.hits.Load())
	// the client's own validator is answered from the cache
	w = f.get("/r", "If-None-Match", `W/"v1"`)
	assert.Equal(t, http.StatusNotModified, w.Code)
	assert.Empty(t, w.Body.String())
	assert.EqualValues(t, 2, f.hits.Load())
}

func TestStaleWhileRevalidate(t *testing.T) {
	f := newFixture(t, cache.Config{}, cache.Policy{})
	var n atomic.Int64
	f.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=30")
		fmt.Fprintf(w, "v%d", n.Add(1))
	})
	assert.Equal(t, "v1", f.get("/s").Body.String())
	f.clk.Add(15 * time.Second)
	w := f.get("/s")
	assert.Equal(t, "v1", w.Body.String(), "stale copy served at once")
	assert.Contains(t, w.Header().Get("Cache-Status"), "detail=stale-while-revalidate")
	require.Eventually(t, func() bool { return f.get("/s").Body.String() == "v2" }, 5*time.Second, 5*time.Millisecond)
	assert.EqualValues(t, 2, f.hits.Load(), "one background revalidation")
}

func TestStaleIfErrorAndGrace(t *testing.T) {
	for name, tc := range map[string]struct {
		cc     string
		grace  time.Duration
		after  time.Duration
		served bool
		detail string
	}{
		"stale-if-error inside":  {cc: "max-age=10, stale-if-error=60", after: 30 * time.Second, served: true, detail: "stale-if-error"},
		"stale-if-error outside": {cc: "max-age=10, stale-if-error=60", after: 2 * time.Minute},
		"must-revalidate":        {cc: "max-age=10, stale-if-error=60, must-revalidate", after: 30 * time.Second},
		"grace":                  {cc: "max-age=10, must-revalidate", grace: time.Hour, after: 30 * time.Minute, served: true, detail: "grace"},
		"grace over":             {cc: "max-age=10", grace: time.Hour, after: 2 * time.Hour},
		"grace without headers":  {cc: "", grace: time.Hour, after: time.Minute, served: true, detail: "grace"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, cache.Config{}, cache.Policy{Grace: tc.grace})
			f.setHandler(func(w http.ResponseWriter, r *http.Request) {
				if tc.cc != "" {
					w.Header().Set("Cache-Control", tc.cc)
				}
				fmt.Fprint(w, "good copy")
			})
			f.get("/e")
			f.clk.Add(tc.after)
			f.setHandler(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "down", http.StatusServiceUnavailable)
			})
			w := f.get("/e")
			if !tc.served {
				assert.Equal(t, http.StatusServiceUnavailable, w.Code)
				return
			}
			assert.Equal(t, 200, w.Code)
			assert.Equal(t, "good copy", w.Body.String())
			assert.Contains(t, w.Header().Get("Cache-Status"), "fwd-status=503")
			assert.Contains(t, w.Header().Get("Cache-Status"), "detail="+tc.detail)
		})
	}
}

func TestGraceWhenOriginUnreachable(t *testing.T) {
	clk := &clock{t: time.Now()}
	c, err := cache.New(cache.Config{Now: clk.Now})
	require.NoError(t, err)
	defer c.Close()
	l := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=5")
		fmt.Fprint(w, "disaster info")
	}))
	u, _ := url.Parse(l.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	h := c.Handler(rp, cache.Policy{Grace: 24 * time.Hour})
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/info", nil)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get()
	require.Equal(t, 200, code)
	l.Close() // every origin down: connection refused
	clk.Add(time.Hour)
	code, body = get()
	assert.Equal(t, 200, code)
	assert.Equal(t, "disaster info", body)
}

func TestCoalescing(t *testing.T) {
	f := newFixture(t, cache.Config{}, cache.Policy{})
	release := make(chan struct{})
	f.setHandler(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "popular")
	})
	const n = 50
	var wg sync.WaitGroup
	bodies := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); bodies[i] = f.get("/hot").Body.String() }()
	}
	// wait until the leader reached the origin, then let it answer
	require.Eventually(t, func() bool { return f.hits.Load() == 1 }, 5*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	for _, b := range bodies {
		assert.Equal(t, "popular", b)
	}
	assert.EqualValues(t, 1, f.hits.Load(), "one origin fetch for the burst")
}

func TestUncacheableNotSerialised(t *testing.T) {
	f := newFixture(t, cache.Config{}, cache.Policy{})
	f.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, "dynamic")
	})
	f.get("/d") // learns that /d is not storable
	var inflight, peak atomic.Int64
	release := make(chan struct{})
	f.setHandler(func(w http.ResponseWriter, r *http.Request) {
		if v := inflight.Add(1); v > peak.Load() {
			peak.Store(v)
		}
		<-release
		inflight.Add(-1)
		w.Header().Set("Cache-Control", "no-store")
	})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); f.get("/d") }()
	}
	require.Eventually(t, func() bool { return inflight.Load() == 3 }, 5*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
}

func TestPurge(t *testing.T) {
	f := newFixture(t, cache.Config{}, cache.Policy{})
	for _, p := range []string{"/news/1", "/news/2", "/top"} {
		f.get(p)
	}
	require.Equal(t, 3, f.c.Stats().Entries)
	assert.Equal(t, 1, f.c.Purge("http://WWW.example.jp/top"))
	assert.Equal(t, 0, f.c.Purge("http://www.example.jp/top"))
	srv := httptest.NewServer(f.c.PurgeHandler())
	defer srv.Close()
	resp, err := http.PostForm(srv.URL, url.Values{"prefix": {"www.example.jp/news/"}})
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.JSONEq(t, `{"purged":2}`, string(b))
	assert.Zero(t, f.c.Stats().Entries)
	resp, err = http.Get(srv.URL + "?url=x")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	f.get("/top")
	assert.EqualValues(t, 4, f.hits.Load())
}

func TestUnsafeMethodInvalidates(t *testing.T) {
	f := newFixture(t, cache.Config{}, cache.Policy{})
	f.get("/form")
	f.do(http.MethodPost, "/form")
	f.get("/form")
	assert.EqualValues(t, 3, f.hits.Load())
}

func TestSizeBoundAndDisk(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, cache.Config{MaxBytes: 64 << 10, Dir: dir}, cache.Policy{})
	body := strings.Repeat("x", 4<<10)
	f.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, body+r.URL.Path)
	})
	for i := range 40 {
		f.get(fmt.Sprintf("/p%d", i))
	}
	st := f.c.Stats()
	assert.LessOrEqual(t, st.Bytes, int64(64<<10))
	assert.Positive(t, st.Evictions)
	assert.Positive(t, st.DiskEntries)
	// an evicted page comes back from disk without the origin
	w := f.get("/p0")
	assert.Equal(t, body+"/p0", w.Body.String())
	assert.Contains(t, w.Header().Get("Cache-Status"), "hit")
	assert.EqualValues(t, 40, f.hits.Load())
	assert.Equal(t, 1, f.c.Purge("www.example.jp/p1"), "purge reaches the disk tier")

	// without disk: evicted means gone
	g := newFixture(t, cache.Config{MaxBytes: 64 << 10}, cache.Policy{})
	g.setHandler(f.handle)
	for i := range 40 {
		g.get(fmt.Sprintf("/p%d", i))
	}
	assert.LessOrEqual(t, g.c.Stats().Bytes, int64(64<<10))
	g.get("/p0")
	assert.EqualValues(t, 41, g.hits.Load())
}

func TestDefaultTTLPolicy(t *testing.T) {
	f := newFixture(t, cache.Config{}, cache.Policy{DefaultTTL: time.Minute})
	f.setHandler(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "cms page") })
	f.get("/cms")
	f.get("/cms")
	assert.EqualValues(t, 1, f.hits.Load())
	f.get("/cms2", "Cookie", "sid=abc") // personalised: no default TTL
	f.get("/cms2", "Cookie", "sid=abc")
	assert.EqualValues(t, 3, f.hits.Load())
}

func TestServeStored(t *testing.T) {
	f := newFixture(t, cache.Config{}, cache.Policy{})
	f.get("/x")
	w := httptest.NewRecorder()
	res, ok := f.c.ServeStored(w, httptest.NewRequest("GET", "http://www.example.jp/x", nil), cache.Policy{})
	require.True(t, ok)
	assert.Equal(t, cache.Hit, res.Status)
	assert.Equal(t, "page /x", w.Body.String())
	_, ok = f.c.ServeStored(httptest.NewRecorder(), httptest.NewRequest("GET", "http://www.example.jp/y", nil), cache.Policy{})
	assert.False(t, ok)
}

func TestParseCacheControl(t *testing.T) {
	d := cache.ParseCacheControl([]string{`Max-Age=60, s-maxage="30", private="Set-Cookie, X"`, "no-cache, stale-if-error=5", "max-age=1"})
	assert.EqualValues(t, 60, d.MaxAge)
	assert.EqualValues(t, 30, d.SMaxAge)
	assert.True(t, d.Private)
	assert.True(t, d.NoCache)
	assert.EqualValues(t, 5, d.StaleIfError)
	assert.EqualValues(t, -1, d.StaleWhileRevalidate)
	assert.False(t, d.Public)
	d = cache.ParseCacheControl([]string{"max-age=abc, stale-while-revalidate=99999999999999999999"})
	assert.EqualValues(t, 0, d.MaxAge)
	assert.EqualValues(t, 1<<31, d.StaleWhileRevalidate)
}

func TestClientNoCache(t *testing.T) {
	for _, honor := range []bool{false, true} {
		f := newFixture(t, cache.Config{}, cache.Policy{HonorRequestNoCache: honor})
		f.get("/p")
		f.get("/p", "Cache-Control", "no-cache")
		f.get("/p", "Cache-Control", "max-age=0")
		want := int64(1)
		if honor {
			want = 3
		}
		assert.Equal(t, want, f.hits.Load(), "honor=%v", honor)
	}
}
