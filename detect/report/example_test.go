package report_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/report"
)

func Example() {
	dir, _ := os.MkdirTemp("", "rollups")
	defer os.RemoveAll(dir)
	r, err := report.Open(report.Config{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	day := time.Date(2026, 11, 3, 10, 0, 0, 0, report.JST)
	var evs []detect.Event
	for i := range 3 {
		evs = append(evs, detect.Event{Time: day.Add(time.Duration(i) * time.Minute), Module: "waf", Tenant: "tsu",
			Verdict: detect.Verdict{Action: detect.ActionBlock, Rule: "crs-942100", RuleName: "SQL injection"}})
	}
	_ = r.WriteEvents(context.Background(), evs)

	m, _ := r.Month(2026, time.November)
	rep := report.Build(m, report.Options{TenantName: func(id string) string { return "津市" }})
	fmt.Println(rep.Month, rep.Cloud.Detections, rep.Cloud.BySeverity)
	fmt.Println(rep.Cloud.Daily[2].Date.Format("2006-01-02"), rep.Cloud.Daily[2].Total())
	fmt.Println(rep.Cloud.Top[0].Rule, rep.Cloud.Top[0].Name, rep.Cloud.Top[0].Count)
	fmt.Println(rep.Tenants[0].Name, rep.Tenants[0].Detections)
	// Output:
	// 2026-11 3 [0 3 0 0]
	// 2026-11-03 3
	// crs-942100 SQL injection 3
	// 津市 3
}
