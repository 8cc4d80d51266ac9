package vuln_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/judge"
	"github.com/jichitai/seccloud/detect/rules"
	"github.com/jichitai/seccloud/detect/vuln"
)

func load(t *testing.T) *vuln.DB {
	t.Helper()
	inv, err := vuln.LoadInventory("testdata/assets.csv")
	require.NoError(t, err)
	feed, err := vuln.LoadFeed("testdata/feed.json")
	require.NoError(t, err)
	return vuln.New(inv, feed)
}

func TestFindings(t *testing.T) {
	db := load(t)
	for name, tc := range map[string]struct {
		tenant, host      string
		vulnerable, known bool
		cves              []string
	}{
		"exact version and range":    {"tsu", "www.city.tsu.example.jp", true, true, []string{"CVE-2021-41773", "CVE-2022-22720"}},
		"patched":                    {"tsu", "mail.city.tsu.example.jp", false, true, nil},
		"AND config on its platform": {"tsu", "CMS.city.tsu.example.jp.", true, true, []string{"CVE-2099-0001"}},
		"AND config, other platform": {"yokkaichi", "cms.city.yokkaichi.example.jp", false, true, nil},
		"other tenant's host":        {"yokkaichi", "www.city.tsu.example.jp", false, false, nil},
		"unknown host":               {"tsu", "unknown.example.jp", false, false, nil},
	} {
		t.Run(name, func(t *testing.T) {
			v, k := db.IsVulnerable(tc.tenant, tc.host)
			assert.Equal(t, tc.vulnerable, v)
			assert.Equal(t, tc.known, k)
			fs, _ := db.Findings(tc.tenant, tc.host)
			var ids []string
			for _, f := range fs {
				ids = append(ids, f.CVE)
			}
			assert.Equal(t, tc.cves, ids)
		})
	}
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"2.4.9", "2.4.10", -1}, {"2.4.52", "2.4.52", 0}, {"2.4", "2.4.0", -1}, {"1.10", "1.2", 1},
		{"1.0.0-rc1", "1.0.0-rc2", -1}, {"1.0.1", "1.0.rc", 1}, {"8.0p1", "8.0p2", -1}, {"10", "9", 1},
	} {
		assert.Equal(t, tc.want, vuln.Compare(tc.a, tc.b), "%s vs %s", tc.a, tc.b)
		assert.Equal(t, -tc.want, vuln.Compare(tc.b, tc.a), "%s vs %s", tc.b, tc.a)
	}
}

func TestBadFiles(t *testing.T) {
	_, err := vuln.ReadInventory(strings.NewReader("tenant,host,version\n"), "a.csv")
	assert.ErrorContains(t, err, `a.csv:1: header lacks column "product"`)
	_, err = vuln.ReadInventory(strings.NewReader("tenant,host,product,version\ntsu,,x,1\n"), "b.csv")
	assert.ErrorContains(t, err, "b.csv:2:")
	_, err = vuln.ReadFeed(strings.NewReader(`{"vulnerabilities":[{"cve":{"id":"CVE-1","configurations":[{"nodes":[{"cpeMatch":[{"criteria":"apache"}]}]}]}}]}`), "f.json")
	assert.ErrorContains(t, err, "CVE-1")
	_, err = vuln.ReadFeed(strings.NewReader(`{"vulnerabilities":`), "g.json")
	assert.ErrorContains(t, err, "g.json")
}

// The judge raises a detection-only WAF attack on a vulnerable site from 2
// to 3 and records the CVEs; a patched site stays 2.
func TestJudgeRaisesWithEvidence(t *testing.T) {
	db := load(t)
	def, err := rules.Default()
	require.NoError(t, err)
	var got []*rules.Alert
	now := time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)
	eng := rules.New(rules.Config{Rules: def, Handler: rules.HandlerFunc(func(a *rules.Alert) { got = append(got, a) }), Now: func() time.Time { return now }})
	for _, host := range []string{"www.city.tsu.example.jp", "mail.city.tsu.example.jp"} {
		ev := detect.Event{Time: now, Module: "waf", Tenant: "tsu", Client: netip.MustParseAddrPort("203.0.113.9:1"),
			DestDomain: host, URL: "https://" + host + "/cgi-bin/.%2e/.%2e/etc/passwd", HTTP: detect.HTTPInfo{Status: 200},
			Verdict: detect.Verdict{Action: detect.ActionReport, Rule: "crs-930100"}}
		eng.Process(&ev)
	}
	require.Len(t, got, 2)
	j := &judge.Default{Vuln: db}
	res := j.Judge(judge.FromAlert(got[0]))
	assert.Equal(t, detect.SeveritySucceeded, res.Severity)
	var ja []string
	for _, e := range res.Evidence {
		ja = append(ja, e.JA)
	}
	assert.Contains(t, strings.Join(ja, "\n"), "脆弱性: CVE-2021-41773 (http_server 2.4.49: apache:http_server 2.4.49)")
	res = j.Judge(judge.FromAlert(got[1]))
	assert.Equal(t, detect.SeverityReached, res.Severity)
}

var (
	_ judge.VulnLookup  = (*vuln.DB)(nil)
	_ judge.VulnDetails = (*vuln.DB)(nil)
)
