package console

import (
	"bytes"
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

// BenchmarkRequestsPage renders the operator's request list with 200
// requests in process.
func BenchmarkRequestsPage(b *testing.B) {
	e := newEnv(b, nil)
	for i := range 200 {
		tn := []string{"aoba", "midori"}[i%2]
		if _, err := e.reqs.Create(NewRequest{Tenant: tn, Kind: KindInquiry, Subject: "問い合わせ", Body: "本文", By: "x", Side: "tenant"}); err != nil {
			b.Fatal(err)
		}
	}
	c := e.client()
	c.loginForm("soc", testPassword)
	ck := c.http.Jar.Cookies(mustURL(e.srv.URL))
	h := e.c.Handler()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest("GET", "/requests", nil)
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

// BenchmarkRequestUpdate is one comment with a 64 KiB attachment, stored
// durably (attachment fsync, JSON rewrite with fsync and rename).
func BenchmarkRequestUpdate(b *testing.B) {
	rs, err := OpenRequests(RequestsConfig{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	r, err := rs.Create(NewRequest{Tenant: "aoba", Kind: KindInquiry, Subject: "s", By: "x", Side: "tenant"})
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 64<<10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%MaxAttachments == MaxAttachments-1 { // a new request before the cap
			r, _ = rs.Create(NewRequest{Tenant: "aoba", Kind: KindInquiry, Subject: "s", By: "x", Side: "tenant"})
		}
		i++
		if _, err := rs.Update(r.ID, "soc", "operator", "comment", "", []Upload{{Name: "f.bin", Body: bytes.NewReader(body)}}, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}
