package notify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Token errors. A token that fails is refused and recorded.
var (
	ErrTokenForged  = errors.New("notify: acknowledgement token forged or damaged")
	ErrTokenExpired = errors.New("notify: acknowledgement token expired")
	ErrTokenUsed    = errors.New("notify: acknowledgement token already used")
)

// tokenClaims is what a token says: which incident and ladder step it was
// sent for, when it expires, and its single-use id.
type tokenClaims struct {
	Incident string
	Step     int
	Expires  time.Time
	Nonce    string
}

var b64 = base64.RawURLEncoding.Strict()

// signToken makes "payload.mac", both base64url; payload is
// "incident|step|expiry-unix|nonce" and mac HMAC-SHA256(key, payload).
func signToken(key []byte, id string, step int, exp time.Time) (string, tokenClaims) {
	var n [12]byte
	_, _ = rand.Read(n[:])
	return signTokenNonce(key, id, step, exp, b64.EncodeToString(n[:]))
}

func signTokenNonce(key []byte, id string, step int, exp time.Time, nonce string) (string, tokenClaims) {
	c := tokenClaims{Incident: id, Step: step, Expires: exp.Truncate(time.Second).UTC(), Nonce: nonce}
	payload := id + "|" + strconv.Itoa(step) + "|" + strconv.FormatInt(c.Expires.Unix(), 10) + "|" + c.Nonce
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return b64.EncodeToString([]byte(payload)) + "." + b64.EncodeToString(m.Sum(nil)), c
}

// parseToken checks a token's MAC and expiry. It returns the claims even for
// an expired token (so the refusal can be recorded on the incident).
func parseToken(key []byte, tok string, now time.Time) (tokenClaims, error) {
	var c tokenClaims
	if len(tok) > 512 {
		return c, ErrTokenForged
	}
	p64, m64, ok := strings.Cut(tok, ".")
	if !ok {
		return c, ErrTokenForged
	}
	payload, err1 := b64.DecodeString(p64)
	mac, err2 := b64.DecodeString(m64)
	if err1 != nil || err2 != nil {
		return c, ErrTokenForged
	}
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	if !hmac.Equal(mac, m.Sum(nil)) {
		return c, ErrTokenForged
	}
	parts := strings.Split(string(payload), "|")
	if len(parts) != 4 {
		return c, ErrTokenForged
	}
	step, err1 := strconv.Atoi(parts[1])
	exp, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return c, ErrTokenForged
	}
	c = tokenClaims{Incident: parts[0], Step: step, Expires: time.Unix(exp, 0).UTC(), Nonce: parts[3]}
	if !now.Before(c.Expires) {
		return c, ErrTokenExpired
	}
	return c, nil
}
