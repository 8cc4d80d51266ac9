package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/dnsres/dnsrestest"
)

// startNATSServer starts Debian's nats-server with JetStream on a loopback
// port (skipped when it is not installed, unless CI=true).
func startNATSServer(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("nats-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nats-server not found (CI=true): install the Debian package nats-server")
		}
		t.Skip("nats-server not found")
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("nats-server", "-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", port)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(t, func() bool { return strings.Contains(log.String(), "Server is ready") }, 20*time.Second, 20*time.Millisecond, "%s", log)
	return "nats://" + addr
}

// TestThreeNodes runs three appliance processes on one NATS JetStream
// stream: a detector and two edges. Events of all three reach the
// detector's one incident list and store; an edge killed with SIGKILL in
// the middle of a load leaves the others serving, and every query the
// surviving nodes answered is in the detector's store.
func TestThreeNodes(t *testing.T) {
	bin := buildBinary(t)
	natsURL := startNATSServer(t)
	auth := dnsrestest.NewAuthority(t, "127.0.0.1:0", map[string]string{
		"cc.example.": "$TTL 300\n@ IN SOA ns.cc.example. h.cc.example. 1 3600 600 86400 300\n" +
			"@ IN NS ns.cc.example.\nns IN A 127.0.0.53\n@ IN A 127.0.0.77\n",
		"load.example.": "$TTL 300\n@ IN SOA ns.load.example. h.load.example. 1 3600 600 86400 300\n" +
			"@ IN NS ns.load.example.\nns IN A 127.0.0.53\n* IN A 127.0.0.88\n",
	})
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cc.txt"), []byte("cc.example\n"), 0o600))

	type node struct {
		name, role, dns, console, cfg, data string
		app                                 *appliance
		answered                            atomic.Int64
	}
	nodes := []*node{{name: "n1", role: "detector"}, {name: "n2", role: "edge"}, {name: "n3", role: "edge"}}
	for _, n := range nodes {
		n.dns, n.console = freeAddr(t), freeAddr(t)
		n.data = filepath.Join(dir, n.name)
		n.cfg = filepath.Join(dir, n.name+".yaml")
		require.NoError(t, os.WriteFile(n.cfg, []byte(fmt.Sprintf(`version: 1
data_dir: %s
listen: {console: "%s", dns: "%s"}
functions: {proxy: false, mail: false, waf: false}
dns: {upstreams: ["%s"]}
intel: {domains: [cc.txt]}
cluster: {nats: "%s", role: %s, node: %s}
tenants:
  - id: aoba
    name: あおば市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    policy: {report_only: true}
    contacts:
      - {name: 情報政策課, email: security@aoba.example}
`, n.data, n.console, n.dns, auth.Addr, natsURL, n.role, n.name)), 0o600))
		n.app = start(t, bin, n.console, "-config", n.cfg)
	}

	query := func(n *node, terminal, name string) bool {
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second,
			Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(terminal)}}}
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, _, err := c.Exchange(m, n.dns)
		return err == nil && r.Rcode == dns.RcodeSuccess
	}
	// Each node's terminal looks up the C&C name.
	for i, n := range nodes {
		require.True(t, query(n, "127.0.1."+strconv.Itoa(10+i), "cc.example."), n.name)
	}

	// Load on every node; n3 is killed half way.
	const perNode = 300
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perNode {
				if n.name == "n3" && k == perNode/2 {
					require.NoError(t, n.app.cmd.Process.Signal(syscall.SIGKILL))
					<-n.app.exited
				}
				if query(n, "127.0.1."+strconv.Itoa(20+i), fmt.Sprintf("q%d.%s.load.example.", k, n.name)) {
					n.answered.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	assert.EqualValues(t, perNode, nodes[0].answered.Load(), "the detector kept serving")
	assert.EqualValues(t, perNode, nodes[1].answered.Load(), "the other edge kept serving")
	assert.EqualValues(t, perNode/2, nodes[2].answered.Load(), "n3 answered until it was killed")

	// Stop the survivors gracefully (edges first, so their queues drain
	// into the stream while the detector still reads it), then read the
	// detector's store and incident journal.
	for _, n := range []*node{nodes[1], nodes[0]} {
		if n == nodes[0] {
			// The detector has read everything published: its consumed
			// counter holds at least the surviving nodes' query events and
			// has stopped moving.
			var last string
			require.Eventually(t, func() bool {
				v := n.app.metric("seccloud_cluster_events_consumed_total")
				f, err := strconv.ParseFloat(v, 64)
				same := err == nil && f >= 2*perNode && v == last
				last = v
				return same
			}, 30*time.Second, 700*time.Millisecond)
		}
		n.app.signal(syscall.SIGTERM)
		require.NoError(t, n.app.wait(30*time.Second))
	}

	out, rc := seccloud(t, bin, "events", "-module", "dns", "-config", nodes[0].cfg)
	require.Equal(t, 0, rc, out)
	for _, n := range nodes {
		seen := map[string]bool{}
		for k := range perNode {
			if strings.Contains(out, fmt.Sprintf(`"q%d.%s.load.example`, k, n.name)) {
				seen[fmt.Sprint(k)] = true
			}
		}
		if n.name == "n3" {
			assert.LessOrEqual(t, len(seen), perNode/2)
			assert.NotZero(t, len(seen), "the killed edge's published events reached the detector")
		} else {
			assert.Len(t, seen, perNode, "every query %s answered is in the detector's store", n.name)
		}
	}
	// Edges keep their own events in their own store too.
	out2, rc := seccloud(t, bin, "events", "-module", "dns", "-config", nodes[1].cfg)
	require.Equal(t, 0, rc, out2)
	assert.Contains(t, out2, `"q0.n2.load.example`)
	assert.NotContains(t, out2, `"q0.n1.load.example`)

	// One incident per terminal, all on the detector; none on the edges.
	incidents := func(n *node) []incident.Incident {
		m, err := incident.Open(incident.Config{Dir: filepath.Join(n.data, "incidents")})
		require.NoError(t, err)
		defer m.Close()
		var out []incident.Incident
		for _, inc := range m.List(incident.Filter{}) {
			if inc.Rule == "seccloud-dns-intel-query" {
				out = append(out, inc)
			}
		}
		return out
	}
	var terms []string
	for _, inc := range incidents(nodes[0]) {
		terms = append(terms, inc.Terminal)
	}
	assert.ElementsMatch(t, []string{"127.0.1.10", "127.0.1.11", "127.0.1.12"}, terms)
	assert.Empty(t, incidents(nodes[1]))
	_ = context.Background
}
