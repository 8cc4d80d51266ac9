package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// TOTP parameters (RFC 6238 defaults, what every authenticator app reads):
// HMAC-SHA1, 6 digits, 30-second steps, and one step of clock drift
// accepted either side.
const (
	totpDigits = 6
	totpStep   = 30 * time.Second
	totpSkew   = 1
)

// hotp is RFC 4226's HOTP value of key at counter, with digits digits.
func hotp(key []byte, counter uint64, digits int) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac := hmac.New(sha1.New, key)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	code := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, code%mod)
}

// totpAt is RFC 6238's TOTP value of key at t (T0 = 0, step 30 s).
func totpAt(key []byte, t time.Time, digits int) string {
	return hotp(key, uint64(t.Unix())/uint64(totpStep/time.Second), digits)
}

// totpCounter returns the step counter whose code matches code within the
// allowed skew around t, or -1.
func totpMatch(key []byte, code string, t time.Time) int64 {
	code = strings.TrimSpace(code)
	if len(code) != totpDigits {
		return -1
	}
	now := int64(t.Unix()) / int64(totpStep/time.Second)
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		c := now + d
		if c < 0 {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(hotp(key, uint64(c), totpDigits)), []byte(code)) == 1 {
			return c
		}
	}
	return -1
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTOTPSecret returns a random 160-bit TOTP secret in base32 (no
// padding), the form authenticator apps take.
func NewTOTPSecret() (string, error) {
	k := make([]byte, 20)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("console: totp secret: %w", err)
	}
	return b32.EncodeToString(k), nil
}

func decodeTOTPSecret(s string) ([]byte, error) {
	k, err := b32.DecodeString(strings.ToUpper(strings.TrimRight(strings.ReplaceAll(s, " ", ""), "=")))
	if err != nil || len(k) < 10 {
		return nil, fmt.Errorf("console: bad totp secret")
	}
	return k, nil
}

// TOTPURI returns the otpauth:// URI of a secret (shown as a QR code by
// most tools, or typed into an authenticator app).
func TOTPURI(issuer, user, secret string) string {
	v := url.Values{"secret": {secret}, "issuer": {issuer}, "digits": {"6"}, "period": {"30"}, "algorithm": {"SHA1"}}
	return "otpauth://totp/" + url.PathEscape(issuer+":"+user) + "?" + v.Encode()
}

// TOTPCode returns the current code of a base32 secret (for tests and
// tools).
func TOTPCode(secret string, t time.Time) (string, error) {
	k, err := decodeTOTPSecret(secret)
	if err != nil {
		return "", err
	}
	return totpAt(k, t, totpDigits), nil
}
