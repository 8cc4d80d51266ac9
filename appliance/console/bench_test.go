package console

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHashPassword is one argon2id hash with DefaultArgon2 (what a
// login costs the server).
func BenchmarkHashPassword(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hashPassword(testPassword, DefaultArgon2); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIncidentsPage renders the operator's incident list (4
// incidents) in process.
func BenchmarkIncidentsPage(b *testing.B) {
	e := newEnv(b, nil)
	c := e.client()
	c.loginForm("soc", testPassword)
	ck := c.http.Jar.Cookies(mustURL(e.srv.URL))
	h := e.c.Handler()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest("GET", "/incidents", nil)
			for _, k := range ck {
				r.AddCookie(k)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}
