package app

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/appliance/config"
)

// TestWAFChallengeKeyKept: the key signing the WAF's challenge cookies is
// created under data_dir on first start (32 bytes, mode 0600) and the
// same key is handed to the WAF after a restart, so cookies issued before
// the restart still pass (waf.TestChallengeKeyShared checks that servers
// with one key accept each other's cookies).
func TestWAFChallengeKeyKept(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`version: 1
data_dir: data
listen: {console: "127.0.0.1:0", waf_http: "127.0.0.1:0"}
functions: {proxy: false, dns: false}
tenants:
  - id: tsu
    name: 津市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    sites:
      - {host: www.city.tsu.example.jp, origins: ["127.0.0.1:1"]}
`), 0o600))
	start := func() []byte {
		a, err := New(Options{ConfigPath: cfgPath, Log: io.Discard})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx, 10*time.Second) }()
		key := startedService[*wafService](t, a).chalKey
		cancel()
		require.NoError(t, <-done)
		return key
	}
	first := start()
	require.Len(t, first, 32)
	path := filepath.Join(dir, "data", "waf", "challenge.key")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	onDisk, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, first, onDisk)

	assert.Equal(t, first, start(), "the same key after a restart")
}

// TestWAFChallengeKeyFile: a configured waf.ddos.challenge_key_file must
// exist and be long enough (nodes behind one load balancer share it; a
// missing file must not silently become a different key per node); no
// key file is made when the layer-7 limits are off.
func TestWAFChallengeKeyFile(t *testing.T) {
	dir := t.TempDir()
	parse := func(extra string) *config.Config {
		cfg, err := config.Parse(filepath.Join(dir, "c.yaml"), []byte("version: 1\ndata_dir: data\nlisten: {console: \"127.0.0.1:0\"}\n"+extra))
		require.NoError(t, err)
		return cfg
	}
	_, err := wafChallengeKey(parse("waf: {ddos: {challenge_key_file: shared.key}}\n"))
	assert.ErrorContains(t, err, "waf.ddos.challenge_key_file")
	assert.NoFileExists(t, filepath.Join(dir, "shared.key"))

	require.NoError(t, os.WriteFile(filepath.Join(dir, "short.key"), []byte("0123456789"), 0o600))
	_, err = wafChallengeKey(parse("waf: {ddos: {challenge_key_file: short.key}}\n"))
	assert.ErrorContains(t, err, "too short")

	shared := []byte("0123456789abcdef0123456789abcdef")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "shared.key"), shared, 0o600))
	key, err := wafChallengeKey(parse("waf: {ddos: {challenge_key_file: shared.key}}\n"))
	require.NoError(t, err)
	assert.Equal(t, shared, key)

	key, err = wafChallengeKey(parse("waf: {ddos: {disabled: true}}\n"))
	require.NoError(t, err)
	assert.Nil(t, key)
	assert.NoDirExists(t, filepath.Join(dir, "data", "waf"))
}
