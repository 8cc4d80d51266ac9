package notify

import (
	"testing"
	"time"
)

// FuzzToken: the token parser never panics, and accepts only tokens it
// signed (anything else is forged).
func FuzzToken(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)
	good, _ := signTokenNonce(key, "INC-20261102-00001", 2, now.Add(time.Hour), "fixednonce")
	f.Add(good)
	f.Add("")
	f.Add(".")
	f.Add("SU5DfDF8MXxh.AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := parseToken(key, tok, now)
		if err != nil {
			return
		}
		// Accepted: it must be exactly what we sign for these claims.
		if again, _ := signTokenNonce(key, c.Incident, c.Step, c.Expires, c.Nonce); again != tok {
			t.Fatalf("accepted a token it did not sign: %q → %+v", tok, c)
		}
	})
}

func TestTokenRoundTrip(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)
	tok, c := signToken(key, "INC-1", 3, now.Add(time.Hour))
	got, err := parseToken(key, tok, now)
	if err != nil || got != c {
		t.Fatalf("round trip: %v %+v %+v", err, got, c)
	}
	if _, err := parseToken(key, tok, now.Add(time.Hour)); err != ErrTokenExpired {
		t.Fatalf("expiry: %v", err)
	}
	if _, err := parseToken([]byte("another key another key another k"), tok, now); err != ErrTokenForged {
		t.Fatalf("other key: %v", err)
	}
}
