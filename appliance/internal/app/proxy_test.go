package app

import (
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
	"github.com/jichitai/seccloud/internal/clamd/clamdtest"
	"github.com/jichitai/seccloud/proxy"
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

// TestProxyInspectionThroughAppliance: TLS inspection with the CA the
// appliance created in its data directory (downloaded from the proxy port
// by the terminal and given to curl --cacert), the EICAR file blocked over
// plain HTTP and inspected HTTPS by a real clamd, and a bypassed
// destination spliced (curl sees the origin's own certificate).
func TestProxyInspectionThroughAppliance(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (Debian package curl)")
	}
	d := clamdtest.Start(t, clamdtest.Options{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/eicar.com" {
			fmt.Fprint(w, clamdtest.EICAR)
			return
		}
		fmt.Fprint(w, "origin ok")
	})
	o := httptest.NewTLSServer(handler)
	t.Cleanup(o.Close)
	plain := httptest.NewServer(handler)
	t.Cleanup(plain.Close)
	dir := t.TempDir()
	originCA := filepath.Join(dir, "origin-root.pem")
	require.NoError(t, os.WriteFile(originCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.Certificate().Raw}), 0o644))
	port := o.Listener.Addr().(*net.TCPAddr).Port

	// A second TLS origin on another loopback address stands for a bank.
	bankLn, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	bank := httptest.NewUnstartedServer(handler)
	bank.Listener.Close()
	bank.Listener = bankLn
	// curl aborting on the untrusted certificate makes Go's server log
	// "bad record MAC" (curl against it directly does the same).
	bank.Config.ErrorLog = log.New(io.Discard, "", 0)
	bank.StartTLS()
	t.Cleanup(bank.Close)
	bankPort := bankLn.Addr().(*net.TCPAddr).Port

	a, ctx := runApp(t, fmt.Sprintf(`version: 1
data_dir: data
listen: {console: "127.0.0.1:0", proxy: "127.0.0.1:0"}
tenants:
  - {id: tsu, name: 津市, networks: [127.0.1.0/24], egress_addr: 127.0.0.1}
proxy:
  connect_ports: [%d, %d]
  tls_inspect:
    enabled: true
    bypass: [127.0.0.2]
    root_cas: [%s]
  scan:
    clamd: %s
`, port, bankPort, originCA, d.Socket))
	svc := startedService[*proxyService](t, a)
	addr := svc.addr
	require.FileExists(t, svc.caFile)

	// The terminal downloads the CA from the proxy port.
	caFile := filepath.Join(dir, "ca.pem")
	out, err := exec.Command(curl, "-sS", "--interface", "127.0.1.5", "-o", caFile, "http://"+addr+"/seccloud-ca.pem").CombinedOutput()
	require.NoError(t, err, string(out))
	want, err := os.ReadFile(svc.caFile)
	require.NoError(t, err)
	got, err := os.ReadFile(caFile)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))

	run := func(args ...string) string {
		base := []string{"-sS", "--interface", "127.0.1.5", "-x", "http://" + addr}
		out, err := exec.Command(curl, append(base, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	assert.Equal(t, "origin ok", run("--cacert", caFile, o.URL+"/"))
	assert.Contains(t, run("--cacert", caFile, o.URL+"/eicar.com"), "マルウェアを検知したためダウンロードを止めました")
	assert.Contains(t, run(plain.URL+"/eicar.com"), clamdtest.EICARName)
	// Bypassed: spliced, so only the origin's own certificate works.
	assert.Equal(t, "origin ok", run("-k", "-w", "", bank.URL+"/"))
	out, err = exec.Command(curl, "-sS", "--interface", "127.0.1.5", "-x", "http://"+addr, "--cacert", caFile, bank.URL+"/").CombinedOutput()
	assert.Error(t, err, "the appliance CA does not sign a bypassed site: %s", out)

	require.NoError(t, a.events.flush(ctx, 10*time.Second))
	var blocked, inspected int
	require.NoError(t, a.events.store.Query(ctx, store.Filter{Module: "proxy"}, func(e detect.Event) error {
		if e.Verdict.Rule == proxy.RuleMalware {
			blocked++
		}
		if v, _ := e.Label("tls"); v == "inspected" && e.Action == "http_request" {
			inspected++
		}
		return nil
	}))
	assert.Equal(t, 2, blocked)
	assert.Equal(t, 2, inspected)
}

// TestProxyBreakoutAndXFFThroughAppliance: an app defined in
// proxy.breakout.apps_dir leaves over the breakout source address, falls
// back to the tenant's egress when the health target stops answering and
// returns when it answers again; a trusted downstream proxy's
// X-Forwarded-For names the terminal.
func TestProxyBreakoutAndXFFThroughAppliance(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (Debian package curl)")
	}
	ln, err := net.Listen("tcp", "127.0.0.3:0")
	require.NoError(t, err)
	o := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprint(w, host)
	}))
	o.Listener.Close()
	o.Listener = ln
	o.Start()
	t.Cleanup(o.Close)
	health, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	healthAddr := health.Addr().String()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "apps"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "apps", "lab.txt"), []byte("title Lab SaaS\n=127.0.0.3\n"), 0o644))

	a, ctx := runApp(t, fmt.Sprintf(`version: 1
data_dir: data
listen: {console: "127.0.0.1:0", proxy: "127.0.0.1:0"}
tenants:
  - {id: tsu, name: 津市, networks: [127.0.1.0/24], egress_addr: 127.0.1.254, policy: {breakout: [lab]}}
proxy:
  trusted_proxies: [127.0.1.10/32]
  breakout:
    local_addrs: [127.0.0.77]
    health_target: %s
    health_interval: 50ms
    apps_dir: %s
`, healthAddr, filepath.Join(dir, "apps")))
	addr := startedService[*proxyService](t, a).addr
	fetch := func(src string, args ...string) string {
		out, err := exec.Command(curl, append([]string{"-sS", "--interface", src, "-x", "http://" + addr}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	assert.Equal(t, "127.0.0.77", fetch("127.0.1.5", o.URL+"/"), "the lab app leaves over the breakout line")
	require.NoError(t, health.Close())
	require.Eventually(t, func() bool { return fetch("127.0.1.5", o.URL+"/") == "127.0.1.254" }, 10*time.Second, 50*time.Millisecond,
		"falls back to the tenant's egress")
	health, err = net.Listen("tcp", healthAddr)
	require.NoError(t, err)
	t.Cleanup(func() { health.Close() })
	require.Eventually(t, func() bool { return fetch("127.0.1.5", o.URL+"/") == "127.0.0.77" }, 10*time.Second, 50*time.Millisecond,
		"returns to the breakout line")

	fetch("127.0.1.10", "-H", "X-Forwarded-For: 10.20.30.40", o.URL+"/xff")
	fetch("127.0.1.5", "-H", "X-Forwarded-For: 10.20.30.41", o.URL+"/noxff")
	require.NoError(t, a.events.flush(ctx, 10*time.Second))
	terminals := map[string]string{}
	var paths []string
	require.NoError(t, a.events.store.Query(ctx, store.Filter{Module: "proxy"}, func(e detect.Event) error {
		terminals[e.URL] = e.Terminal
		if v, ok := e.Label("egress"); ok {
			paths = append(paths, v)
		}
		return nil
	}))
	assert.Equal(t, "10.20.30.40", terminals[o.URL+"/xff"], "trusted downstream proxy")
	assert.Equal(t, "127.0.1.5", terminals[o.URL+"/noxff"], "XFF from a terminal is ignored")
	assert.Contains(t, paths, "breakout")
	assert.Contains(t, paths, "fallback")
}

// TestProxyTenantConns: proxy.tenant_conns caps one tenant's connections;
// another tenant is not affected, and a freed slot is usable again.
func TestProxyTenantConns(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "origin ok") }))
	t.Cleanup(o.Close)
	a, _ := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0", proxy: "127.0.0.1:0"}
proxy: {tenant_conns: 1}
tenants:
  - {id: tsu, name: 津市, networks: [127.0.1.0/24], egress_addr: 127.0.0.1}
  - {id: ise, name: 伊勢市, networks: [127.0.2.0/24], egress_addr: 127.0.0.1}
`)
	addr := startedService[*proxyService](t, a).addr
	client := func(src string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		proxyURL, _ := url.Parse("http://" + addr)
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), DialContext: d.DialContext}}
	}
	status := func(c *http.Client) int {
		resp, err := c.Get(o.URL + "/x")
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	first := client("127.0.1.5") // keeps its connection (keep-alive): the slot
	assert.Equal(t, 200, status(first))
	second := client("127.0.1.6")
	assert.Equal(t, 503, status(second), "the tenant's one connection is taken")
	assert.Equal(t, 200, status(client("127.0.2.5")), "another tenant has its own slot")
	first.CloseIdleConnections()
	require.Eventually(t, func() bool { return status(client("127.0.1.7")) == 200 }, 10*time.Second, 50*time.Millisecond,
		"the freed slot serves again")
}
