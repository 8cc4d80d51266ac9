package judge_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/detect/judge"
	"github.com/jichitai/seccloud/detect/rules"
)

var t0 = time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)

func rule(t *testing.T, src string) *rules.Rule {
	t.Helper()
	rs, err := rules.Parse("t.yml", strings.NewReader(src))
	require.NoError(t, err)
	s, err := rules.Compile(rs)
	require.NoError(t, err)
	return s.Rules()[0]
}

func waf(action detect.Action, status int) detect.Event {
	return detect.Event{Time: t0, Module: "waf", Tenant: "a", Client: netip.MustParseAddrPort("203.0.113.9:5000"),
		DestDomain: "www.city.example.jp", URL: "https://www.city.example.jp/login.php?id=1'--",
		HTTP:    detect.HTTPInfo{Method: "GET", Status: status},
		Verdict: detect.Verdict{Action: action, Rule: "crs-942100"}}
}

func TestDefaultJudge(t *testing.T) {
	plain := rule(t, "id: w\ntitle: web attack\nlevel: critical\ndetection: {s: {event.module: waf}, condition: s}\n")
	success := rule(t, "id: m\nseccloud: {success: true}\ndetection: {s: {event.module: waf}, condition: s}\n")
	compromise := rule(t, "id: c\nseccloud: {compromise: true}\ndetection: {s: {event.module: waf}, condition: s}\n")
	when := rule(t, "id: s\ndetection: {s: {event.module: waf}, condition: s}\nseccloud:\n  success_when:\n    http.response.status_code: 200\n    destination.bytes|gte: 10000\n")
	vuln := judge.StaticVuln{"a": {"www.city.example.jp": true}, "b": {"www.city.example.jp": false}}
	big := waf(detect.ActionReport, 200)
	big.BytesOut = 50000

	cases := []struct {
		name   string
		rule   *rules.Rule
		vuln   judge.VulnLookup
		tenant string
		events []detect.Event
		want   detect.Severity
		says   string
	}{
		{"blocked", plain, vuln, "a", []detect.Event{waf(detect.ActionBlock, 403)}, 1, "stopped"},
		{"blocked even if vulnerable and success rule", success, vuln, "a", []detect.Event{waf(detect.ActionBlock, 403)}, 1, "All 1 deciding"},
		{"report-only reached, no inventory", plain, nil, "a", []detect.Event{waf(detect.ActionReport, 200)}, 2, "No vulnerability inventory"},
		{"reached, vulnerable", plain, vuln, "a", []detect.Event{waf(detect.ActionReport, 200)}, 3, "recorded as vulnerable"},
		{"reached, not vulnerable", plain, vuln, "b", []detect.Event{waf(detect.ActionReport, 200)}, 2, "not vulnerable"},
		{"reached, unknown host", plain, vuln, "c", []detect.Event{waf(detect.ActionReport, 200)}, 2, "unknown"},
		{"target does not exist", plain, vuln, "a", []detect.Event{waf(detect.ActionReport, 404)}, 0, "does not exist"},
		{"compromise rule, all blocked", compromise, nil, "a", []detect.Event{waf(detect.ActionBlock, 403)}, 3, "malware running on the terminal"},
		{"success rule reached", success, nil, "a", []detect.Event{waf(detect.ActionAllow, 200)}, 3, "evidence of success"},
		{"success_when matched", when, nil, "a", []detect.Event{big}, 3, "success_when"},
		{"success_when not matched", when, nil, "a", []detect.Event{waf(detect.ActionReport, 200)}, 2, "No success evidence"},
		{"mixed: one reached", plain, nil, "a", []detect.Event{waf(detect.ActionBlock, 403), waf(detect.ActionReport, 500)}, 2, "1 other event(s) were stopped"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &judge.Default{Vuln: tc.vuln}
			j := d.Judge(judge.Input{Rule: tc.rule, Tenant: tc.tenant, Events: tc.events, Count: len(tc.events)})
			assert.Equal(t, tc.want, j.Severity)
			var en, ja []string
			for _, e := range j.Evidence {
				en = append(en, e.EN)
				ja = append(ja, e.JA)
				assert.NotEmpty(t, e.JA)
			}
			assert.Contains(t, strings.Join(en, "\n"), tc.says)
			assert.Contains(t, strings.Join(ja, "\n"), fmt.Sprintf("危険度%d", tc.want))
		})
	}
}

func TestSignatureLevelNotCopied(t *testing.T) {
	r := rule(t, "id: w\nlevel: critical\ndetection: {s: {event.module: waf}, condition: s}\n")
	j := (&judge.Default{}).Judge(judge.Input{Rule: r, Events: []detect.Event{waf(detect.ActionBlock, 403)}})
	assert.Equal(t, detect.SeverityStopped, j.Severity)
	assert.Contains(t, j.Evidence[1].EN, "reference only")
}

// The shipped C&C correlation, end to end through the engine and the judge.
func TestCCCorrelationIsLevel3(t *testing.T) {
	set, err := intel.Build([]intel.Indicator{{Kind: intel.KindDomain, Value: "cc.example", Labels: []string{"c2"}}})
	require.NoError(t, err)
	def, err := rules.Default()
	require.NoError(t, err)
	var got []judge.Judgement
	var ids []string
	d := &judge.Default{}
	e := rules.New(rules.Config{Rules: def, Intel: intel.NewLive(set), Now: func() time.Time { return t0.Add(time.Hour) },
		Handler: rules.HandlerFunc(func(a *rules.Alert) {
			ids = append(ids, a.Rule.ID)
			got = append(got, d.Judge(judge.FromAlert(a)))
		})})
	cc := netip.MustParseAddr("198.51.100.66")
	for i, allowed := range []bool{true, false} {
		got, ids = nil, nil
		base := t0.Add(time.Duration(i) * 20 * time.Minute)
		dns := detect.Event{Time: base, Module: "dns", Tenant: "a", Client: netip.MustParseAddrPort("127.0.1.5:5353"), Terminal: "127.0.1.5",
			DNS: detect.DNSInfo{QName: "beacon.cc.example.", QType: "A", Resolved: []netip.Addr{cc}}, Verdict: detect.Verdict{Action: detect.ActionAllow}}
		e.Process(&dns)
		px := detect.Event{Time: base.Add(3 * time.Minute), Module: "proxy", Tenant: "a", Client: netip.MustParseAddrPort("127.0.1.5:40000"), Terminal: "127.0.1.5",
			URL: "http://198.51.100.66/gate.php", Dest: netip.AddrPortFrom(cc, 80), HTTP: detect.HTTPInfo{Method: "POST", Status: 200},
			Verdict: detect.Verdict{Action: detect.ActionAllow}}
		if !allowed {
			px.Verdict = detect.Verdict{Action: detect.ActionBlock, Rule: "proxy-destination"}
			px.HTTP.Status = 403
		}
		e.Process(&px)
		require.Equal(t, []string{"seccloud-dns-intel-query", "seccloud-cc-resolve-connect"}, ids)
		j := got[1]
		if allowed {
			assert.Equal(t, detect.SeveritySucceeded, j.Severity)
		} else {
			assert.Equal(t, detect.SeverityStopped, j.Severity)
		}
		var ja []string
		for _, ev := range j.Evidence {
			ja = append(ja, ev.JA)
		}
		all := strings.Join(ja, "\n")
		assert.Contains(t, all, "端末 127.0.1.5 が beacon.cc.example を名前解決 → 198.51.100.66")
		assert.Contains(t, all, "プロキシ経由で http://198.51.100.66/gate.php")
	}
}
