package proxy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// Defaults of [CAConfig].
const (
	DefaultLeafCacheSize = 10_000
	DefaultLeafLifetime  = 30 * 24 * time.Hour
	DefaultCALifetime    = 10 * 365 * 24 * time.Hour
)

// CAConfig tunes a [CA].
type CAConfig struct {
	// CacheSize bounds the minted leaf certificates kept in memory (LRU).
	// Zero: DefaultLeafCacheSize.
	CacheSize int
	// LeafLifetime is how long a minted leaf is valid (and reused). Zero:
	// DefaultLeafLifetime (30 days). A leaf is re-minted a day before it
	// expires; it never outlives the CA.
	LeafLifetime time.Duration
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

// CA is the appliance's inspection certificate authority: it mints a leaf
// certificate per host name (ECDSA P-256), keeps it in an LRU cache and
// hands out the same certificate for a host for the leaf's lifetime
// (clients such as Firefox reject a host whose certificate keeps changing).
// Concurrent requests for the same host mint once (singleflight). A CA is
// safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	cfg     CAConfig
	cache   *lru.Cache[string, *tls.Certificate]
	group   singleflight.Group
	minted  atomic.Int64
}

// GenerateCA creates a new self-signed CA certificate and ECDSA P-256 key
// named cn, valid for DefaultCALifetime, and returns both PEM-encoded.
func GenerateCA(cn string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"seccloud"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(DefaultCALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: CA certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// LoadOrCreateCA reads the CA from certFile and keyFile, or, when neither
// exists, generates one named cn and writes them (the key with mode 0600).
func LoadOrCreateCA(certFile, keyFile, cn string, cfg CAConfig) (*CA, error) {
	certPEM, err1 := os.ReadFile(certFile)
	keyPEM, err2 := os.ReadFile(keyFile)
	if errors.Is(err1, os.ErrNotExist) && errors.Is(err2, os.ErrNotExist) {
		now := time.Now()
		if cfg.Now != nil {
			now = cfg.Now()
		}
		var err error
		if certPEM, keyPEM, err = GenerateCA(cn, now); err != nil {
			return nil, err
		}
		for _, f := range []string{certFile, keyFile} {
			if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
				return nil, fmt.Errorf("proxy: CA directory: %w", err)
			}
		}
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			return nil, fmt.Errorf("proxy: write CA key: %w", err)
		}
		if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
			return nil, fmt.Errorf("proxy: write CA certificate: %w", err)
		}
	} else if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("proxy: read CA: %w", err)
	}
	return NewCA(certPEM, keyPEM, cfg)
}

// NewCA returns a CA from a PEM certificate and its PEM private key
// (PKCS#8, EC or PKCS#1).
func NewCA(certPEM, keyPEM []byte, cfg CAConfig) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("proxy: CA key pair: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("proxy: CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("proxy: the CA certificate is not a CA (basicConstraints CA:FALSE)")
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("proxy: the CA key cannot sign")
	}
	if cfg.CacheSize < 0 || cfg.LeafLifetime < 0 {
		return nil, errors.New("proxy: CAConfig.CacheSize and LeafLifetime must not be negative")
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultLeafCacheSize
	}
	if cfg.LeafLifetime == 0 {
		cfg.LeafLifetime = DefaultLeafLifetime
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cache, err := lru.New[string, *tls.Certificate](cfg.CacheSize)
	if err != nil {
		return nil, fmt.Errorf("proxy: leaf cache: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	return &CA{cert: cert, key: key, cfg: cfg, cache: cache,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes})}, nil
}

// CertPEM returns the CA certificate in PEM, for distribution to
// terminals (their trust store).
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Minted returns how many leaf certificates the CA has minted.
func (ca *CA) Minted() int64 { return ca.minted.Load() }

// Leaf returns the leaf certificate for host (a DNS name or an IP
// address), minting it on first use.
func (ca *CA) Leaf(host string) (*tls.Certificate, error) {
	now := ca.cfg.Now()
	if c, ok := ca.cache.Get(host); ok && now.Add(24*time.Hour).Before(c.Leaf.NotAfter) {
		return c, nil
	}
	v, err, _ := ca.group.Do(host, func() (any, error) {
		if c, ok := ca.cache.Get(host); ok && now.Add(24*time.Hour).Before(c.Leaf.NotAfter) {
			return c, nil
		}
		c, err := ca.mint(host, now)
		if err != nil {
			return nil, err
		}
		ca.cache.Add(host, c)
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tls.Certificate), nil
}

func (ca *CA) mint(host string, now time.Time) (*tls.Certificate, error) {
	if host == "" {
		return nil, errors.New("proxy: no host name to mint a certificate for")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("proxy: leaf key: %w", err)
	}
	notAfter := now.Add(ca.cfg.LeafLifetime)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("proxy: mint %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca.minted.Add(1)
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// randSerial returns a random 128-bit serial number, so no two
// certificates of the CA share one.
func randSerial() *big.Int {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b[:])
}
