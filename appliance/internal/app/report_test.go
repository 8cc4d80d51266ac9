package app

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/report"
)

func reportCSV(t *testing.T, b []byte) map[string]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(b, []byte("\ufeff")))).ReadAll()
	require.NoError(t, err)
	out := map[string]string{}
	for _, r := range recs[1:] {
		out[strings.Join(r[:4], "|")] = r[4]
	}
	return out
}

// TestMonthlyReportAPIAndIngest: 1,000 WAF blocks from one scanner and a
// firewall deny received over the syslog listener show up in the monthly
// report of the console API and of the offline report command, with one
// level-1 incident for the scanner.
func TestMonthlyReportAPIAndIngest(t *testing.T) {
	a, ctx := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0"}
functions: {proxy: false, dns: false, mail: false, waf: false}
detect: {ingest: {syslog_udp: "127.0.0.1:0", syslog_tcp: "127.0.0.1:0"}}
tenants:
  - id: aoba
    name: あおば市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
`)
	now := time.Now()
	for i := range 1000 {
		a.events.emit(detect.Event{Time: now.Add(time.Duration(i) * time.Millisecond), Module: "waf", Tenant: "aoba",
			Client: netip.MustParseAddrPort("203.0.113.9:5000"), DestDomain: "www.aoba.example",
			Labels:  []detect.Label{{Key: "site", Value: "www.aoba.example"}},
			Verdict: detect.Verdict{Action: detect.ActionBlock, Rule: "crs-942100", RuleName: "SQL injection"}})
	}
	udp, err := net.Dial("udp", a.events.det.inAddrs["syslog_udp"])
	require.NoError(t, err)
	defer udp.Close()
	msg := fmt.Sprintf("<132>1 %s fw1 fortigate - - - srcip=198.51.100.7 dstip=127.0.1.20 dstport=22 action=deny policyid=7",
		now.UTC().Format(time.RFC3339))
	_, err = udp.Write([]byte(msg))
	require.NoError(t, err)
	_, err = udp.Write([]byte("\xff\xfe hostile"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		s := a.events.det.ingest.Stats()
		return s.Accepted == 1 && s.Dropped["invalid_utf8"] == 1
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, a.events.flush(ctx, 10*time.Second))

	month := now.In(report.JST).Format("2006-01")
	base := "http://" + a.ConsoleAddr() + "/api/reports/monthly?month=" + month
	get := func(url string) []byte {
		resp, err := http.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		return b
	}
	c := reportCSV(t, get(base+"&format=csv"))
	assert.Equal(t, "1001", c["summary|aoba|detections|total"])
	assert.Equal(t, "1001", c["summary|aoba|detections|level1"])
	assert.Equal(t, "1000", c["signature|aoba|crs-942100|count"])
	assert.Equal(t, "1", c["signature|aoba|fw-7|count"])
	assert.Equal(t, "1", c["summary|aoba|incidents|total"], "1,000 blocks are one incident")
	assert.Equal(t, "1000", c["site|aoba|www.aoba.example|attacks_blocked"])
	var incCount string
	for k, v := range c {
		if strings.HasPrefix(k, "incident|aoba|") && strings.HasSuffix(k, "|rule") && v == "seccloud-waf-attack" {
			incCount = c[strings.TrimSuffix(k, "|rule")+"|count"]
			assert.Equal(t, "1", c[strings.TrimSuffix(k, "|rule")+"|severity"])
		}
	}
	assert.Equal(t, "1000", incCount)

	page := string(get(base + "&tenant=aoba"))
	assert.Contains(t, page, "月次報告書")
	assert.Contains(t, page, "あおば市")
	assert.Contains(t, page, "<svg")

	resp, err := http.Get("http://" + a.ConsoleAddr() + "/api/reports/monthly?month=2026-13")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// The offline command reads the same data beside the running appliance.
	var buf bytes.Buffer
	ad := &Admin{ConfigPath: a.opts.ConfigPath, Out: &buf}
	require.NoError(t, ad.Report(month, "aoba", "csv"))
	c = reportCSV(t, buf.Bytes())
	assert.Equal(t, "1001", c["summary|aoba|detections|total"])
	assert.Equal(t, "1", c["summary|aoba|incidents|total"])
}
