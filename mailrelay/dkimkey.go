package mailrelay

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadDKIMKey reads a DKIM private key from a PEM file: PKCS#8 ("PRIVATE
// KEY", RSA or Ed25519) or PKCS#1 ("RSA PRIVATE KEY"). RSA keys under
// 1,024 bits are refused (RFC 8301); 2,048 and more are recommended.
//
// When the file does not exist and create is true, a new 2,048-bit RSA
// key is written there first (PKCS#8, mode 0600, written to a temporary
// file, synced and renamed, so a crash leaves either no key or a whole
// one) and created is true: publish DKIMRecord of it before mail signed
// with it leaves.
func LoadDKIMKey(path string, create bool) (key crypto.Signer, created bool, err error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := writeNewDKIMKey(path); err != nil {
			return nil, false, err
		}
		created = true
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("mailrelay: DKIM key: %w", err)
	}
	key, err = ParseDKIMKey(raw)
	if err != nil {
		return nil, false, fmt.Errorf("mailrelay: DKIM key %s: %w", path, err)
	}
	return key, created, nil
}

// ParseDKIMKey parses a PEM DKIM private key as LoadDKIMKey does.
func ParseDKIMKey(raw []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(raw)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q: want PRIVATE KEY or RSA PRIVATE KEY", b.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 1024 {
			return nil, fmt.Errorf("RSA key of %d bits: at least 1024 (RFC 8301), 2048 recommended", k.N.BitLen())
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("key type %T: want RSA or Ed25519", k)
}

// DKIMRecord is the TXT record to publish at <selector>._domainkey.<domain>
// for key: "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" (RSA) or
// "v=DKIM1; k=ed25519; p=<base64 raw public key>" (RFC 8463).
func DKIMRecord(key crypto.Signer) (string, error) {
	switch p := key.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(p)
		if err != nil {
			return "", fmt.Errorf("mailrelay: DKIM record: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(p), nil
	}
	return "", fmt.Errorf("mailrelay: DKIM record: key type %T", key.Public())
}

func writeNewDKIMKey(path string) error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("mailrelay: DKIM key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return fmt.Errorf("mailrelay: DKIM key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("mailrelay: DKIM key: %w", err)
	}
	f, err := os.CreateTemp(dir, ".dkim-*.tmp")
	if err != nil {
		return fmt.Errorf("mailrelay: DKIM key: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err == nil {
		err = pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("mailrelay: DKIM key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
