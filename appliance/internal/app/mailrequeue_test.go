package app

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMailRequeueAPIRefuses: POST /api/mail/requeue only from loopback,
// only with an absolute path holding a queue; nothing is created at a
// wrong path.
func TestMailRequeueAPIRefuses(t *testing.T) {
	a, _ := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0", smtp: "127.0.0.1:0"}
functions: {proxy: false, dns: false, waf: false}
mail: {hostname: relay.test}
tenants:
  - id: tsu
    name: 津市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    mail_domains: [city.tsu.example.jp]
    mail_servers: ["127.0.0.1:1"]
`)
	startedService[*mailService](t, a)
	h := a.handler()
	empty := t.TempDir()
	missing := filepath.Join(t.TempDir(), "nope")
	for _, tt := range []struct {
		name, remote, body string
		want               int
	}{
		{"not loopback", "192.0.2.7:4000", `{"from":"` + empty + `"}`, http.StatusForbidden},
		{"relative path", "127.0.0.1:4000", `{"from":"data/mailq"}`, http.StatusBadRequest},
		{"not json", "127.0.0.1:4000", `from=/x`, http.StatusBadRequest},
		{"no queue there", "127.0.0.1:4000", `{"from":"` + empty + `"}`, http.StatusBadRequest},
		{"missing directory", "127.0.0.1:4000", `{"from":"` + missing + `"}`, http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/api/mail/requeue", strings.NewReader(tt.body))
			r.RemoteAddr = tt.remote
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			assert.Equal(t, tt.want, w.Code, w.Body.String())
		})
	}
	ents, err := os.ReadDir(empty)
	require.NoError(t, err)
	assert.Empty(t, ents, "no queue created in a directory that held none")
	_, err = os.Stat(missing)
	assert.True(t, os.IsNotExist(err))
}
