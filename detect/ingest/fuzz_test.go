package ingest_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/ingest"
)

// checkEvent: an accepted event is within the limits and all its text is
// UTF-8.
func checkEvent(t *testing.T, ev detect.Event, lim ingest.Limits) {
	t.Helper()
	if ev.Time.Before(now.Add(-lim.MaxPast)) || ev.Time.After(now.Add(lim.MaxFuture)) {
		t.Fatalf("time %v accepted", ev.Time)
	}
	strs := []string{ev.Message, ev.URL, ev.DestDomain, ev.Verdict.Rule, ev.Verdict.RuleName, ev.HTTP.UserAgent, ev.DNS.QName}
	for _, l := range ev.Labels {
		strs = append(strs, l.Key, l.Value)
	}
	for _, s := range strs {
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 accepted: %q", s)
		}
		if len(s) > lim.MaxField {
			t.Fatalf("field of %d bytes accepted", len(s))
		}
	}
}

var fuzzLimits = ingest.Limits{MaxField: 1024, MaxPast: 7 * 24 * time.Hour, MaxFuture: time.Hour}

func FuzzParseEVE(f *testing.F) {
	f.Add([]byte(eveAlert))
	f.Add([]byte(strings.Replace(eveAlert, `"alert"`, `"drop"`, 1)))
	f.Add([]byte(`{"timestamp":"2026-11-02T10:00:00+0900","event_type":"anomaly","anomaly":{"type":"decode","event":"ipv4.trunc_pkt"}}`))
	f.Add([]byte(`{"timestamp":"2026-11-02T10:00:00Z","event_type":"alert","alert":{},"dns":{"rrname":"x.example","rrtype":"A"}}`))
	f.Add([]byte(`{"timestamp":"2026-11-02T10:00:00Z","event_type":"fileinfo","fileinfo":{"filename":"a","sha256":"AB","size":-1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ingest.ParseEVE(b, now, fuzzLimits)
		if err == nil {
			checkEvent(t, ev, fuzzLimits)
		}
	})
}

func FuzzParseSyslog(f *testing.F) {
	f.Add([]byte(`<134>1 2026-11-02T09:59:58.5+09:00 fw1 fortigate - traffic [meta@32473 dev="fw1" note="a \"q\" \]"] srcip=198.51.100.7 action=deny policyid=17 msg="x y"`))
	f.Add([]byte("<14>1 - - - - - - \ufeffhello"))
	f.Add([]byte(`<4>Nov  2 09:30:00 gw kernel: DROP SRC=203.0.113.5 DST=127.0.1.9 SPT=1 DPT=445`))
	f.Add([]byte(`<13>2026-11-02T09:30:00+09:00 gw app[12]: action=allow`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ingest.ParseSyslog(b, now, ingest.SyslogOptions{Limits: fuzzLimits})
		if err == nil {
			checkEvent(t, ev, fuzzLimits)
		}
	})
}
