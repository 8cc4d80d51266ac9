package waf_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/ratelimit"
	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf"
)

// TestClientRateShared: two WAF nodes whose per-client rate is decided by
// one shared store (DDoSConfig.Shared): a client that spent its burst on
// node 1 is refused on node 2.
func TestClientRateShared(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
	}))
	defer origin.Close()
	store, err := ratelimit.NewMemoryStore(ratelimit.MemoryStoreConfig{}) // a RedisStore between machines
	require.NoError(t, err)
	var bases []string
	for range 2 {
		sh, err := ratelimit.NewShared(ratelimit.SharedConfig{Store: store, Limit: ratelimit.Limit{Rate: 0.001, Burst: 4}, Timeout: time.Second})
		require.NoError(t, err)
		s := newServer(t, waf.Config{
			Directory: directory(t, tenant.Site{Host: siteHost, Origins: []string{origin.Listener.Addr().String()}}),
			Sink:      &recorder{}, Origins: waf.OriginConfig{HealthInterval: -1},
			DDoS: waf.DDoSConfig{ClientRate: 0.001, ClientBurst: 4, Shared: sh},
		})
		bases = append(bases, "http://"+start(t, s, false))
	}
	c := clientFrom("127.0.3.20")
	for range 4 {
		code, _, _ := do(t, c, "GET", bases[0]+"/", "")
		require.Equal(t, 200, code)
	}
	code, _, _ := do(t, c, "GET", bases[1]+"/", "")
	assert.Equal(t, 429, code, "the burst was spent on node 1")
	code, _, _ = do(t, clientFrom("127.0.3.21"), "GET", bases[1]+"/", "")
	assert.Equal(t, 200, code, "another client is not affected")
}
