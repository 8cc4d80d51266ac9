package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/report"
)

// seccloud report monthly reads the rollups of the data directory and
// writes the month's report as CSV or HTML.
func TestReportMonthlyCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`version: 1
data_dir: data
listen: {console: "127.0.0.1:0"}
tenants:
  - {id: aoba, name: あおば市, networks: [127.0.1.0/24], egress_addr: 127.0.0.1}
`), 0o600))
	r, err := report.Open(report.Config{Dir: filepath.Join(dir, "data", "rollups")})
	require.NoError(t, err)
	day := time.Date(2026, 11, 3, 10, 0, 0, 0, report.JST)
	var evs []detect.Event
	for i := range 7 {
		evs = append(evs, detect.Event{Time: day.Add(time.Duration(i) * time.Minute), Module: "waf", Tenant: "aoba",
			Verdict: detect.Verdict{Action: detect.ActionBlock, Rule: "crs-942100"}})
	}
	require.NoError(t, r.WriteEvents(context.Background(), evs))
	require.NoError(t, r.Close())

	var out, errb bytes.Buffer
	csvPath := filepath.Join(dir, "r.csv")
	require.Equal(t, exitOK, Main([]string{"report", "monthly", "2026-11", "-tenant", "aoba", "-format", "csv", "-o", csvPath, "-config", cfg}, &out, &errb), errb.String())
	b, err := os.ReadFile(csvPath)
	require.NoError(t, err)
	assert.Contains(t, string(b), "summary,aoba,detections,total,7\n")
	assert.Contains(t, string(b), "daily,aoba,2026-11-03,level1,7\n")

	out.Reset()
	require.Equal(t, exitOK, Main([]string{"report", "monthly", "--config", cfg, "2026-11"}, &out, &errb), errb.String())
	assert.Contains(t, out.String(), "月次報告書")
	assert.Contains(t, out.String(), "あおば市（aoba）")

	assert.Equal(t, exitUsage, Main([]string{"report", "monthly", "-config", cfg}, &out, &errb))
	assert.Equal(t, exitUsage, Main([]string{"report", "monthly", "2026-11", "-format", "pdf", "-config", cfg}, &out, &errb))
	errb.Reset()
	assert.Equal(t, exitFailure, Main([]string{"report", "monthly", "11/2026", "-config", cfg}, &out, &errb))
	assert.True(t, strings.Contains(errb.String(), "YYYY-MM"), errb.String())
}
