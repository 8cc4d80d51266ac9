package cache_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jichitai/seccloud/waf/cache"
)

func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=60", `private="a,b", no-cache`, "s-maxage=1, stale-if-error=99999999999999999999999", `x="\"`, ",,=,", "MAX-AGE=-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := cache.ParseCacheControl(strings.Split(s, "\n"))
		for _, v := range []int64{d.MaxAge, d.SMaxAge, d.MaxStale, d.MinFresh, d.StaleIfError, d.StaleWhileRevalidate} {
			if v < -1 || v > 1<<31 {
				t.Fatalf("delta %d out of range for %q", v, s)
			}
		}
	})
}

// FuzzResponseHeaders stores and serves responses with arbitrary caching
// headers: nothing may panic, and a served body is the origin's.
func FuzzResponseHeaders(f *testing.F) {
	f.Add("max-age=60", "Accept", "Sat, 01 Jan 2000 00:00:00 GMT", "10", `"e"`)
	f.Add("s-maxage=x, stale-while-revalidate=5", "*", "garbage", "-3", "")
	f.Fuzz(func(t *testing.T, cc, vary, expires, age, etag string) {
		c, err := cache.New(cache.Config{MaxBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			for k, v := range map[string]string{"Cache-Control": cc, "Vary": vary, "Expires": expires, "Age": age, "ETag": etag} {
				if v != "" && !strings.ContainsAny(v, "\r\n\x00") {
					h.Set(k, v)
				}
			}
			if r.Header.Get("If-None-Match") != "" && r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(304)
				return
			}
			w.Write([]byte("body"))
		})
		for range 3 {
			w := httptest.NewRecorder()
			c.Serve(w, httptest.NewRequest("GET", "http://h/p", nil), next, cache.Policy{Grace: 1})
			if w.Code == 200 && w.Body.String() != "body" {
				t.Fatalf("served %q", w.Body.String())
			}
		}
	})
}
