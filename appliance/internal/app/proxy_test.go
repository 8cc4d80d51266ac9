package app

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
)

// TestProxyThroughAppliance drives the wired proxy with curl as a terminal
// of tenant tsu (127.0.1.5) and as a source in no tenant (127.0.0.1), then
// finds the access events in the store.
func TestProxyThroughAppliance(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (Debian package curl)")
	}
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "origin ok") }))
	t.Cleanup(o.Close) // after the appliance stops
	a, ctx := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0", proxy: "127.0.0.1:0"}
tenants:
  - {id: tsu, name: 津市, networks: [127.0.1.0/24], egress_addr: 127.0.0.1}
`)
	addr := startedService[*proxyService](t, a).addr

	out, err := exec.Command(curl, "-s", "--interface", "127.0.1.5", "-x", "http://"+addr, o.URL+"/x").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "origin ok", string(out))
	out, err = exec.Command(curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.1", "-x", "http://"+addr, o.URL+"/x").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "403", string(out), "a source in no tenant is refused")

	require.NoError(t, a.events.flush(ctx, 10*time.Second))
	var got []detect.Event
	require.NoError(t, a.events.store.Query(ctx, store.Filter{Module: "proxy"}, func(e detect.Event) error {
		got = append(got, e)
		return nil
	}))
	require.Len(t, got, 2)
	byTenant := map[string]detect.Event{}
	for _, e := range got {
		byTenant[e.Tenant] = e
	}
	assert.Equal(t, 200, byTenant["tsu"].HTTP.Status)
	assert.Equal(t, "127.0.1.5", byTenant["tsu"].Terminal)
	assert.Equal(t, 403, byTenant[""].HTTP.Status)
	assert.Equal(t, detect.ActionBlock, byTenant[""].Verdict.Action)
}
