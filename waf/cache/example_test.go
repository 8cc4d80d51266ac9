package cache_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/jichitai/seccloud/waf/cache"
)

// A cache in front of an origin handler: the first request is a miss and
// is stored, the second is a hit, and when the origin fails an hour later
// the grace period keeps the page readable.
func Example() {
	now := time.Date(2026, 9, 1, 9, 0, 0, 0, time.UTC)
	c, err := cache.New(cache.Config{MaxBytes: 64 << 20, Now: func() time.Time { return now }})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	up := true
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "避難所: 第一小学校")
	})
	h := c.Handler(origin, cache.Policy{Grace: 24 * time.Hour})
	get := func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "https://bousai.example.jp/shelters", nil))
		fmt.Println(w.Code, w.Header().Get("Cache-Status"), "|", w.Body.String())
	}
	get()
	now = now.Add(10 * time.Second)
	get()
	up = false
	now = now.Add(time.Hour)
	get()
	// Output:
	// 200 seccloud; fwd=uri-miss; fwd-status=200; stored | 避難所: 第一小学校
	// 200 seccloud; hit; ttl=50 | 避難所: 第一小学校
	// 200 seccloud; fwd=stale; fwd-status=502; ttl=-3550; detail=grace | 避難所: 第一小学校
}
