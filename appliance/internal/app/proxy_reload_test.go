package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/proxy"
)

// loopbackResolver answers every name with 127.0.0.1.
type loopbackResolver struct{}

func (loopbackResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// TestProxyTenantRestrictionsReload: the Microsoft login host (resolved to
// a loopback origin with its own certificate) sees tenant tsu's
// restriction headers through the appliance (curl with the appliance
// CA), and after the config file changes and the appliance reloads, the
// next request carries the new ones; a set the proxy refuses keeps the
// running one.
func TestProxyTenantRestrictionsReload(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (Debian package curl)")
	}
	dir := t.TempDir()
	// The origin stands for login.microsoftonline.com and echoes the
	// restriction header it received.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "login.microsoftonline.com"},
		DNSNames: []string{"login.microsoftonline.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	originCA := filepath.Join(dir, "origin.pem")
	require.NoError(t, os.WriteFile(originCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	o := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s|%s", r.Header.Get("Restrict-Access-To-Tenants"), r.Header.Get("Restrict-Access-Context"))
	}))
	o.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	o.StartTLS()
	t.Cleanup(o.Close)
	port := o.Listener.Addr().(*net.TCPAddr).Port

	proxyTestResolver = loopbackResolver{}
	t.Cleanup(func() { proxyTestResolver = nil })
	conf := func(tenant, ms string) string {
		return fmt.Sprintf(`version: 1
data_dir: data
listen: {console: "127.0.0.1:0", proxy: "127.0.0.1:0"}
tenants:
  - {id: tsu, name: 津市, networks: [127.0.1.0/24], egress_addr: 127.0.0.1}
proxy:
  connect_ports: [%d]
  tls_inspect:
    enabled: true
    all: false
    root_cas: [%s]
  tenant_restrictions:
    - {tenant: %s, microsoft_tenants: [%s], microsoft_context: ctx-%s}
`, port, originCA, tenant, ms, ms)
	}
	a, _ := runApp(t, conf("tsu", "old.onmicrosoft.com"))
	svc := startedService[*proxyService](t, a)
	login := fmt.Sprintf("https://login.microsoftonline.com:%d/common/oauth2/authorize", port)
	fetch := func() string {
		out, err := exec.Command(curl, "-sS", "--interface", "127.0.1.5", "-x", "http://"+svc.addr,
			"--cacert", svc.caFile, login).CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	assert.Equal(t, "old.onmicrosoft.com|ctx-old.onmicrosoft.com", fetch())

	require.NoError(t, os.WriteFile(a.opts.ConfigPath, []byte(conf("tsu", "new.onmicrosoft.com")), 0o600))
	res, err := a.Reload("test")
	require.NoError(t, err)
	require.True(t, res.OK)
	assert.Equal(t, "new.onmicrosoft.com|ctx-new.onmicrosoft.com", fetch(), "the reload applies to the next request")

	// A restriction naming no tenant is refused by the proxy: the running
	// set stays.
	require.NoError(t, os.WriteFile(a.opts.ConfigPath, []byte(conf("nobody", "bad.onmicrosoft.com")), 0o600))
	_, _ = a.Reload("test")
	assert.Equal(t, "new.onmicrosoft.com|ctx-new.onmicrosoft.com", fetch())
}

// TestProxyGlobalBandwidthKey: proxy.global_bandwidth_mbps reaches the
// proxy's GlobalBandwidth; a negative capacity is refused with the key's
// name.
func TestProxyGlobalBandwidthKey(t *testing.T) {
	base := `version: 1
data_dir: data
listen: {console: "127.0.0.1:0", proxy: "127.0.0.1:0"}
tenants:
  - {id: tsu, name: 津市, networks: [127.0.1.0/24], egress_addr: 127.0.0.1, bandwidth_mbps: {down: 100, weight: 3}}
proxy:
  global_bandwidth_mbps: {up: %d, down: 4000}
`
	cfg, err := config.Parse("c.yaml", []byte(fmt.Sprintf(base, 1000)))
	require.NoError(t, err)
	pc, _, _, err := proxyConfig(cfg)
	require.NoError(t, err)
	assert.Equal(t, proxy.GlobalBandwidth{UpMbps: 1000, DownMbps: 4000}, pc.GlobalBandwidth)

	cfg, err = config.Parse("c.yaml", []byte(fmt.Sprintf(base, -1)))
	require.NoError(t, err)
	_, _, _, err = proxyConfig(cfg)
	assert.ErrorContains(t, err, "proxy.global_bandwidth_mbps")
}
