package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/proxy"
)

// tlsOrigin is an HTTPS origin on loopback whose certificates come from
// its own CA (standing for a public CA), for any host name.
type tlsOrigin struct {
	srv  *httptest.Server
	port uint16
	ca   *proxy.CA
	pool *x509.CertPool
	pem  []byte
}

func newCA(t testing.TB, cn string) (*proxy.CA, *x509.CertPool, []byte) {
	certPEM, keyPEM, err := proxy.GenerateCA(cn, time.Now())
	require.NoError(t, err)
	ca, err := proxy.NewCA(certPEM, keyPEM, proxy.CAConfig{})
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(certPEM))
	return ca, pool, certPEM
}

func startTLSOrigin(t testing.TB, h http.Handler) *tlsOrigin {
	t.Helper()
	ca, pool, caPEM := newCA(t, "Test Public Root")
	s := httptest.NewUnstartedServer(h)
	s.EnableHTTP2 = true
	s.TLS = &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		name := hello.ServerName
		if name == "" {
			name = "127.0.0.1"
		}
		return ca.Leaf(name)
	}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return &tlsOrigin{srv: s, port: uint16(s.Listener.Addr().(*net.TCPAddr).Port), ca: ca, pool: pool, pem: caPEM}
}

// inspectEnv is a proxy with TLS inspection in front of a TLS origin that
// every *.example.test name resolves to.
type inspectEnv struct {
	*env
	o      *tlsOrigin
	ca     *proxy.CA
	caPEM  []byte
	caPool *x509.CertPool
}

var exampleNames = []string{"www.example.test", "bank.example.test", "blocked.example.test",
	"login.microsoftonline.com", "accounts.google.com", "plain.example.test", "files.example.test"}

func startInspect(t testing.TB, h http.Handler, mod func(*proxy.Config)) *inspectEnv {
	t.Helper()
	o := startTLSOrigin(t, h)
	ca, pool, caPEM := newCA(t, "seccloud test inspection CA")
	res := fakeResolver{}
	for _, n := range exampleNames {
		res[n] = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	cfg := proxy.Config{
		Resolver:     res,
		ConnectPorts: []uint16{o.port},
		Inspect:      &proxy.InspectConfig{CA: ca, All: true, RootCAs: o.pool},
	}
	if mod != nil {
		mod(&cfg)
	}
	return &inspectEnv{env: startProxy(t, cfg), o: o, ca: ca, caPEM: caPEM, caPool: pool}
}

// httpsClient is a terminal of tenant A trusting roots, through the proxy.
func (e *inspectEnv) httpsClient(roots *x509.CertPool, h2 bool) *http.Client {
	d := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(termA, 0))}
	pu, _ := url.Parse("http://" + e.addr)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), DialContext: d.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: h2, DisableCompression: true}}
}

func (e *inspectEnv) url(host, path string) string {
	return "https://" + host + ":" + strconv.Itoa(int(e.o.port)) + path
}

func label(ev detect.Event, k string) string {
	v, _ := ev.Label(k)
	return v
}

func TestInspectHTTPS(t *testing.T) {
	checkGoroutines(t)
	var proto atomic.Value
	e := startInspect(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		fmt.Fprint(w, "secret content for ", r.Host, r.URL.Path)
	}), nil)
	for _, h2 := range []bool{false, true} {
		c := e.httpsClient(e.caPool, h2)
		resp, err := c.Get(e.url("www.example.test", "/docs"))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode)
		assert.Contains(t, string(body), "secret content for www.example.test")
		require.NotNil(t, resp.TLS)
		leaf := resp.TLS.PeerCertificates[0]
		assert.Equal(t, "seccloud test inspection CA", leaf.Issuer.CommonName, "the terminal sees a minted certificate")
		assert.Equal(t, []string{"www.example.test"}, leaf.DNSNames)
		if h2 {
			assert.Equal(t, 2, resp.ProtoMajor, "h2 to the terminal")
		}
		assert.Equal(t, "HTTP/2.0", proto.Load(), "ALPN h2 upstream")
		c.CloseIdleConnections()
	}
	// One minted certificate for the host, reused by the second tunnel.
	assert.Equal(t, int64(1), e.ca.Minted())

	evs := e.sink.waitEvents(t, 4)
	var inner, tunnels int
	for _, ev := range evs {
		assert.Equal(t, "aoba", ev.Tenant)
		assert.Equal(t, "127.0.1.5", ev.Terminal)
		assert.Equal(t, "inspected", label(ev, "tls"))
		switch ev.Action {
		case "http_request":
			inner++
			assert.Equal(t, e.url("www.example.test", "/docs"), ev.URL)
			assert.Equal(t, 200, ev.HTTP.Status)
			assert.Equal(t, "www.example.test", ev.DestDomain)
			assert.Equal(t, "127.0.0.1", ev.Dest.Addr().String())
			assert.Positive(t, ev.BytesOut)
		case "connect":
			tunnels++
		}
	}
	assert.Equal(t, 2, inner)
}

func TestInspectPolicyBypassAndUpstreamTLS(t *testing.T) {
	lists, err := proxy.NewLists(proxy.ListConfig{Global: proxy.Rules{Block: []string{"http://www.example.test/private/"}}})
	require.NoError(t, err)
	e := startInspect(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "origin ", r.URL.Path)
	}), func(c *proxy.Config) {
		c.Decider = lists
		c.Inspect.Bypass = []string{"bank.example.test"}
		c.Inspect.BypassCategories = []string{"health"}
		c.Inspect.Categories = map[string]string{"files.example.test": "health"}
	})
	both := e.caPool.Clone()
	both.AppendCertsFromPEM(e.o.pem)
	c := e.httpsClient(both, false)

	t.Run("URL blocked inside TLS", func(t *testing.T) {
		resp, body := get(t, c, e.url("www.example.test", "/private/x"))
		assert.Equal(t, 403, resp.StatusCode)
		assert.Contains(t, body, "このページへのアクセスはブロックされました")
		assert.Contains(t, body, "Access to this page was blocked")
		resp, body = get(t, c, e.url("www.example.test", "/public"))
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, "origin /public", body)
	})
	t.Run("bypass by domain and by category is spliced", func(t *testing.T) {
		for _, host := range []string{"bank.example.test", "files.example.test"} {
			resp, body := get(t, c, e.url(host, "/"))
			assert.Equal(t, 200, resp.StatusCode)
			assert.Equal(t, "origin /", body)
			assert.Equal(t, "Test Public Root", resp.TLS.PeerCertificates[0].Issuer.CommonName, "%s: the origin's own certificate", host)
		}
	})
	t.Run("upstream certificate not trusted", func(t *testing.T) {
		e2 := startInspect(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(c *proxy.Config) {
			c.Inspect.RootCAs = x509.NewCertPool() // the origin's root is unknown
		})
		resp, body := get(t, e2.httpsClient(e2.caPool, false), e2.url("www.example.test", "/"))
		assert.Equal(t, 502, resp.StatusCode)
		assert.Contains(t, body, "証明書を検証できなかった")
		assert.Contains(t, body, "certificate could not be verified")
		evs := e2.sink.waitEvents(t, 1)
		found := false
		for _, ev := range evs {
			if ev.Verdict.Rule == proxy.RuleUpstreamTLS {
				found = true
			}
		}
		assert.True(t, found, "event with rule %s", proxy.RuleUpstreamTLS)
	})
}

func TestTenantRestrictions(t *testing.T) {
	var seen atomic.Pointer[http.Header]
	e := startInspect(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		seen.Store(&h)
	}), func(c *proxy.Config) {
		c.Inspect.All = false // only the login hosts are inspected
		c.TenantRestrictions = map[string]proxy.TenantRestriction{"aoba": {
			MicrosoftTenants: []string{"aoba.onmicrosoft.com"}, MicrosoftContext: "11111111-2222-3333-4444-555555555555",
			GoogleDomains: []string{"city.aoba.lg.jp"},
		}}
	})
	both := e.caPool.Clone()
	both.AppendCertsFromPEM(e.o.pem)
	c := e.httpsClient(both, false)

	resp, _ := get(t, c, e.url("login.microsoftonline.com", "/common/oauth2/authorize"))
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "seccloud test inspection CA", resp.TLS.PeerCertificates[0].Issuer.CommonName)
	h := *seen.Load()
	assert.Equal(t, "aoba.onmicrosoft.com", h.Get("Restrict-Access-To-Tenants"))
	assert.Equal(t, "11111111-2222-3333-4444-555555555555", h.Get("Restrict-Access-Context"))

	get(t, c, e.url("accounts.google.com", "/"))
	assert.Equal(t, "city.aoba.lg.jp", (*seen.Load()).Get("X-GoogApps-Allowed-Domains"))

	// Other hosts are not inspected when Inspect.All is false.
	resp, _ = get(t, c, e.url("www.example.test", "/"))
	assert.Equal(t, "Test Public Root", resp.TLS.PeerCertificates[0].Issuer.CommonName)
	assert.Empty(t, (*seen.Load()).Get("Restrict-Access-To-Tenants"))
}

func TestInspectWithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	e := startInspect(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello curl")
	}), nil)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caFile, e.caPEM, 0o644))
	out, err := exec.Command(curl, "-sS", "--interface", termA.String(), "-x", "http://"+e.addr,
		"--cacert", caFile, e.url("www.example.test", "/")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "hello curl", string(out))

	// Without the appliance CA the terminal refuses the minted certificate.
	out, err = exec.Command(curl, "-sS", "--interface", termA.String(), "-x", "http://"+e.addr,
		e.url("www.example.test", "/")).CombinedOutput()
	assert.Error(t, err, "%s", out)
}

func TestCALoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	ca1, err := proxy.LoadOrCreateCA(cert, key, "seccloud CA", proxy.CAConfig{})
	require.NoError(t, err)
	st, err := os.Stat(key)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	ca2, err := proxy.LoadOrCreateCA(cert, key, "seccloud CA", proxy.CAConfig{})
	require.NoError(t, err)
	assert.Equal(t, ca1.CertPEM(), ca2.CertPEM(), "the same CA after a restart")

	leaf, err := ca1.Leaf("www.example.test")
	require.NoError(t, err)
	again, err := ca1.Leaf("www.example.test")
	require.NoError(t, err)
	assert.Same(t, leaf, again)
	pool := x509.NewCertPool()
	pool.AddCert(ca1.Certificate())
	_, err = leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "www.example.test", Roots: pool})
	assert.NoError(t, err)
	assert.Equal(t, "ECDSA", leaf.Leaf.PublicKeyAlgorithm.String())
	ipLeaf, err := ca1.Leaf("192.0.2.1")
	require.NoError(t, err)
	assert.Equal(t, "192.0.2.1", ipLeaf.Leaf.IPAddresses[0].String())
}

func TestLeafSingleflight(t *testing.T) {
	ca, _, _ := newCA(t, "ca")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan *tls.Certificate, 16)
	for i := 0; i < 16; i++ {
		go func() {
			c, err := ca.Leaf("same.example.test")
			if err != nil || ctx.Err() != nil {
				done <- nil
				return
			}
			done <- c
		}()
	}
	first := <-done
	require.NotNil(t, first)
	for i := 1; i < 16; i++ {
		assert.Same(t, first, <-done)
	}
	assert.Equal(t, int64(1), ca.Minted())
}

func TestCADownload(t *testing.T) {
	e := startInspect(t, http.NotFoundHandler(), nil)
	c := e.dial(t, termA)
	_, err := c.Write([]byte("GET /seccloud-ca.pem HTTP/1.1\r\nHost: proxy\r\n\r\n"))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, string(e.caPEM), string(body))

	// Not for sources outside every tenant.
	c2 := e.dial(t, netip.MustParseAddr("127.0.0.1"))
	_, err = c2.Write([]byte("GET /seccloud-ca.pem HTTP/1.1\r\nHost: proxy\r\n\r\n"))
	require.NoError(t, err)
	resp, err = http.ReadResponse(bufio.NewReader(c2), nil)
	require.NoError(t, err)
	assert.Equal(t, 403, resp.StatusCode)
}

func TestInspectShutdown(t *testing.T) {
	checkGoroutines(t)
	e := startInspect(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }), nil)
	c := e.httpsClient(e.caPool, false)
	resp, body := get(t, c, e.url("www.example.test", "/"))
	require.Equal(t, 200, resp.StatusCode, body)
	// The inspected keep-alive connection is idle: Shutdown closes it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.srv.Shutdown(ctx))
	assert.Equal(t, 0, e.srv.ActiveConns())
	c.CloseIdleConnections()
}

func TestInspectBlockPageInsideTLS(t *testing.T) {
	lists, err := proxy.NewLists(proxy.ListConfig{Global: proxy.Rules{Block: []string{"=blocked.example.test", "=bank.example.test"}}})
	require.NoError(t, err)
	e := startInspect(t, http.NotFoundHandler(), func(c *proxy.Config) {
		c.Decider = lists
		c.Inspect.Bypass = []string{"bank.example.test"}
		c.Resolver.(fakeResolver)["tenant-b.example.test"] = []netip.Addr{termB}
	})
	c := e.httpsClient(e.caPool, false)
	// Inspected: the terminal reads the block page over TLS.
	resp, body := get(t, c, e.url("blocked.example.test", "/"))
	assert.Equal(t, 403, resp.StatusCode)
	assert.Contains(t, body, "ブロックリスト")
	// A name resolving into tenant B's network: refused inside TLS too.
	resp, body = get(t, c, e.url("tenant-b.example.test", "/"))
	assert.Equal(t, 403, resp.StatusCode)
	assert.Contains(t, body, proxy.RuleTenantBan)
	// Not inspected (bypassed): a plain 403 to the CONNECT.
	_, err = c.Get(e.url("bank.example.test", "/"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Forbidden")
}

// TestSetTenantRestrictionsReload swaps the restrictions of a running
// Server (a configuration reload): the next request carries the new
// headers, also on a keep-alive inspected connection opened before; a
// bad set is refused and the old one stays; an empty set removes them and
// the login host is spliced again for new tunnels.
func TestSetTenantRestrictionsReload(t *testing.T) {
	var seen atomic.Pointer[http.Header]
	e := startInspect(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		seen.Store(&h)
	}), func(c *proxy.Config) {
		c.Inspect.All = false
		c.TenantRestrictions = map[string]proxy.TenantRestriction{"aoba": {
			MicrosoftTenants: []string{"old.onmicrosoft.com"}, MicrosoftContext: "ctx-old"}}
	})
	both := e.caPool.Clone()
	both.AppendCertsFromPEM(e.o.pem)
	c := e.httpsClient(both, false)
	login := e.url("login.microsoftonline.com", "/common/oauth2/authorize")
	get(t, c, login)
	assert.Equal(t, "old.onmicrosoft.com", (*seen.Load()).Get("Restrict-Access-To-Tenants"))

	require.NoError(t, e.srv.SetTenantRestrictions(map[string]proxy.TenantRestriction{"aoba": {
		MicrosoftTenants: []string{"new.onmicrosoft.com"}, MicrosoftContext: "ctx-new"}}))
	get(t, c, login) // same keep-alive connection inside the inspected tunnel
	assert.Equal(t, "new.onmicrosoft.com", (*seen.Load()).Get("Restrict-Access-To-Tenants"))
	assert.Equal(t, "ctx-new", (*seen.Load()).Get("Restrict-Access-Context"))
	get(t, e.httpsClient(both, false), login) // a new tunnel
	assert.Equal(t, "new.onmicrosoft.com", (*seen.Load()).Get("Restrict-Access-To-Tenants"))

	err := e.srv.SetTenantRestrictions(map[string]proxy.TenantRestriction{"aoba": {
		MicrosoftTenants: []string{"bad.onmicrosoft.com"}}}) // no MicrosoftContext
	require.Error(t, err)
	get(t, c, login)
	assert.Equal(t, "new.onmicrosoft.com", (*seen.Load()).Get("Restrict-Access-To-Tenants"), "a refused set keeps the old one")

	require.NoError(t, e.srv.SetTenantRestrictions(nil))
	resp, _ := get(t, e.httpsClient(both, false), login)
	assert.Empty(t, (*seen.Load()).Get("Restrict-Access-To-Tenants"))
	assert.Equal(t, "Test Public Root", resp.TLS.PeerCertificates[0].Issuer.CommonName, "spliced again")
}
