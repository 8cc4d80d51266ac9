package waf_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf"
)

const siteHost = "www.aoba.example.jp"

// recorder is a Sink that keeps events.
type recorder struct {
	mu sync.Mutex
	ev []detect.Event
}

func (r *recorder) Emit(e detect.Event) {
	r.mu.Lock()
	r.ev = append(r.ev, e)
	r.mu.Unlock()
}

func (r *recorder) events() []detect.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]detect.Event(nil), r.ev...)
}

// origin is a test origin that records what it saw and answers with its
// name.
type origin struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64
	last atomic.Pointer[http.Request]
	// health, when set, answers health checks with this status.
	health atomic.Int32
	delay  atomic.Int64 // ns before answering
}

func newOrigin(t testing.TB, name string) *origin {
	o := &origin{name: name}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if c := o.health.Load(); c != 0 {
				w.WriteHeader(int(c))
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		o.hits.Add(1)
		o.last.Store(r.Clone(r.Context()))
		if d := o.delay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		w.Header().Set("X-Origin", o.name)
		w.Header().Set("Keep-Alive", "timeout=5") // hop-by-hop: must not reach the client
		_, _ = w.Write([]byte("hello from " + o.name))
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *origin) addr() string { return o.srv.Listener.Addr().String() }

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	a := l.Addr().String()
	l.Close()
	return a
}

func directory(t testing.TB, sites ...tenant.Site) *tenant.Snapshot {
	d, err := tenant.NewSnapshot([]tenant.Tenant{{
		ID: "aoba", Name: "青葉市",
		Networks:   []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
		EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Sites:      sites,
	}}, tenant.Options{})
	require.NoError(t, err)
	return d
}

// start runs s on a loopback listener (TLS when tlsOn) and returns its
// address.
func start(t testing.TB, s *waf.Server, tlsOn bool) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() {
		if tlsOn {
			_ = s.ServeTLS(l)
		} else {
			_ = s.Serve(l)
		}
	}()
	t.Cleanup(func() { _ = s.Close() })
	return l.Addr().String()
}

func newServer(t testing.TB, cfg waf.Config) *waf.Server {
	s, err := waf.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// get sends method to url on the WAF at addr with Host host.
func get(t testing.TB, c *http.Client, method, addr, host, path string) (*http.Response, string) {
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	require.NoError(t, err)
	req.Host = host
	if method != http.MethodGet && method != http.MethodHead {
		req.Header.Set("Origin", "http://"+host) // a same-site form: passes the CSRF check
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b := make([]byte, 0, 4096)
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	return resp, string(b)
}

// writeCert writes a self-signed certificate for names to dir and returns
// the cert and key paths and the certificate.
func writeCert(t testing.TB, dir string, serial int64, names ...string) (string, string, *x509.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	cp, kp := filepath.Join(dir, "site.crt"), filepath.Join(dir, "site.key")
	// Write to temporary files and rename, as certificate tools do.
	require.NoError(t, os.WriteFile(cp+".tmp", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(kp+".tmp", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	require.NoError(t, os.Rename(kp+".tmp", kp))
	require.NoError(t, os.Rename(cp+".tmp", cp))
	return cp, kp, cert
}

func tlsClient(roots ...*x509.Certificate) *tls.Config {
	p := x509.NewCertPool()
	for _, c := range roots {
		p.AddCert(c)
	}
	return &tls.Config{RootCAs: p, NextProtos: []string{"h2", "http/1.1"}}
}

// wait returns the events once there are n (events are emitted after the
// response is written, so the client may be faster).
func (r *recorder) wait(t testing.TB, n int) []detect.Event {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.events()) >= n }, 5*time.Second, time.Millisecond)
	evs := r.events()
	require.Len(t, evs, n)
	return evs
}
