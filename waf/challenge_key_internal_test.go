package waf

import (
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChallengeKeyShared: a challenge cookie issued by one server passes
// on another given the same ChallengeKey (two nodes behind a load
// balancer, or one node after a restart), and on no server with another
// key; without a key each process draws its own, so cookies do not carry
// over (the appliance therefore keeps the key in a file).
func TestChallengeKeyShared(t *testing.T) {
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }
	key := []byte("0123456789abcdef0123456789abcdef")
	newC := func(k []byte) *challenger {
		c, err := newChallenger(&DDoSConfig{ChallengeKey: k}, now)
		require.NoError(t, err)
		return c
	}
	client := netip.MustParseAddr("192.0.2.1")
	const site = "www.aoba.example.jp"
	passes := func(issuer, checker *challenger) bool {
		r := httptest.NewRequest("GET", "http://"+site+"/", nil)
		r.Header.Set("Cookie", challengeCookie+"="+issuer.token(client, site))
		return checker.passed(r, client, site)
	}
	a, b := newC(key), newC(append([]byte(nil), key...))
	assert.True(t, passes(a, b), "same key: the cookie passes on the other node")
	assert.True(t, passes(b, a))
	assert.False(t, passes(a, newC([]byte("another key, 16+ bytes long"))), "another key: refused")
	assert.False(t, passes(newC(nil), newC(nil)), "no key: a random one per process")
}
