package console

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"
)

// Reports makes the monthly reports (the appliance wires detect/report).
type Reports interface {
	// Monthly writes the report of month ("2026-11") for tenant ("" =
	// the whole cloud, with a section per tenant) in format "html" or
	// "csv".
	Monthly(w io.Writer, month, tenant, format string) error
}

var monthRE = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])$`)

// report makes a monthly report within the scope: a tenant account gets
// its own tenant's report whatever it asks for no tenant, and 404 for
// another tenant's; only an operator gets the whole cloud's.
func (s *scope) report(month, tenantID, format string) ([]byte, string, error) {
	if !monthRE.MatchString(month) || (format != "html" && format != "csv") {
		return nil, "", s.deny("report.download", "report:"+month, fmt.Errorf("%w: month YYYY-MM and format html or csv", errBadRequest))
	}
	t, err := s.tenantFilter("report.download", tenantID)
	if err != nil {
		return nil, "", err
	}
	var buf bytes.Buffer
	if err := s.c.cfg.Reports.Monthly(&buf, month, t, format); err != nil {
		s.audit("report.download", "report:"+month, "failure", err.Error())
		return nil, "", err
	}
	who := t
	if who == "" {
		who = "cloud"
	}
	// Built only from the validated month, a tenant id from the directory
	// or "cloud", and the format: no path or header injection.
	name := fmt.Sprintf("report-%s-%s.%s", who, month, format)
	s.audit("report.download", "report:"+who+":"+month, "success", format)
	return buf.Bytes(), name, nil
}

var errBadRequest = errors.New("console: bad request")

func (c *Console) writeReport(w http.ResponseWriter, b []byte, name, format string) {
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	} else {
		// The report is html/template output with inline styles and SVG
		// charts, shown (and printable) in the browser.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		w.Header().Set("Content-Disposition", `inline; filename="`+name+`"`)
	}
	_, _ = w.Write(b)
}

func (c *Console) reportsPage(w http.ResponseWriter, r *http.Request, s *scope) {
	now := c.cfg.Now().In(c.cfg.Location)
	last := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, c.cfg.Location).AddDate(0, -1, 0)
	d := struct {
		Month, LastMonth string
		Tenants          any
	}{now.Format("2006-01"), last.Format("2006-01"), s.tenants()}
	c.render(w, http.StatusOK, "reports", c.newPage(r, s, "reports", "reports", d))
}

func (c *Console) reportDownload(w http.ResponseWriter, r *http.Request, s *scope) {
	q := r.URL.Query()
	format := q.Get("format")
	if format == "" {
		format = "html"
	}
	b, name, err := s.report(q.Get("month"), q.Get("tenant"), format)
	if err != nil {
		if errors.Is(err, errBadRequest) {
			c.pageError(w, r, s, http.StatusBadRequest, "failed")
			return
		}
		c.errorPage(w, r, s, err)
		return
	}
	c.writeReport(w, b, name, format)
}

func (c *Console) apiReport(w http.ResponseWriter, r *http.Request, s *scope) {
	q := r.URL.Query()
	format := q.Get("format")
	if format == "" {
		format = "html"
	}
	b, name, err := s.report(q.Get("month"), q.Get("tenant"), format)
	if err != nil {
		if errors.Is(err, errBadRequest) {
			apiError(w, http.StatusBadRequest, err.Error())
			return
		}
		c.apiScopeError(w, err)
		return
	}
	c.writeReport(w, b, name, format)
}
