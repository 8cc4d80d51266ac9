// Package report makes the monthly reports of the security cloud
// (月次報告書): per JST month, for the whole cloud and per tenant, the
// detections (不正アクセス) per day and by level, the top signatures, the
// incidents with their contact and response history, and each tenant's
// breakout use, public-site traffic and mail volume — as HTML with inline
// SVG charts (print-ready) and as CSV.
//
// Reports are made from rollups maintained at ingest, never by scanning the
// events, so a month's report takes the same time however many events the
// month held:
//
//	r, err := report.Open(report.Config{Dir: "/var/lib/seccloud/rollups"})
//	sink, err := detect.NewAsync(detect.AsyncConfig{Writer: r}) // beside the store
//	...
//	m, err := r.Month(2026, time.November)
//	rep := report.Build(m, report.Options{Incidents: incidents.List(incident.Filter{})})
//	err = report.WriteHTML(w, rep) // or report.WriteCSV
package report
