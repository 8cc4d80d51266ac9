package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// redisProc is Debian's redis-server on a loopback port, started by a test.
type redisProc struct {
	t    *testing.T
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedisServer(t *testing.T) *redisProc {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not found (CI=true): install the Debian package redis-server")
		}
		t.Skip("redis-server not found; install the Debian package redis-server")
	}
	r := &redisProc{t: t, addr: freeAddr(t)}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisProc) start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.t.TempDir(), "--loglevel", "warning")
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(r.t, r.cmd.Start())
	r.done = make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
	defer c.Close()
	require.Eventually(r.t, func() bool { return c.Ping(context.Background()).Err() == nil }, 15*time.Second, 20*time.Millisecond)
}

func (r *redisProc) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

func sharedNodeYAML(dataDir, console, wafAddr, origin, redisAddr string) string {
	return fmt.Sprintf(`version: 1
data_dir: %s
log: {level: info, format: json}
listen: {console: "%s", waf_http: "%s"}
functions: {proxy: false, dns: false, mail: false, waf: true}
waf:
  engine: {off: true}
  ddos: {client_rate: 0.001, client_burst: 5}
cluster: {redis: "%s"}
tenants:
  - id: tsu
    name: 津市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    sites:
      - {host: www.tsu.example.jp, origins: ["%s"]}
    contacts:
      - {name: 担当, email: soc@tsu.example.jp}
`, dataDir, console, wafAddr, redisAddr, origin)
}

// TestSharedLimitsRedis runs two appliance processes on one real Redis
// (cluster.redis): an account locked out by failed logins on node 1 is
// locked on node 2, and a client that spent its WAF burst on node 1 is
// refused on node 2. With Redis killed each node falls back to its own
// limits (it keeps serving) and reports dep/cluster/redis down with an
// alert event; with Redis back it reports it up.
func TestSharedLimitsRedis(t *testing.T) {
	bin := buildBinary(t)
	rds := startRedisServer(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "津市の防災情報")
	}))
	defer origin.Close()
	dir := t.TempDir()
	type node struct {
		cfg, console, waf string
		app               *appliance
	}
	var nodes []*node
	for i := range 2 {
		n := &node{cfg: filepath.Join(dir, fmt.Sprintf("n%d.yaml", i+1)), console: freeAddr(t), waf: freeAddr(t)}
		require.NoError(t, os.WriteFile(n.cfg, []byte(sharedNodeYAML(filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			n.console, n.waf, origin.Listener.Addr().String(), rds.addr)), 0o600))
		cmd := exec.Command(bin, "account", "add", "-config", n.cfg, "-user", "soc", "-role", "operator")
		cmd.Stdin = strings.NewReader("operator password!\n")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		n.app = start(t, bin, n.console, "-config", n.cfg)
		nodes = append(nodes, n)
	}
	login := func(n *node, password string) int {
		res, err := http.Post("http://"+n.console+"/api/v1/session", "application/json",
			bytes.NewReader([]byte(`{"user":"soc","password":"`+password+`"}`)))
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	site := func(n *node, client string) int {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(client)}}).DialContext}}
		req, _ := http.NewRequest("GET", "http://"+n.waf+"/", nil)
		req.Host = "www.tsu.example.jp"
		res, err := c.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	redisUp := `seccloud_component_up{component="dep/cluster/redis"}`
	for _, n := range nodes {
		n.app.waitMetric(redisUp, "1")
	}

	// Console lockout (5 failures by default), across nodes.
	require.Equal(t, http.StatusOK, login(nodes[1], "operator password!"))
	for i := range 5 {
		code := login(nodes[0], "wrong password")
		if i < 4 {
			require.Equal(t, http.StatusUnauthorized, code, "failure %d", i+1)
		} else {
			require.Equal(t, http.StatusTooManyRequests, code, "the fifth failure locks")
		}
	}
	assert.Equal(t, http.StatusTooManyRequests, login(nodes[1], "operator password!"), "locked on node 2 too")

	// WAF per-client rate (burst 5), across nodes.
	for i := range 5 {
		require.Equal(t, http.StatusOK, site(nodes[0], "127.0.3.30"), "request %d", i+1)
	}
	assert.Equal(t, http.StatusTooManyRequests, site(nodes[1], "127.0.3.30"), "burst spent on node 1")
	assert.Equal(t, http.StatusOK, site(nodes[1], "127.0.3.31"), "another client is served")

	// Redis dies: limits become local; service goes on; health says so.
	rds.stop()
	for _, n := range nodes {
		assert.Equal(t, http.StatusOK, site(n, "127.0.3.40"), "served while redis is down")
	}
	assert.Equal(t, http.StatusOK, login(nodes[1], "operator password!"), "node 2 decides alone: its own bucket is full")
	for _, n := range nodes {
		n.app.waitMetricWithin(redisUp, "0", 30*time.Second)
	}
	// Local limits still hold: burst 5 on one node.
	for range 5 {
		require.Equal(t, http.StatusOK, site(nodes[0], "127.0.3.41"))
	}
	assert.Equal(t, http.StatusTooManyRequests, site(nodes[0], "127.0.3.41"), "local limit while degraded")

	rds.start()
	for _, n := range nodes {
		n.app.waitMetricWithin(redisUp, "1", 30*time.Second)
	}
	nodes[0].app.signal(syscall.SIGTERM)
	require.NoError(t, nodes[0].app.wait(30*time.Second))
	out, rc := seccloud(t, bin, "events", "-module", "appliance", "-config", nodes[0].cfg)
	require.Equal(t, 0, rc, out)
	var down, up bool
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "dep/cluster/redis") {
			down = down || strings.Contains(line, `"component_down"`)
			up = up || strings.Contains(line, `"component_up"`)
		}
	}
	assert.True(t, down, "alert event when redis went down:\n%s", out)
	assert.True(t, up, "event when redis came back")
}

func (a *appliance) waitMetricWithin(name, want string, d time.Duration) {
	a.t.Helper()
	require.Eventually(a.t, func() bool { return a.metric(name) == want }, d, 100*time.Millisecond,
		"metric %s never became %s (is %q)", name, want, a.metric(name))
}
