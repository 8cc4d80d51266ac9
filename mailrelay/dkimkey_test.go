package mailrelay_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/mailrelay"
)

func TestLoadDKIMKeyCreatesOnceAndReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "a.example.jp.pem")
	_, _, err := mailrelay.LoadDKIMKey(path, false)
	require.ErrorIs(t, err, os.ErrNotExist)

	k1, created, err := mailrelay.LoadDKIMKey(path, true)
	require.NoError(t, err)
	assert.True(t, created)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	rk, ok := k1.(*rsa.PrivateKey)
	require.True(t, ok)
	assert.Equal(t, 2048, rk.N.BitLen())

	k2, created, err := mailrelay.LoadDKIMKey(path, true)
	require.NoError(t, err)
	assert.False(t, created, "an existing key is kept")
	assert.True(t, rk.Equal(k2))

	rec, err := mailrelay.DKIMRecord(k1)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(rec, "v=DKIM1; k=rsa; p="), rec)
	der, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(rec, "v=DKIM1; k=rsa; p="))
	require.NoError(t, err)
	pub, err := x509.ParsePKIXPublicKey(der)
	require.NoError(t, err)
	assert.True(t, rk.PublicKey.Equal(pub))
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".dkim-*"))
	assert.Empty(t, left, "no temporary files left")
}

func TestParseDKIMKeyFormats(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)})
	k, err := mailrelay.ParseDKIMKey(pkcs1)
	require.NoError(t, err)
	assert.True(t, rk.Equal(k))

	_, ek, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(ek)
	require.NoError(t, err)
	k, err = mailrelay.ParseDKIMKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	require.NoError(t, err)
	rec, err := mailrelay.DKIMRecord(k)
	require.NoError(t, err)
	assert.Equal(t, "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(ek.Public().(ed25519.PublicKey)), rec)

	_, err = mailrelay.ParseDKIMKey([]byte("not a key"))
	assert.ErrorContains(t, err, "no PEM block")
	_, err = mailrelay.ParseDKIMKey(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}))
	assert.ErrorContains(t, err, "CERTIFICATE")
}

func FuzzParseDKIMKey(f *testing.F) {
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		k, err := mailrelay.ParseDKIMKey(raw)
		if err == nil && k == nil {
			t.Fatal("nil key without an error")
		}
	})
}
