package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	binErr    error
)

// buildBinary builds seccloud once per test run into a temporary
// directory (removed by TestMain).
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	buildOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "seccloud-bin"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "seccloud")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %w: %s", err, out)
		}
	})
	require.NoError(t, binErr)
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is a goroutine-safe buffer for a child's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// appliance is a running `seccloud run` process.
type appliance struct {
	t       *testing.T
	cmd     *exec.Cmd
	log     *syncBuffer
	console string
	exited  chan struct{} // closed when the process has exited
	err     error         // its exit status, set before exited closes
}

func start(t *testing.T, bin, console string, args ...string) *appliance {
	t.Helper()
	a := &appliance{t: t, log: &syncBuffer{}, console: console, exited: make(chan struct{})}
	a.cmd = exec.Command(bin, append([]string{"run"}, args...)...)
	a.cmd.Stderr = a.log
	a.cmd.Dir = t.TempDir()
	require.NoError(t, a.cmd.Start())
	go func() { a.err = a.cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() {
		select {
		case <-a.exited:
		default:
			_ = a.cmd.Process.Kill()
			<-a.exited
		}
		if t.Failed() {
			t.Logf("appliance log:\n%s", a.log.String())
		}
	})
	// /healthz must answer within 10 s of the start.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := a.get("/healthz"); code == http.StatusOK {
			return a
		}
		select {
		case <-a.exited:
			t.Fatalf("appliance exited early: %v\n%s", a.err, a.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz did not answer within 10 s\n%s", a.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (a *appliance) get(path string) (int, string) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + a.console + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of one sample line of /metrics ("" if absent).
func (a *appliance) metric(name string) string {
	_, body := a.get("/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

func (a *appliance) waitMetric(name, want string) {
	a.t.Helper()
	require.Eventually(a.t, func() bool { return a.metric(name) == want }, 10*time.Second, 50*time.Millisecond,
		"metric %s never became %s (is %q)", name, want, a.metric(name))
}

func (a *appliance) reloadAPI() (int, map[string]any) {
	a.t.Helper()
	resp, err := http.Post("http://"+a.console+"/-/reload", "text/plain", nil)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	var res map[string]any
	require.NoError(a.t, json.NewDecoder(resp.Body).Decode(&res))
	return resp.StatusCode, res
}

func (a *appliance) signal(s os.Signal) { require.NoError(a.t, a.cmd.Process.Signal(s)) }

func (a *appliance) wait(timeout time.Duration) error {
	a.t.Helper()
	select {
	case <-a.exited:
		return a.err
	case <-time.After(timeout):
		a.t.Fatalf("appliance did not exit within %v", timeout)
		return nil
	}
}

// seccloud runs a one-shot subcommand and returns its output and exit code.
func seccloud(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	require.NoError(t, err)
	return string(out), 0
}

func tenantYAML(id, name, network string) string {
	return fmt.Sprintf(`  - id: %s
    name: %s
    networks: [%s]
    egress_addr: 127.0.0.1
    contacts:
      - {name: 担当, email: soc@%s.example.jp}
`, id, name, network, id)
}

func configYAML(dataDir, console string, tenants ...string) string {
	return fmt.Sprintf("version: 1\ndata_dir: %s\nlog: {level: debug, format: json}\nlisten:\n  console: %s\nfunctions: {proxy: false}\ntenants:\n%s",
		dataDir, console, strings.Join(tenants, ""))
}

func TestEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	console := freeAddr(t)
	cfgPath := filepath.Join(dir, "seccloud.yaml")
	write := func(s string) { require.NoError(t, os.WriteFile(cfgPath, []byte(s), 0o640)) }

	ta := tenantYAML("tsu", "津市", "127.0.1.0/24")
	tb := tenantYAML("yokkaichi", "四日市市", "127.0.2.0/24")
	tc := tenantYAML("ise", "伊勢市", "127.0.3.0/24")
	initial := configYAML(dataDir, console, ta, tb)
	write(initial)

	a := start(t, bin, console, "-config", cfgPath)
	code, body := a.get("/readyz")
	assert.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "function/waf up")
	assert.Contains(t, body, "function/proxy off")
	a.waitMetric("seccloud_tenants", "2")
	a.waitMetric("seccloud_config_generation", "1")
	assert.NotEmpty(t, a.metric("go_goroutines"))
	assert.NotEmpty(t, a.metric("process_open_fds"))
	run, err := os.ReadFile(filepath.Join(dataDir, "seccloud.run"))
	require.NoError(t, err)
	assert.Contains(t, string(run), console)

	// A bad config: two tenants claiming 10.1.0.0/16 and 10.1.2.0/24.
	bad := configYAML(dataDir, console,
		tenantYAML("tsu", "津市", "10.1.0.0/16"), tenantYAML("yokkaichi", "四日市市", "10.1.2.0/24"))
	write(bad)
	out, rc := seccloud(t, bin, "check-config", cfgPath)
	assert.Equal(t, 1, rc, out)
	assert.Regexp(t, `seccloud.yaml:\d+:\d+: tenants\[1\]\.networks\[0\] \(tenant "yokkaichi"\).*tenant "tsu" tenants\[0\]\.networks\[0\]`, out)

	{ // bad config via SIGHUP is refused
		a.signal(syscall.SIGHUP)
		a.waitMetric(`seccloud_config_reloads_total{result="failure"}`, "1")
		assert.Contains(t, a.log.String(), `tenant \"yokkaichi\"`)
		code, _ := a.get("/healthz")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "2", a.metric("seccloud_tenants"))
		assert.Equal(t, "1", a.metric("seccloud_config_generation"))
	}
	{ // bad config via API is refused
		code, res := a.reloadAPI()
		assert.Equal(t, http.StatusUnprocessableEntity, code)
		assert.Equal(t, false, res["ok"])
		errs := fmt.Sprint(res["errors"])
		assert.Contains(t, errs, `"yokkaichi"`)
		assert.Contains(t, errs, `"tsu"`)
		assert.Contains(t, errs, "networks[0]")
		code, body := a.get("/readyz")
		assert.Equal(t, http.StatusOK, code, body)
		assert.Contains(t, body, "tenants up (2)")
	}

	// Two good changes: two new generations.
	first := configYAML(dataDir, console, ta, tb, tc)
	write(first)
	code, res := a.reloadAPI()
	require.Equal(t, http.StatusOK, code, res)
	assert.Equal(t, true, res["created"])
	assert.EqualValues(t, 2, res["generation"])
	a.waitMetric("seccloud_tenants", "3")

	second := configYAML(dataDir, console, ta)
	write(second)
	a.signal(syscall.SIGHUP)
	a.waitMetric("seccloud_config_generation", "3")
	a.waitMetric("seccloud_tenants", "1")
	gens, _ := filepath.Glob(filepath.Join(dataDir, "config-history", "gen-*.yaml"))
	assert.Len(t, gens, 3)

	out, rc = seccloud(t, bin, "config", "history", "-config", cfgPath)
	require.Equal(t, 0, rc, out)
	assert.Contains(t, out, "reload (api)")
	assert.Contains(t, out, "reload (signal)")
	out, rc = seccloud(t, bin, "config", "diff", "2", "3", "-config", cfgPath)
	require.Equal(t, 0, rc, out)
	assert.Contains(t, out, "-  - id: yokkaichi")

	{ // rollback restores the first change exactly
		out, rc := seccloud(t, bin, "config", "rollback", "2", "-config", cfgPath)
		require.Equal(t, 0, rc, out)
		assert.Contains(t, out, "reloaded")
		got, err := os.ReadFile(cfgPath)
		require.NoError(t, err)
		assert.Equal(t, first, string(got), "byte-identical")
		a.waitMetric("seccloud_tenants", "3")
		a.waitMetric("seccloud_config_generation", "4")
		out, _ = seccloud(t, bin, "config", "history", "-config", cfgPath)
		assert.Contains(t, out, "rollback to 2")
	}

	// Events are readable while the appliance runs (read-only store).
	out, rc = seccloud(t, bin, "events", "--module", "appliance", "-config", cfgPath)
	require.Equal(t, 0, rc, out)
	acked := strings.Count(out, `"action":"config_reload"`)
	assert.Equal(t, 5, acked, out) // 2 refused, 3 applied
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e detect.Event
		require.NoError(t, detect.DecodeECS([]byte(line), &e), line)
		assert.Equal(t, "appliance", e.Module)
	}

	{ // SIGKILL keeps acknowledged events
		a.signal(syscall.SIGKILL)
		_ = a.wait(10 * time.Second)
		out, rc := seccloud(t, bin, "events", "-module", "appliance", "-since", time.Now().Add(-time.Hour).Format(time.RFC3339), "-config", cfgPath)
		require.Equal(t, 0, rc, out)
		assert.Equal(t, acked, strings.Count(out, `"action":"config_reload"`), out)
		assert.Contains(t, out, `"config_generation":"4"`)
		out, _ = seccloud(t, bin, "events", "-tenant", "nobody", "-config", cfgPath)
		assert.Empty(t, out)
		out, _ = seccloud(t, bin, "events", "-until", "2000-01-01", "-config", cfgPath)
		assert.Empty(t, out)

		a = start(t, bin, console, "-config", cfgPath) // stale run file, store lock released
		a.waitMetric("seccloud_tenants", "3")
		a.waitMetric("seccloud_config_generation", "4") // same file: no new generation
	}

	{ // SIGTERM exits 0
		a.signal(syscall.SIGTERM)
		require.NoError(t, a.wait(30*time.Second), a.log.String())
		assert.Contains(t, a.log.String(), "shutdown complete")
		_, err := os.Stat(filepath.Join(dataDir, "seccloud.run"))
		assert.True(t, os.IsNotExist(err), "run file removed")
		out, _ := seccloud(t, bin, "events", "-module", "appliance", "-config", cfgPath)
		assert.Contains(t, out, `"action":"shutdown"`)
	}
}

// TestStoreVerifyNamesBrokenSegment seals a segment with the store package,
// then flips one byte in it: `seccloud store verify` must fail naming it.
func TestStoreVerifyNamesBrokenSegment(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "seccloud.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(configYAML(dataDir, "127.0.0.1:0", tenantYAML("tsu", "津市", "127.0.1.0/24"))), 0o640))

	day := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	now := day.Add(time.Hour)
	st, err := store.Open(store.Config{Dir: filepath.Join(dataDir, "events"), Now: func() time.Time { return now }})
	require.NoError(t, err)
	ev := []detect.Event{{Time: day.Add(30 * time.Minute), Module: "proxy", Tenant: "tsu", Action: "http_request", URL: "http://example.jp/"}}
	require.NoError(t, st.WriteEvents(context.Background(), ev))
	now = day.Add(26 * time.Hour) // day ended 2 h ago: sealed on the next write
	ev[0].Time = now
	require.NoError(t, st.WriteEvents(context.Background(), ev))
	require.NoError(t, st.Close())

	out, rc := seccloud(t, bin, "store", "verify", "-config", cfgPath)
	require.Equal(t, 0, rc, out)
	assert.Contains(t, out, "1 sealed segments")
	out, rc = seccloud(t, bin, "events", "-tenant", "tsu", "-since", "2025-04-01", "-until", "2025-04-01", "-config", cfgPath)
	require.Equal(t, 0, rc, out)
	assert.Equal(t, 1, strings.Count(out, "http://example.jp/"), out)

	segs, _ := filepath.Glob(filepath.Join(dataDir, "events", "*.seg"))
	require.Len(t, segs, 1)
	b, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	b[len(b)/2] ^= 0x01
	require.NoError(t, os.WriteFile(segs[0], b, 0o640))
	out, rc = seccloud(t, bin, "store", "verify", "-config", cfgPath)
	assert.Equal(t, 1, rc, out)
	assert.Contains(t, out, "BROKEN")
	assert.Contains(t, out, filepath.Base(segs[0]))
}

// TestDemoRunAnswersHealthz runs `seccloud run` with no flags (the embedded
// demo) in an empty directory, when the demo's console port is free.
func TestDemoRunAnswersHealthz(t *testing.T) {
	bin := buildBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:9090")
	if err != nil {
		t.Skip("127.0.0.1:9090 is busy")
	}
	ln.Close()
	a := start(t, bin, "127.0.0.1:9090")
	_, err = os.Stat(filepath.Join(a.cmd.Dir, "seccloud-data", "config-history"))
	assert.NoError(t, err)
	a.signal(syscall.SIGINT)
	require.NoError(t, a.wait(30*time.Second))
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	assert.Equal(t, exitUsage, Main(nil, &out, &errb))
	assert.Contains(t, errb.String(), "seccloud run")
	for _, args := range [][]string{{"-h"}, {"run", "-h"}, {"check-config", "-h"}, {"events", "-h"}, {"config", "-h"}, {"store", "-h"}, {"print-config", "-h"}} {
		out.Reset()
		errb.Reset()
		assert.Equal(t, exitOK, Main(args, &out, &errb), "%v", args)
		assert.Contains(t, out.String()+errb.String(), "seccloud", "%v", args)
	}
	assert.Equal(t, exitUsage, Main([]string{"nope"}, &out, &errb))
	assert.Equal(t, exitUsage, Main([]string{"config", "rollback", "x"}, &out, &errb))
	assert.Equal(t, exitUsage, Main([]string{"events", "-since", "yesterday"}, &out, &errb))
	out.Reset()
	assert.Equal(t, exitOK, Main([]string{"print-config"}, &out, &errb))
	assert.Contains(t, out.String(), "version: 1")
	out.Reset()
	assert.Equal(t, exitFailure, Main([]string{"check-config", "../../config/testdata/overlap.yaml"}, &out, &errb))
	assert.Contains(t, errb.String(), `tenant "tsu"`)
}
