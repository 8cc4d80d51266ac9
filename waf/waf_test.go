package waf_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf"
)

func TestProxyHeadersAndEvent(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	rec := &recorder{}
	s := newServer(t, waf.Config{
		Directory: directory(t, tenant.Site{Host: siteHost, Origins: []string{a.addr(), "http://" + b.addr()}}),
		Sink:      rec,
	})
	addr := start(t, s, false)

	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/news/?q=%E9%98%B2%E7%81%BD", nil)
	require.NoError(t, err)
	req.Host = siteHost
	req.Header.Set("Connection", "X-Secret")
	req.Header.Set("X-Secret", "hop")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Header.Set("X-Forwarded-For", "198.51.100.7, garbage, 203.0.113.9:4711")
	req.Header.Set("Forwarded", "for=198.51.100.7")
	req.Header.Set("X-Forwarded-Proto", "https") // a lie: must be overwritten
	req.Header.Set("User-Agent", "test-agent")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "hello from")
	assert.Empty(t, resp.Header.Get("Keep-Alive"), "hop-by-hop response header forwarded")

	o := a
	if a.hits.Load() == 0 {
		o = b
	}
	in := o.last.Load()
	require.NotNil(t, in)
	assert.Equal(t, siteHost, in.Host)
	assert.Empty(t, in.Header.Get("X-Secret"))
	assert.Empty(t, in.Header.Get("Proxy-Authorization"))
	assert.Empty(t, in.Header.Get("Connection"))
	assert.Equal(t, "198.51.100.7, 203.0.113.9, 127.0.0.1", in.Header.Get("X-Forwarded-For"))
	assert.Equal(t, "for=198.51.100.7, for=127.0.0.1;host=www.aoba.example.jp;proto=http", in.Header.Get("Forwarded"))
	assert.Equal(t, "http", in.Header.Get("X-Forwarded-Proto"))
	assert.Equal(t, siteHost, in.Header.Get("X-Forwarded-Host"))
	assert.Equal(t, "/news/?q=%E9%98%B2%E7%81%BD", in.URL.RequestURI())

	evs := rec.wait(t, 1)
	ev := evs[0]
	assert.Equal(t, "waf", ev.Module)
	assert.Equal(t, "aoba", ev.Tenant)
	assert.Equal(t, "127.0.0.1", ev.Client.Addr().String())
	assert.Equal(t, siteHost, ev.DestDomain)
	assert.Equal(t, "http://"+siteHost+"/news/?q=%E9%98%B2%E7%81%BD", ev.URL)
	assert.Equal(t, http.MethodGet, ev.HTTP.Method)
	assert.Equal(t, http.StatusOK, ev.HTTP.Status)
	assert.Equal(t, "test-agent", ev.HTTP.UserAgent)
	assert.Equal(t, int64(len(body)), ev.BytesOut)
	assert.Equal(t, detect.ActionAllow, ev.Verdict.Action)
	assert.Equal(t, "success", ev.Outcome)
	origin, _ := ev.Label("origin")
	assert.Contains(t, []string{a.addr(), "http://" + b.addr()}, origin)
	assert.Equal(t, o.addr(), ev.Dest.String())
	site, _ := ev.Label("site")
	assert.Equal(t, siteHost, site)
}

func TestBalance(t *testing.T) {
	for _, tc := range []struct {
		name string
		bal  waf.Balance
	}{{"round robin", waf.RoundRobin}, {"least connections", waf.LeastConn}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newOrigin(t, "a"), newOrigin(t, "b")
			s := newServer(t, waf.Config{
				Directory: directory(t, tenant.Site{Host: siteHost, Origins: []string{a.addr(), b.addr()}}),
				Origins:   waf.OriginConfig{Balance: tc.bal},
			})
			addr := start(t, s, false)
			for range 10 {
				resp, _ := get(t, http.DefaultClient, http.MethodGet, addr, siteHost, "/")
				require.Equal(t, http.StatusOK, resp.StatusCode)
			}
			assert.Equal(t, int64(5), a.hits.Load())
			assert.Equal(t, int64(5), b.hits.Load())
		})
	}
}

func TestRetryEjectAndErrors(t *testing.T) {
	a := newOrigin(t, "a")
	dead := deadAddr(t)
	rec := &recorder{}
	s := newServer(t, waf.Config{
		Directory: directory(t, tenant.Site{Host: siteHost, Origins: []string{dead, a.addr()}}),
		Sink:      rec,
		Origins:   waf.OriginConfig{MaxFails: 2, EjectFor: time.Hour, HealthInterval: -1},
	})
	addr := start(t, s, false)

	// POST is not retried: the round-robin turn that lands on the dead
	// origin gives 502 with the Japanese page.
	var codes []int
	for range 2 {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/form", strings.NewReader("a=1"))
		require.NoError(t, err)
		req.Host = siteHost
		req.Header.Set("Origin", "http://"+siteHost) // same-site: passes the CSRF check
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == http.StatusBadGateway {
			assert.Contains(t, string(body), "ただいまサイトに接続できません")
			assert.Contains(t, string(body), "The site cannot be reached")
			assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
		}
	}
	assert.ElementsMatch(t, []int{http.StatusOK, http.StatusBadGateway}, codes)

	// GETs are retried on the other origin: no client sees an error, and
	// after MaxFails the dead origin is ejected (no more attempts on it).
	for range 6 {
		resp, _ := get(t, http.DefaultClient, http.MethodGet, addr, siteHost, "/")
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	evs := rec.wait(t, 8)
	// Order-independent: events are emitted after the responses.
	retried, attempts := 0, 0
	var bad detect.Event
	for _, ev := range evs {
		n, _ := ev.Label("attempts")
		if n == "2" {
			retried++
		}
		attempts += int(n[0] - '0')
		if ev.HTTP.Status == http.StatusBadGateway {
			bad = ev
		}
	}
	assert.Equal(t, 1, retried, "one GET retried before the dead origin's ejection (its 2nd failure)")
	assert.Equal(t, 9, attempts, "ejected origin still tried")
	assert.Equal(t, "failure", bad.Outcome)
	assert.NotEmpty(t, bad.ID)
	assert.NotEmpty(t, bad.Message)
}

func TestGatewayTimeout(t *testing.T) {
	a := newOrigin(t, "slow")
	a.delay.Store(int64(2 * time.Second))
	s := newServer(t, waf.Config{
		Directory: directory(t, tenant.Site{Host: siteHost, Origins: []string{a.addr()}}),
		Timeouts:  waf.Timeouts{OriginResponse: 100 * time.Millisecond},
		Origins:   waf.OriginConfig{HealthInterval: -1},
	})
	addr := start(t, s, false)
	resp, body := get(t, http.DefaultClient, http.MethodPost, addr, siteHost, "/")
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
	assert.Contains(t, body, "サイトの応答がありません")
}

func TestUnknownSite(t *testing.T) {
	rec := &recorder{}
	s := newServer(t, waf.Config{Directory: directory(t), Sink: rec})
	addr := start(t, s, false)
	resp, body := get(t, http.DefaultClient, http.MethodGet, addr, "nothing.example.jp", "/")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Less(t, strings.Index(body, "サイトが見つかりません"), strings.Index(body, "Site not found"), "Japanese first")
	evs := rec.wait(t, 1)
	assert.Equal(t, "waf-unknown-site", evs[0].Verdict.Rule)
	assert.Equal(t, http.StatusNotFound, evs[0].HTTP.Status)
}

func TestHealthCheck(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	b.health.Store(http.StatusServiceUnavailable)
	s := newServer(t, waf.Config{
		Directory: directory(t, tenant.Site{Host: siteHost, Origins: []string{a.addr(), b.addr()}}),
		Origins:   waf.OriginConfig{HealthInterval: 20 * time.Millisecond, HealthPath: "/healthz"},
	})
	addr := start(t, s, false)
	get(t, http.DefaultClient, http.MethodGet, addr, siteHost, "/") // the site's pool is created on first use
	// Once a health round has run, b gets no more traffic and no client
	// sees an error.
	var before int64
	require.Eventually(t, func() bool {
		before = b.hits.Load()
		for range 6 {
			resp, _ := get(t, http.DefaultClient, http.MethodGet, addr, siteHost, "/")
			require.Equal(t, http.StatusOK, resp.StatusCode)
		}
		return b.hits.Load() == before
	}, 5*time.Second, 20*time.Millisecond, "unhealthy origin still gets traffic")

	b.health.Store(0) // healthy again
	require.Eventually(t, func() bool {
		get(t, http.DefaultClient, http.MethodGet, addr, siteHost, "/")
		return b.hits.Load() > before
	}, 5*time.Second, 20*time.Millisecond)
}

func TestHTTPSRedirect(t *testing.T) {
	a := newOrigin(t, "a")
	rec := &recorder{}
	s := newServer(t, waf.Config{
		Directory: directory(t, tenant.Site{Host: siteHost, Origins: []string{a.addr()}}),
		Sink:      rec,
		Sites:     map[string]waf.SiteOptions{"WWW.Aoba.Example.JP": {RedirectHTTPS: true, HTTPSPort: 8443}},
	})
	addr := start(t, s, false)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ := get(t, c, http.MethodGet, addr, siteHost, "/a?b=1")
	assert.Equal(t, http.StatusPermanentRedirect, resp.StatusCode)
	assert.Equal(t, "https://"+siteHost+":8443/a?b=1", resp.Header.Get("Location"))
	assert.Zero(t, a.hits.Load())
	assert.Equal(t, detect.ActionRedirect, rec.wait(t, 1)[0].Verdict.Action)
}

func TestTLSSNIHTTP2AndRenewal(t *testing.T) {
	a := newOrigin(t, "a")
	dir := t.TempDir()
	cp, kp, cert1 := writeCert(t, dir, 1, siteHost)
	rec := &recorder{}
	s := newServer(t, waf.Config{
		Directory: directory(t, tenant.Site{Host: siteHost, Origins: []string{a.addr()}, TLSCert: cp, TLSKey: kp}),
		Sink:      rec,
		TLS:       waf.TLSConfig{CertCheckInterval: time.Millisecond},
	})
	addr := start(t, s, true)

	fetch := func(roots ...*x509.Certificate) (*http.Response, string) {
		tr := &http2.Transport{TLSClientConfig: tlsClient(roots...)}
		tr.DialTLSContext = func(ctx context.Context, network, _ string, cfg *tls.Config) (net.Conn, error) {
			d := tls.Dialer{Config: cfg}
			return d.DialContext(ctx, network, addr)
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + siteHost + "/")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := fetch(cert1)
	assert.Equal(t, "HTTP/2.0", resp.Proto)
	assert.Equal(t, "hello from a", body)
	assert.Equal(t, cert1.SerialNumber, resp.TLS.PeerCertificates[0].SerialNumber)
	ev := rec.wait(t, 1)[0]
	assert.True(t, strings.HasPrefix(ev.URL, "https://"+siteHost+"/"), ev.URL)
	in := a.last.Load()
	assert.Equal(t, "https", in.Header.Get("X-Forwarded-Proto"))

	// Renew the certificate on disk: new connections get it, no restart.
	time.Sleep(10 * time.Millisecond) // a different mtime on coarse file systems
	_, _, cert2 := writeCert(t, dir, 2, siteHost)
	resp, _ = fetch(cert2)
	assert.Equal(t, cert2.SerialNumber, resp.TLS.PeerCertificates[0].SerialNumber)

	// A broken renewal (half-written files) keeps the loaded certificate.
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, os.WriteFile(cp, []byte("-----BEGIN CERTIFICATE-----\ngarbage"), 0o600))
	resp, _ = fetch(cert2)
	assert.Equal(t, cert2.SerialNumber, resp.TLS.PeerCertificates[0].SerialNumber)

	// No SNI, or an unknown name: the handshake fails.
	_, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "other.example.jp"}) //nolint:gosec // test
	assert.Error(t, err)
}

func TestMisdirected(t *testing.T) {
	a := newOrigin(t, "a")
	cp, kp, cert := writeCert(t, t.TempDir(), 1, siteHost)
	s := newServer(t, waf.Config{
		Directory: directory(t, tenant.Site{Host: siteHost, Origins: []string{a.addr()}, TLSCert: cp, TLSKey: kp}),
	})
	addr := start(t, s, true)
	cfg := tlsClient(cert)
	cfg.ServerName = siteHost
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://other.example.jp/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  waf.Config
		want string
	}{
		{"no directory", waf.Config{}, "Config.Directory is required"},
		{"bad health path", waf.Config{Directory: directory(t), Origins: waf.OriginConfig{HealthPath: "healthz"}}, "HealthPath"},
		{"negative timeout", waf.Config{Directory: directory(t), Timeouts: waf.Timeouts{OriginDial: -1}}, "OriginDial"},
		{"bad port", waf.Config{Directory: directory(t), Sites: map[string]waf.SiteOptions{"a": {HTTPSPort: 70000}}}, "HTTPSPort"},
		{"bad balance", waf.Config{Directory: directory(t), Origins: waf.OriginConfig{Balance: 9}}, "Balance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := waf.New(tc.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "waf: "))
		})
	}
}

func TestSlowloris(t *testing.T) {
	s := newServer(t, waf.Config{Directory: directory(t), Timeouts: waf.Timeouts{ReadHeaderTimeout: 100 * time.Millisecond}})
	addr := start(t, s, false)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("GET / HTTP/1.1\r\nHost: " + siteHost + "\r\nX-Slow: "))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	t0 := time.Now()
	_, err = io.ReadAll(c) // the server closes the connection
	require.NoError(t, err)
	assert.Less(t, time.Since(t0), 4*time.Second)
}
