package proxy_test

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/tenant"
)

func breakoutTenants(t testing.TB) *tenant.Snapshot {
	return testTenants(t, func(ts []tenant.Tenant) { ts[0].Policy.Breakout = []string{"slack"} })
}

// remoteIP answers the client address the origin sees.
var remoteIP = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	fmt.Fprint(w, host)
})

func lastEvent(t *testing.T, e *env, n int) detect.Event {
	evs := e.sink.waitEvents(t, n)
	return evs[n-1]
}

func TestBreakoutAndFallback(t *testing.T) {
	o := origin(t, "127.0.0.1:0", remoteIP)
	port := o.Listener.Addr().(*net.TCPAddr).Port
	health, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	healthAddr := health.Addr().String()
	e := startProxy(t, proxy.Config{
		Directory: breakoutTenants(t),
		Resolver: fakeResolver{"app.slack.com": {netip.MustParseAddr("127.0.0.1")},
			"www.example.test": {netip.MustParseAddr("127.0.0.1")}},
		Breakout: &proxy.BreakoutConfig{LocalAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.77")},
			HealthTarget: healthAddr, HealthInterval: 20 * time.Millisecond},
	})
	c := e.client(termA)
	slack := fmt.Sprintf("http://app.slack.com:%d/", port)
	other := fmt.Sprintf("http://www.example.test:%d/", port)
	n := 0
	fetch := func(u string, c *http.Client) (string, detect.Event) {
		t.Helper()
		_, body := get(t, c, u)
		n++
		return body, lastEvent(t, e, n)
	}

	body, ev := fetch(slack, c)
	assert.Equal(t, "127.0.0.77", body, "slack leaves over the breakout line")
	assert.Equal(t, "slack", label(ev, "app"))
	assert.Equal(t, proxy.PathBreakout, label(ev, "egress"))
	body, ev = fetch(other, c)
	assert.Equal(t, "127.0.1.254", body, "other sites leave from the tenant's egress")
	assert.Empty(t, ev.Labels)
	body, ev = fetch(slack, e.client(termB))
	assert.Equal(t, "127.0.2.254", body, "a tenant without the app in its policy stays on the main line")
	assert.Equal(t, proxy.PathMain, label(ev, "egress"))

	// The breakout line goes down: slack falls back to the main egress.
	require.NoError(t, health.Close())
	require.Eventually(t, func() bool { return !e.srv.BreakoutUp() }, 10*time.Second, 10*time.Millisecond)
	body, ev = fetch(slack, c)
	assert.Equal(t, "127.0.1.254", body)
	assert.Equal(t, proxy.PathFallback, label(ev, "egress"))
	assert.Equal(t, "slack", label(ev, "app"))

	// It comes back: slack returns to it.
	health, err = net.Listen("tcp", healthAddr)
	require.NoError(t, err)
	t.Cleanup(func() { health.Close() })
	require.Eventually(t, func() bool { return e.srv.BreakoutUp() }, 10*time.Second, 10*time.Millisecond)
	body, ev = fetch(slack, c)
	assert.Equal(t, "127.0.0.77", body)
	assert.Equal(t, proxy.PathBreakout, label(ev, "egress"))
}

func TestBreakoutViaUpstreamProxy(t *testing.T) {
	o := origin(t, "127.0.0.1:0", remoteIP)
	port := o.Listener.Addr().(*net.TCPAddr).Port
	// The breakout line's proxy: a second seccloud proxy that knows the
	// breakout source 127.0.0.88 as its tenant leaving from 127.0.0.99.
	lineDir, err := tenant.NewSnapshot([]tenant.Tenant{{ID: "line", Name: "line",
		Networks:   []netip.Prefix{netip.MustParsePrefix("127.0.0.88/32")},
		EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.0.99")}}}, tenant.Options{})
	require.NoError(t, err)
	up := startProxy(t, proxy.Config{Directory: lineDir, ConnectPorts: []uint16{uint16(port)}})
	e := startProxy(t, proxy.Config{
		Directory: breakoutTenants(t),
		Resolver:  fakeResolver{"files.slack.com": {netip.MustParseAddr("127.0.0.1")}},
		Breakout: &proxy.BreakoutConfig{Proxy: up.addr, LocalAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.88")},
			HealthInterval: 20 * time.Millisecond},
	})
	_, body := get(t, e.client(termA), fmt.Sprintf("http://files.slack.com:%d/", port))
	assert.Equal(t, "127.0.0.99", body, "the request left through the upstream proxy on the breakout line")
	ev := e.sink.waitEvents(t, 1)[0]
	assert.Equal(t, proxy.PathBreakout, label(ev, "egress"))
}

func TestApps(t *testing.T) {
	apps := proxy.DefaultApps()
	ids := map[string]bool{}
	for _, a := range apps {
		ids[a.ID] = true
		assert.NotEmpty(t, a.Domains, a.ID)
		assert.NotEqual(t, a.ID, a.Title, "%s has a title", a.ID)
	}
	assert.Equal(t, map[string]bool{"m365": true, "google": true, "slack": true, "webex": true}, ids)

	fsys := fstest.MapFS{
		"apps/box.txt": {Data: []byte("# Box\ntitle Box\nbox.com\n=app.box.com # one host\n")},
	}
	got, err := proxy.LoadApps(fsys, "apps")
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, proxy.App{ID: "box", Title: "Box", Domains: []string{"box.com", "=app.box.com"}}, got[0])

	for name, src := range map[string]string{
		"empty":     "# nothing\n",
		"url":       "https://box.com/\n",
		"two words": "box.com extra\n",
		"bad host":  "bad..host\n",
	} {
		_, err := proxy.ParseApp("x", strings.NewReader(src))
		assert.Error(t, err, name)
	}
}

func TestBreakoutInspected(t *testing.T) {
	health, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { health.Close() })
	e := startInspect(t, remoteIP, func(c *proxy.Config) {
		c.Directory = breakoutTenants(t)
		c.Resolver.(fakeResolver)["app.slack.com"] = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
		c.Breakout = &proxy.BreakoutConfig{LocalAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.77")},
			HealthTarget: health.Addr().String(), HealthInterval: 20 * time.Millisecond}
	})
	c := e.httpsClient(e.caPool, false)
	_, body := get(t, c, e.url("app.slack.com", "/"))
	assert.Equal(t, "127.0.0.77", body, "inspected slack leaves over the breakout line")
	_, body = get(t, c, e.url("www.example.test", "/"))
	assert.Equal(t, "127.0.1.254", body)
	var found bool
	for _, ev := range e.sink.waitEvents(t, 2) {
		if ev.Action == "http_request" && label(ev, "app") == "slack" {
			found = true
			assert.Equal(t, proxy.PathBreakout, label(ev, "egress"))
			assert.Equal(t, "inspected", label(ev, "tls"))
		}
	}
	assert.True(t, found)
}
