package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestCheck(t *testing.T) {
	healthy := true
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || !healthy {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer s.Close()
	ctx := context.Background()
	assert.NoError(t, check(ctx, s.URL+"/healthz", 5*time.Second))
	healthy = false
	assert.ErrorContains(t, check(ctx, s.URL+"/healthz", 5*time.Second), "503")
	s.Close()
	assert.Error(t, check(ctx, s.URL+"/healthz", 5*time.Second), "nothing listening")
}
