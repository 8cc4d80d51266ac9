package app

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
	"github.com/jichitai/seccloud/dnsres/dnsrestest"
)

// TestDependencyDownAndBack: an edge node whose NATS server is not up
// reports the dependency down (an alert event and the metric), and back up
// once nats-server starts on that address.
func TestDependencyDownAndBack(t *testing.T) {
	if _, err := exec.LookPath("nats-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nats-server not found (CI=true)")
		}
		t.Skip("nats-server not found")
	}
	old := healthInterval
	healthInterval = 100 * time.Millisecond
	t.Cleanup(func() { healthInterval = old })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)

	// Stop nats-server after the appliance (cleanups run last-in first-out),
	// so the appliance's stream queue drains at shutdown.
	var nats *exec.Cmd
	t.Cleanup(func() {
		if nats != nil {
			_ = nats.Process.Kill()
			_ = nats.Wait()
		}
	})
	a, _ := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0"}
functions: {proxy: false, dns: false, mail: false, waf: false}
cluster: {nats: "nats://`+addr+`", role: edge, node: e1}
tenants:
  - {id: aoba, name: あおば市, networks: [127.0.1.0/24], egress_addr: 127.0.0.1}
`)
	events := func() []detect.Event {
		// The local store only: the stream's queue waits for NATS.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, a.events.async.Flush(ctx))
		var out []detect.Event
		require.NoError(t, a.events.store.Query(context.Background(), store.Filter{Module: "appliance",
			Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour)}, func(e detect.Event) error {
			if e.Dataset == "appliance.health" {
				out = append(out, e)
			}
			return nil
		}))
		return out
	}
	require.Eventually(t, func() bool {
		for _, e := range events() {
			if e.Kind == "alert" && e.Action == "component_down" && strings.Contains(e.Message, "dep/cluster/nats") {
				return true
			}
		}
		return false
	}, 10*time.Second, 100*time.Millisecond)

	cmd := exec.Command("nats-server", "-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", port)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	nats = cmd
	require.Eventually(t, func() bool {
		for _, e := range events() {
			if e.Action == "component_up" && strings.Contains(e.Message, "dep/cluster/nats is back") {
				return true
			}
		}
		return false
	}, 20*time.Second, 100*time.Millisecond)
}

// TestClamdDependencyDown: the mail relay scanning with a clamd that does
// not answer reports mail/clamd down (alert event and metric).
func TestClamdDependencyDown(t *testing.T) {
	old := healthInterval
	healthInterval = 100 * time.Millisecond
	t.Cleanup(func() { healthInterval = old })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := l.Addr().String()
	l.Close() // nothing listens there
	a, _ := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0", smtp: "127.0.0.1:0"}
functions: {proxy: false, dns: false, waf: false}
mail: {hostname: relay.test, clamd: "`+dead+`"}
tenants:
  - {id: aoba, name: あおば市, networks: [127.0.1.0/24], egress_addr: 127.0.0.1}
`)
	startedService[*mailService](t, a)
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, a.events.async.Flush(ctx))
		found := false
		require.NoError(t, a.events.store.Query(context.Background(), store.Filter{Module: "appliance",
			Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour)}, func(e detect.Event) error {
			if e.Kind == "alert" && strings.Contains(e.Message, "dep/mail/clamd is down") {
				found = true
			}
			return nil
		}))
		return found
	}, 15*time.Second, 100*time.Millisecond)
	var listed bool
	for _, c := range a.componentStates() {
		if c.Name == "dep/mail/clamd" {
			listed = true
			assert.False(t, c.OK)
		}
	}
	assert.True(t, listed, "mail/clamd is listed")
}

// TestUpstreamDependency: the resolver's forwarding upstream is listed up
// while it answers and reported down (alert event) once it stops.
func TestUpstreamDependency(t *testing.T) {
	old := healthInterval
	healthInterval = 100 * time.Millisecond
	t.Cleanup(func() { healthInterval = old })
	auth := dnsrestest.NewAuthority(t, "127.0.0.1:0", map[string]string{
		"up.example.": "$TTL 300\n@ IN SOA ns.up.example. h.up.example. 1 3600 600 86400 300\n@ IN NS ns.up.example.\nns IN A 127.0.0.53\n",
	})
	a, _ := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0", dns: "127.0.0.1:0"}
functions: {proxy: false, mail: false, waf: false}
dns: {upstreams: ["`+auth.Addr.String()+`"]}
tenants:
  - {id: aoba, name: あおば市, networks: [127.0.1.0/24], egress_addr: 127.0.0.1}
`)
	startedService[*dnsService](t, a)
	name := "dep/dns/upstream " + auth.Addr.String()
	state := func() (listed, ok bool) {
		for _, c := range a.componentStates() {
			if c.Name == name {
				return true, c.OK
			}
		}
		return false, false
	}
	listed, ok := state()
	require.True(t, listed)
	assert.True(t, ok, "the upstream answers")
	auth.Stop()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, a.events.async.Flush(ctx))
		found := false
		require.NoError(t, a.events.store.Query(context.Background(), store.Filter{Module: "appliance",
			Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour)}, func(e detect.Event) error {
			if e.Kind == "alert" && strings.Contains(e.Message, name+" is down") {
				found = true
			}
			return nil
		}))
		return found
	}, 20*time.Second, 200*time.Millisecond)
}
