package console

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RFC 4226 appendix D: HOTP values of "12345678901234567890".
func TestHOTPRFC4226(t *testing.T) {
	key := []byte("12345678901234567890")
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for i, w := range want {
		assert.Equal(t, w, hotp(key, uint64(i), 6), "counter %d", i)
	}
}

// RFC 6238 appendix B, SHA-1 column (8 digits).
func TestTOTPRFC6238(t *testing.T) {
	key := []byte("12345678901234567890")
	cases := []struct {
		unix int64
		want string
	}{
		{59, "94287082"}, {1111111109, "07081804"}, {1111111111, "14050471"},
		{1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, totpAt(key, time.Unix(c.unix, 0), 8), "T=%d", c.unix)
	}
}

func TestTOTPMatchSkew(t *testing.T) {
	sec, err := NewTOTPSecret()
	require.NoError(t, err)
	k, err := decodeTOTPSecret(sec)
	require.NoError(t, err)
	now := time.Unix(1_700_000_000, 0)
	code, err := TOTPCode(sec, now)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, totpMatch(k, code, now), int64(0))
	assert.GreaterOrEqual(t, totpMatch(k, code, now.Add(30*time.Second)), int64(0), "one step of drift")
	assert.Equal(t, int64(-1), totpMatch(k, code, now.Add(90*time.Second)), "three steps later")
	assert.Equal(t, int64(-1), totpMatch(k, "12345", now))
	assert.Contains(t, TOTPURI("seccloud", "aoba-admin", sec), "otpauth://totp/seccloud:aoba-admin?")
}
