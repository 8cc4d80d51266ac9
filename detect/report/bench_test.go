package report_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/report"
)

// fillEvents fills evs with events done.. of n spread over November 2026
// with the cardinality of the specification's cloud: 33 tenants, four
// modules, 300 signatures, 76 sites, 20 SaaS apps, 5 quarantine reasons.
func fillEvents(rng *rand.Rand, evs []detect.Event, n, done int) {
	span := int64(30 * 24 * time.Hour)
	for i := range evs {
		ev := &evs[i]
		*ev = detect.Event{}
		ev.Time = nov.Add(time.Duration(span * int64(done+i) / int64(n)))
		ev.Tenant = tenants[rng.IntN(len(tenants))]
		switch x := rng.IntN(100); {
		case x < 50:
			ev.Module, ev.BytesOut = "proxy", int64(rng.IntN(50000))
			if x < 10 {
				ev.Labels = saasLabels[rng.IntN(len(saasLabels))]
			}
			if x < 2 {
				ev.Verdict = detect.Verdict{Action: detect.ActionBlock, Rule: sigs[rng.IntN(100)]}
			}
		case x < 85:
			ev.Module = "dns"
			if x < 52 {
				ev.Verdict = detect.Verdict{Action: detect.ActionSinkhole, Rule: sigs[100+rng.IntN(50)]}
			}
		case x < 95:
			ev.Module, ev.BytesOut = "waf", int64(rng.IntN(20000))
			ev.Labels = siteLabels[rng.IntN(len(siteLabels))]
			if x < 88 {
				ev.Verdict = detect.Verdict{Action: detect.ActionBlock, Rule: sigs[150+rng.IntN(150)], RuleName: "attack"}
			}
		default:
			ev.Module, ev.Dataset = "mail", "mail.message"
			ev.Email.Direction = "inbound"
			if x == 99 {
				ev.Email.Direction = "outbound"
			}
			if x == 98 {
				ev.Verdict = detect.Verdict{Action: detect.ActionQuarantine, Rule: reasons[rng.IntN(len(reasons))]}
			}
		}
	}
}

var (
	tenants    = make([]string, 33)
	sigs       = make([]string, 300)
	siteLabels = make([][]detect.Label, 76)
	saasLabels = make([][]detect.Label, 20)
	reasons    = []string{"spam", "virus", "phishing", "dmarc-reject", "ad-mail"}
)

func init() {
	for i := range tenants {
		tenants[i] = fmt.Sprintf("t%02d", i)
	}
	for i := range sigs {
		sigs[i] = "sig-" + strconv.Itoa(900000+i)
	}
	for i := range siteLabels {
		siteLabels[i] = []detect.Label{{Key: "site", Value: fmt.Sprintf("www%d.example.lg.jp", i)}, {Key: "cache", Value: "hit"}}
	}
	for i := range saasLabels {
		saasLabels[i] = []detect.Label{{Key: "saas", Value: fmt.Sprintf("app%d", i)}}
	}
}

var (
	bigOnce sync.Once
	bigDir  string
	bigErr  error
)

// bigRollup builds, once per process, the rollups of a month of
// SECCLOUD_REPORT_EVENTS events (default 60,000,000) in a temporary
// directory, counting every event through the same classification as
// ingest.
func bigRollup(b *testing.B) string {
	bigOnce.Do(func() {
		n := 60_000_000
		if s := os.Getenv("SECCLOUD_REPORT_EVENTS"); s != "" {
			n, bigErr = strconv.Atoi(s)
			if bigErr != nil {
				return
			}
		}
		bigDir, bigErr = os.MkdirTemp("", "rollup-bench")
		if bigErr != nil {
			return
		}
		r, err := report.Open(report.Config{Dir: bigDir})
		if err != nil {
			bigErr = err
			return
		}
		rng := rand.New(rand.NewPCG(1, 2))
		batch := make([]detect.Event, 8192)
		start := time.Now()
		for done := 0; done < n; done += len(batch) {
			k := min(len(batch), n-done)
			fillEvents(rng, batch[:k], n, done)
			r.Add(batch[:k]...)
		}
		bigErr = r.Close()
		fi, _ := os.Stat(bigDir + "/202611.rollup")
		var size int64
		if fi != nil {
			size = fi.Size()
		}
		fmt.Fprintf(os.Stderr, "rollups of %d events built in %v; November snapshot %d bytes\n", n, time.Since(start).Round(time.Millisecond), size)
	})
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	return bigDir
}

// BenchmarkMonthlyReport60M: one op = open the rollups read-only, read the
// month, build the whole-cloud report with a section per tenant and 300
// incidents, and write it as HTML and CSV.
func BenchmarkMonthlyReport60M(b *testing.B) {
	dir := bigRollup(b)
	var incs []incident.Incident
	for i := range 300 {
		t := nov.Add(time.Duration(i) * 2 * time.Hour)
		incs = append(incs, incident.Incident{ID: fmt.Sprintf("INC-20261101-%05d", i+1), Tenant: tenants[i%33],
			Rule: sigs[i], Severity: detect.Severity(i % 4), State: incident.StateResolved, Count: i + 1, First: t, Last: t.Add(time.Minute),
			Timeline: []incident.Entry{{Time: t, Kind: incident.KindOpened}, {Time: t.Add(time.Minute), Kind: incident.KindNotify, Channel: "email", To: "x@example.jp"},
				{Time: t.Add(2 * time.Minute), Kind: incident.KindAck, By: "contact"}, {Time: t.Add(time.Hour), Kind: incident.KindState, State: incident.StateResolved}}})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := report.Open(report.Config{Dir: dir, ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		m, err := r.Month(2026, time.November)
		if err != nil {
			b.Fatal(err)
		}
		rep := report.Build(m, report.Options{Incidents: incs})
		if rep.Cloud.Detections == 0 {
			b.Fatal("no detections")
		}
		if err := report.WriteHTML(io.Discard, rep); err != nil {
			b.Fatal(err)
		}
		if err := report.WriteCSV(io.Discard, rep); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRollupWrite: one op = one event counted through WriteEvents
// (batches of 1024: classification, one log write per batch).
func BenchmarkRollupWrite(b *testing.B) {
	r, err := report.Open(report.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	batch := make([]detect.Event, 1024)
	fillEvents(rng, batch, 1<<20, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		if err := r.WriteEvents(b.Context(), batch[:min(len(batch), b.N-i)]); err != nil {
			b.Fatal(err)
		}
	}
}
