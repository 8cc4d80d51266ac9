package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/report"
	"github.com/jichitai/seccloud/detect/rules"
)

var nov = time.Date(2026, 11, 1, 0, 0, 0, 0, report.JST)

// wafBlock is a WAF block of a scanner against tenant's site.
func wafBlock(t time.Time, tenant string) detect.Event {
	return detect.Event{Time: t, Module: "waf", Tenant: tenant, DestDomain: "www." + tenant + ".example",
		Client: netip.MustParseAddrPort("203.0.113.9:5000"), BytesOut: 100,
		Labels:  []detect.Label{{Key: "site", Value: "www." + tenant + ".example"}},
		Verdict: detect.Verdict{Action: detect.ActionBlock, Rule: "crs-942100", RuleName: "SQL injection"}}
}

// csvTable parses WriteCSV's output into section|tenant|key|item → value.
func csvTable(t *testing.T, b []byte) map[string]string {
	t.Helper()
	b = bytes.TrimPrefix(b, []byte("\ufeff"))
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, report.CSVHeader, recs[0])
	out := map[string]string{}
	for _, r := range recs[1:] {
		out[strings.Join(r[:4], "|")] = r[4]
	}
	return out
}

func TestMonthlyCounts(t *testing.T) {
	dir := t.TempDir()
	r, err := report.Open(report.Config{Dir: dir})
	require.NoError(t, err)
	ctx := context.Background()

	var evs []detect.Event
	// 1,000 WAF blocks on 3 November (JST) against tenant a.
	for i := range 1000 {
		evs = append(evs, wafBlock(nov.AddDate(0, 0, 2).Add(10*time.Hour+time.Duration(i)*time.Second), "a"))
	}
	// A report-only WAF detection (level 2) on 1 November 00:30 JST, which
	// is still 31 October in UTC.
	rep := wafBlock(nov.Add(30*time.Minute), "b")
	rep.Verdict.Action = detect.ActionReport
	evs = append(evs, rep)
	// An alert carrying its own judged level 3 on 30 November 23:59 JST.
	evs = append(evs, detect.Event{Time: nov.AddDate(0, 0, 29).Add(23*time.Hour + 59*time.Minute), Module: "detect",
		Kind: "alert", Severity: 3, Tenant: "a", Verdict: detect.Verdict{Rule: "seccloud-cc-resolve-connect"}})
	// December in JST: not in the report.
	evs = append(evs, wafBlock(nov.AddDate(0, 1, 0), "a"))
	// Plain traffic: proxy over the breakout line, mail, cached site hits.
	for i := range 10 {
		evs = append(evs, detect.Event{Time: nov.Add(time.Duration(i) * time.Hour), Module: "proxy", Tenant: "a", BytesOut: 1000,
			Labels: []detect.Label{{Key: "saas", Value: "M365"}}})
		evs = append(evs, detect.Event{Time: nov.Add(time.Duration(i) * time.Hour), Module: "waf", Tenant: "a",
			DestDomain: "www.a.example", BytesOut: 50, Labels: []detect.Label{{Key: "cache", Value: "hit"}}})
	}
	evs = append(evs,
		detect.Event{Time: nov.Add(time.Hour), Module: "mail", Dataset: "mail.message", Tenant: "a", Email: detect.EmailInfo{Direction: "inbound"}},
		detect.Event{Time: nov.Add(time.Hour), Module: "mail", Dataset: "mail.message", Tenant: "a", Email: detect.EmailInfo{Direction: "inbound"},
			Verdict: detect.Verdict{Action: detect.ActionQuarantine, Rule: "spam"}},
		detect.Event{Time: nov.Add(time.Hour), Module: "mail", Dataset: "mail.message", Tenant: "a", Email: detect.EmailInfo{Direction: "outbound"}},
		detect.Event{Time: nov.Add(time.Hour), Module: "mail", Dataset: "mail.delivery", Tenant: "a", Email: detect.EmailInfo{Direction: "outbound"}},
	)
	// In batches, with a checkpoint in the middle, so the month is spread
	// over a snapshot and the log.
	require.NoError(t, r.WriteEvents(ctx, evs[:500]))
	require.NoError(t, r.Checkpoint())
	require.NoError(t, r.WriteEvents(ctx, evs[500:]))

	// Incidents through the rule engine: 1,000 blocks are one incident.
	now := nov.AddDate(0, 0, 2).Add(11 * time.Hour)
	m, err := incident.Open(incident.Config{Dir: t.TempDir(), NoSync: true, Now: func() time.Time { return now }})
	require.NoError(t, err)
	defer m.Close()
	set, err := rules.Default()
	require.NoError(t, err)
	eng := rules.New(rules.Config{Rules: set, Handler: m, Now: func() time.Time { return now }})
	for i := range evs[:1000] {
		eng.Process(&evs[i])
	}
	list := m.List(incident.Filter{})
	require.Len(t, list, 1)
	id := list[0].ID
	require.NoError(t, m.Record(id, incident.Entry{Kind: incident.KindNotify, Channel: "email", To: "soc@a.example", By: "一郎"}))
	now = now.Add(time.Minute)
	require.NoError(t, m.Ack(id, "一郎", "phone", "", "電話で受領"))
	now = now.Add(time.Hour)
	require.NoError(t, m.SetState(id, incident.StateResolved, "suzuki", "スキャナを遮断済み"))

	// Reopen read-only, as the seccloud report command does beside a
	// running appliance.
	ro, err := report.Open(report.Config{Dir: dir, ReadOnly: true})
	require.NoError(t, err)
	month, err := ro.Month(2026, time.November)
	require.NoError(t, err)
	names := map[string]string{"a": "津市", "b": "四日市市"}
	built := report.Build(month, report.Options{Incidents: m.List(incident.Filter{}),
		TenantName: func(id string) string { return names[id] }, Now: func() time.Time { return now }})

	var buf bytes.Buffer
	require.NoError(t, report.WriteCSV(&buf, built))
	c := csvTable(t, buf.Bytes())
	for k, want := range map[string]string{
		"summary||detections|total":            "1003",
		"summary||detections|level1":           "1001",
		"summary||detections|level2":           "1",
		"summary||detections|level3":           "1",
		"summary|a|detections|total":           "1002",
		"summary|b|detections|level2":          "1",
		"summary||incidents|total":             "1",
		"summary|a|incidents|level1":           "1",
		"daily||2026-11-03|level1":             "1000",
		"daily||2026-11-01|level2":             "1",
		"daily||2026-11-30|level3":             "1",
		"daily||2026-11-02|total":              "0",
		"signature||crs-942100|rank":           "1",
		"signature||crs-942100|count":          "1001",
		"signature||crs-942100|name":           "SQL injection",
		"site|a|www.a.example|requests":        "1010",
		"site|a|www.a.example|cache_hits":      "10",
		"site|a|www.a.example|attacks_blocked": "1000",
		"breakout|a|m365|requests":             "10",
		"breakout|a|m365|bytes":                "10000",
		"mail|a|inbound|messages":              "2",
		"mail|a|inbound|quarantined":           "1",
		"mail|a|outbound|messages":             "1",
		"quarantine|a|spam|count":              "1",
		"incident|a|" + id + "|count":          "1000",
		"incident|a|" + id + "|severity":       "1",
		"incident|a|" + id + "|state":          "resolved",
	} {
		assert.Equal(t, want, c[k], k)
	}
	_, hasDec := c["daily||2026-12-01|total"]
	assert.False(t, hasDec, "a December day in the November report")
	var contacts, responses int
	for k := range c {
		if strings.HasPrefix(k, "contact|a|"+id+"|") {
			contacts++
		}
		if strings.HasPrefix(k, "response|a|"+id+"|") {
			responses++
		}
	}
	assert.Equal(t, 2, contacts, "notify + ack")
	assert.Equal(t, 1, responses, "resolved")

	// One tenant only.
	one := report.Build(month, report.Options{Tenant: "b", Incidents: m.List(incident.Filter{})})
	buf.Reset()
	require.NoError(t, report.WriteCSV(&buf, one))
	c = csvTable(t, buf.Bytes())
	assert.Equal(t, "1", c["summary|b|detections|total"])
	assert.Equal(t, "0", c["summary|b|incidents|total"])
	for k := range c {
		assert.NotContains(t, k, "|a|", "tenant a in tenant b's report")
	}

	// HTML: parses, Japanese, the incident, charts and print CSS.
	buf.Reset()
	require.NoError(t, report.WriteHTML(&buf, built))
	page := buf.String()
	_, err = html.Parse(strings.NewReader(page))
	require.NoError(t, err)
	for _, want := range []string{`<html lang="ja">`, "月次報告書", "不正アクセス検知件数", "津市（a）", "四日市市（b）",
		id, "連絡履歴", "対応履歴", "受領確認", "対応完了", "<svg", "@media print", "crs-942100", "www.a.example", "<td>津市（a）</td>"} {
		assert.Contains(t, page, want)
	}
	require.NoError(t, r.Close())
}

func TestRollupSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	r, err := report.Open(report.Config{Dir: dir})
	require.NoError(t, err)
	batch := func(n int) []detect.Event {
		evs := make([]detect.Event, n)
		for i := range evs {
			evs[i] = wafBlock(nov.Add(time.Duration(i)*time.Minute), "a")
		}
		return evs
	}
	total := func(r *report.Rollup) int64 {
		m, err := r.Month(2026, 11)
		require.NoError(t, err)
		return report.Build(m, report.Options{}).Cloud.Detections
	}
	require.NoError(t, r.WriteEvents(ctx, batch(100)))
	require.NoError(t, r.Checkpoint())
	require.NoError(t, r.WriteEvents(ctx, batch(50)))
	// "kill -9": the Rollup is abandoned without Close; a torn frame is
	// left at the end of the log.
	f, err := os.OpenFile(filepath.Join(dir, "rollup.wal"), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{200, 0, 0, 0, 1, 2, 3})
	require.NoError(t, err)
	require.NoError(t, f.Close())

	r2, err := report.Open(report.Config{Dir: dir})
	require.NoError(t, err)
	assert.EqualValues(t, 150, total(r2))
	require.NoError(t, r2.WriteEvents(ctx, batch(7)))
	assert.EqualValues(t, 157, total(r2))

	// A checkpoint interrupted after the snapshots, before the new log:
	// the old log's rows are already in the snapshot and must not count
	// twice.
	old, err := os.ReadFile(filepath.Join(dir, "rollup.wal"))
	require.NoError(t, err)
	require.NoError(t, r2.Checkpoint())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rollup.wal"), old, 0o640))
	r3, err := report.Open(report.Config{Dir: dir})
	require.NoError(t, err)
	assert.EqualValues(t, 157, total(r3))
	require.NoError(t, r3.Close())
	r4, err := report.Open(report.Config{Dir: dir, ReadOnly: true})
	require.NoError(t, err)
	assert.EqualValues(t, 157, total(r4))
	assert.ErrorIs(t, r4.WriteEvents(ctx, batch(1)), report.ErrReadOnly)
}

func TestHostileFieldsBounded(t *testing.T) {
	r, err := report.Open(report.Config{Dir: t.TempDir()})
	require.NoError(t, err)
	defer r.Close()
	ev := wafBlock(nov, "a")
	ev.Verdict.Rule = strings.Repeat("\xff<script>", 1000)
	require.NoError(t, r.WriteEvents(context.Background(), []detect.Event{ev}))
	m, err := r.Month(2026, 11)
	require.NoError(t, err)
	rep := report.Build(m, report.Options{})
	require.Len(t, rep.Cloud.Top, 1)
	assert.LessOrEqual(t, len(rep.Cloud.Top[0].Rule), 200+2)
	var buf bytes.Buffer
	require.NoError(t, report.WriteHTML(&buf, rep))
	assert.NotContains(t, buf.String(), "<script>")
	assert.Equal(t, strconv.Itoa(1), strconv.FormatInt(rep.Cloud.Detections, 10))
}
