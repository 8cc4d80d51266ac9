package waf_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/waf"
)

// writeCountryDB writes a MaxMind-format country database mapping
// loopback /32s to countries.
func writeCountryDB(t *testing.T, m map[string]string) string {
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-Country", IncludeReservedNetworks: true, IPVersion: 6})
	require.NoError(t, err)
	for ip, cc := range m {
		_, n, err := net.ParseCIDR(ip + "/32")
		require.NoError(t, err)
		require.NoError(t, tree.Insert(n, mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(cc)}}))
	}
	p := filepath.Join(t.TempDir(), "country.mmdb")
	f, err := os.Create(p)
	require.NoError(t, err)
	_, err = tree.WriteTo(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return p
}

func TestCountryRulesFromMMDB(t *testing.T) {
	db := writeCountryDB(t, map[string]string{"127.0.6.1": "KP", "127.0.6.2": "JP"})
	origin := func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }
	url, rec := siteServer(t, origin, waf.Config{GeoIP: waf.GeoIPConfig{File: db}},
		waf.SiteOptions{Countries: waf.CountryRules{Deny: []string{"KP"}}})
	code, _, _ := do(t, clientFrom("127.0.6.1"), "GET", url+"/", "")
	assert.Equal(t, 403, code)
	assert.Equal(t, "waf-country-deny", lastEvent(t, rec, 1).Verdict.Rule)
	code, _, _ = do(t, clientFrom("127.0.6.2"), "GET", url+"/", "")
	assert.Equal(t, 200, code)
	code, _, _ = do(t, clientFrom("127.0.6.3"), "GET", url+"/", "")
	assert.Equal(t, 200, code, "unknown addresses pass")
	_, err := waf.New(waf.Config{Directory: directory(t), GeoIP: waf.GeoIPConfig{File: filepath.Join(t.TempDir(), "missing.mmdb")}})
	assert.Error(t, err)
}
