package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/appliance/console"
	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/notify/notifytest"
	"github.com/jichitai/seccloud/detect/report"
)

// TestRollupViewSitesAndCounts: the console's site traffic and dashboard
// counts come from detect/report's rollups, per local day, per tenant,
// across a JST month boundary.
func TestRollupViewSitesAndCounts(t *testing.T) {
	r, err := report.Open(report.Config{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	a := &App{events: &pipeline{det: &detection{rollup: r}}}
	v := rollupView{a}

	utc := time.UTC
	// 2026-11-30 UTC: 00:00–15:00 is still November in JST, 15:00– is December.
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, utc)
	waf := func(at time.Time, tenantID, site, cache string, attack bool) detect.Event {
		e := detect.Event{Time: at, Module: "waf", Tenant: tenantID, BytesOut: 1000,
			Labels: []detect.Label{{Key: "site", Value: site}, {Key: "cache", Value: cache}}, Verdict: detect.Verdict{Action: detect.ActionAllow}}
		if attack {
			e.Verdict = detect.Verdict{Action: detect.ActionBlock, Rule: "942100"}
		}
		return e
	}
	r.Add(
		waf(day.Add(2*time.Hour), "aoba", "www.aoba.example.jp", "hit", false),
		waf(day.Add(14*time.Hour), "aoba", "www.aoba.example.jp", "miss", true),
		waf(day.Add(16*time.Hour), "aoba", "www.aoba.example.jp", "hit", false), // December in JST
		waf(day.Add(23*time.Hour), "aoba", "www.aoba.example.jp", "stale", false),
		waf(day.Add(25*time.Hour), "aoba", "www.aoba.example.jp", "hit", false), // the next day
		waf(day.Add(3*time.Hour), "midori", "www.midori.example.jp", "hit", false),
		detect.Event{Time: day.Add(5 * time.Hour), Module: "dns", Tenant: "aoba", Severity: 2, Kind: "alert"},
	)
	rows, err := v.SiteDays("aoba", []time.Time{day.AddDate(0, 0, 1), day})
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, "2026-12-01", rows[0].Day)
	assert.Equal(t, int64(1), rows[0].Requests)
	assert.Equal(t, "2026-11-30", rows[1].Day)
	assert.Equal(t, "www.aoba.example.jp", rows[1].Site)
	assert.Equal(t, int64(4), rows[1].Requests, "both JST months of the UTC day")
	assert.Equal(t, int64(3), rows[1].CacheHits)
	assert.Equal(t, int64(1), rows[1].Attacks)
	assert.Equal(t, int64(4000), rows[1].Bytes)

	c, err := v.Counts("aoba", day, day.AddDate(0, 0, 1))
	require.NoError(t, err)
	assert.Equal(t, int64(4), c.Events["waf"])
	assert.Equal(t, int64(1), c.Events["dns"])
	assert.Equal(t, int64(1), c.Detections[2], "the DNS alert")
	assert.Equal(t, int64(1), c.Detections[1], "the blocked attack (stopped)")
	all, err := v.Counts("", day, day.AddDate(0, 0, 1))
	require.NoError(t, err)
	assert.Equal(t, int64(5), all.Events["waf"], "the whole cloud has midori's too")
}

// BenchmarkRollupView: a tenant's 14 days of site traffic, and the
// whole cloud's month counts for the dashboard, over a month of rollups
// of 50 tenants with 2 sites each and traffic every hour.
func BenchmarkRollupView(b *testing.B) {
	r, err := report.Open(report.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, report.JST)
	var evs []detect.Event
	for h := 0; h < 30*24; h++ {
		at := start.Add(time.Duration(h) * time.Hour)
		for tn := range 50 {
			for s := range 2 {
				evs = append(evs, detect.Event{Time: at, Module: "waf", Tenant: fmt.Sprintf("t%02d", tn), BytesOut: 100,
					Labels: []detect.Label{{Key: "site", Value: fmt.Sprintf("www%d.t%02d.example.jp", s, tn)}}})
			}
		}
		r.Add(evs...)
		evs = evs[:0]
	}
	v := rollupView{&App{events: &pipeline{det: &detection{rollup: r}}}}
	var days []time.Time
	for i := range 14 {
		days = append(days, start.AddDate(0, 0, 29-i))
	}
	b.Run("SiteDays14", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.SiteDays("t07", days); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CountsMonthCloud", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Counts("", start, start.AddDate(0, 1, 0)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

const consoleMailYAML = `version: 1
data_dir: data
listen: {console: "127.0.0.1:0"}
functions: {proxy: false, dns: false, mail: false, waf: false}
notify: {smtp: "SINK", from: soc@cloud.example.jp, ack_url: "https://soc.example.jp/ack"}
tenants:
  - id: aoba
    name: あおば市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    contacts: [{name: 情報政策課, email: security@aoba.example.jp}]
    accounts:
      - {name: aoba-admin, role: admin}
`

// TestConsoleRequestsWired: on the appliance, a request filed by a tenant
// admin is mailed to notify.from through notify.smtp, the operator's
// comment to the tenant's contact, with links to notify.ack_url's host;
// the request and the sessions survive a restart of the appliance.
func TestConsoleRequestsWired(t *testing.T) {
	sink, err := notifytest.NewSMTPSink(nil)
	require.NoError(t, err)
	t.Cleanup(func() { sink.Close() })
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(strings.Replace(consoleMailYAML, "SINK", sink.Addr, 1)), 0o600))
	ad := &Admin{ConfigPath: cfgPath, Out: io.Discard}
	require.NoError(t, ad.AccountAdd("aoba-admin", "aoba", console.RoleAdmin, false, strings.NewReader("long password 1\n")))
	require.NoError(t, ad.AccountAdd("soc", "", console.RoleOperator, false, strings.NewReader("long password 2\n")))

	start := func() (string, func()) {
		a, err := New(Options{ConfigPath: cfgPath, Log: io.Discard})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx, 10*time.Second) }()
		return "http://" + a.ConsoleAddr(), func() { cancel(); require.NoError(t, <-done) }
	}
	base, stop := start()
	type cl struct {
		hc   *http.Client
		csrf string
	}
	login := func(user, pw string) *cl {
		jar, _ := cookiejar.New(nil)
		c := &cl{hc: &http.Client{Jar: jar}}
		res, err := c.hc.Post(base+"/api/v1/session", "application/json", strings.NewReader(`{"user":"`+user+`","password":"`+pw+`"}`))
		require.NoError(t, err)
		var me console.Me
		require.NoError(t, json.NewDecoder(res.Body).Decode(&me))
		res.Body.Close()
		c.csrf = me.CSRF
		return c
	}
	post := func(c *cl, path, body string) (int, []byte) {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", c.csrf)
		res, err := c.hc.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	tenantC := login("aoba-admin", "long password 1")
	code, b := post(tenantC, "/api/v1/requests", `{"kind":"change","subject":"DNSレコードの追加","body":"www2 を追加してください"}`)
	require.Equal(t, http.StatusCreated, code, string(b))
	var r console.Request
	require.NoError(t, json.Unmarshal(b, &r))
	mailTo := func(addr string) []notifytest.Mail {
		var out []notifytest.Mail
		for _, m := range sink.Mails() {
			if len(m.To) == 1 && m.To[0] == addr {
				out = append(out, m)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(mailTo("soc@cloud.example.jp")) == 1 }, 10*time.Second, 20*time.Millisecond)
	m := mailTo("soc@cloud.example.jp")[0]
	assert.Contains(t, m.Text(), "DNSレコードの追加")
	assert.Contains(t, m.Text(), "https://soc.example.jp/requests/"+r.ID)

	opC := login("soc", "long password 2")
	code, b = post(opC, "/api/v1/requests/"+r.ID+"/comments", `{"text":"追加しました","status":"done"}`)
	require.Equal(t, http.StatusOK, code, string(b))
	require.Eventually(t, func() bool { return len(mailTo("security@aoba.example.jp")) == 1 }, 10*time.Second, 20*time.Millisecond)
	assert.Contains(t, mailTo("security@aoba.example.jp")[0].Text(), "追加しました")
	stop()

	// Restarted: the same browser session, and the request with its thread.
	base, stop = start()
	defer stop()
	res, err := tenantC.hc.Get(base + "/api/v1/requests/" + r.ID)
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(res.Body).Decode(&r))
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, console.StatusDone, r.Status)
	require.Len(t, r.Comments, 1)
	assert.Equal(t, "追加しました", r.Comments[0].Text)
}
