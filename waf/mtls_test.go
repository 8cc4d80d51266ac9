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
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf"
)

// pair writes a self-signed certificate usable for both server and
// client authentication.
func pair(t *testing.T, dir, name string) (certFile, keyFile string, cert *x509.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, IPAddresses: nil, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, _ = x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	return certFile, keyFile, cert
}

func TestOriginMTLS(t *testing.T) {
	dir := t.TempDir()
	clientCert, clientKey, cc := pair(t, dir, "waf-client")
	_, _, _ = clientCert, clientKey, cc
	pool := x509.NewCertPool()
	pool.AddCert(cc)
	var seen string
	o := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.TLS.PeerCertificates[0].Subject.CommonName
		w.Write([]byte("secret origin"))
	}))
	o.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	o.StartTLS()
	defer o.Close()
	roots := x509.NewCertPool()
	roots.AddCert(o.Certificate())
	mk := func(auth waf.OriginAuth) string {
		s := newServer(t, waf.Config{
			Directory: directory(t, tenant.Site{Host: siteHost, Origins: []string{o.URL}}),
			Origins:   waf.OriginConfig{HealthInterval: -1, TLS: &tls.Config{RootCAs: roots}},
			Sites:     map[string]waf.SiteOptions{siteHost: {OriginAuth: auth}},
		})
		return "http://" + start(t, s, false)
	}
	code, body, _ := do(t, clientFrom("127.0.0.1"), "GET", mk(waf.OriginAuth{ClientCert: clientCert, ClientKey: clientKey})+"/", "")
	assert.Equal(t, 200, code)
	assert.Equal(t, "secret origin", body)
	assert.Equal(t, "waf-client", seen)
	code, _, _ = do(t, clientFrom("127.0.0.1"), "GET", mk(waf.OriginAuth{})+"/", "")
	assert.Equal(t, http.StatusBadGateway, code, "without the client certificate the origin refuses")
}
