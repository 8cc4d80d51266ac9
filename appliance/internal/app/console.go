package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jichitai/seccloud/detect/incident"
)

// handler serves the console listener:
//
//	GET  /healthz    liveness: 200 while the process serves
//	GET  /readyz     readiness: 200 when every enabled component is up, else 503
//	GET  /metrics    Prometheus metrics
//	POST /-/reload   re-read the config file (loopback clients only)
//	GET  /api/incidents        incidents as JSON, in the order they opened (loopback clients only);
//	                           ?active=1 leaves out resolved and false positives
//	GET|POST <notify.ack_url path>  acknowledgement links of notifications (default /ack)
func (a *App) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	mux.HandleFunc("POST /-/reload", a.reloadAPI)
	mux.HandleFunc("GET /api/incidents", a.incidentsAPI)
	mux.Handle(a.events.det.ackPath, a.events.det.notifier.Handler())
	return mux
}

// readiness lists every component with its status.
func (a *App) readiness() (lines []string, ready bool) {
	ready = true
	add := func(name, status string, ok bool) {
		lines = append(lines, name+" "+status)
		ready = ready && ok
	}
	if a.serving.Load() {
		add("console", "up", true)
	} else {
		add("console", "stopping", false)
	}
	if s := a.live.Load(); s != nil {
		add("tenants", fmt.Sprintf("up (%d)", len(s.Tenants())), true)
	} else {
		add("tenants", "no directory", false)
	}
	st, ok := a.events.ready()
	add("events", st, ok)
	st, ok = a.events.det.ready()
	add("incidents", st, ok)
	for _, f := range a.funcs {
		st, ok := f.status()
		add("function/"+f.name, st, ok)
	}
	return lines, ready
}

func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	lines, ready := a.readiness()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, strings.Join(lines, "\n"))
}

// reloadAPI is POST /-/reload. It answers with a ReloadResult as JSON:
// 200 when the new config is in force, 422 when it was refused (the running
// config stays), 409 when running the embedded demo, 403 for a client that
// is not on a loopback address.
func (a *App) reloadAPI(w http.ResponseWriter, r *http.Request) {
	if !fromLoopback(r) {
		http.Error(w, "reload is allowed from loopback addresses only", http.StatusForbidden)
		return
	}
	res, err := a.Reload("api")
	code := http.StatusOK
	switch {
	case err == ErrNoConfigFile:
		code = http.StatusConflict
	case err != nil:
		code = http.StatusUnprocessableEntity
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(res)
}

func fromLoopback(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// incidentsAPI is GET /api/incidents: the incidents (detect/incident's
// JSON form, timeline included) as a JSON array in the order they
// opened; 403 for a
// client that is not on a loopback address.
func (a *App) incidentsAPI(w http.ResponseWriter, r *http.Request) {
	if !fromLoopback(r) {
		http.Error(w, "the incident API is allowed from loopback addresses only", http.StatusForbidden)
		return
	}
	list := a.events.det.incidents.List(incident.Filter{Active: r.URL.Query().Get("active") == "1"})
	if list == nil {
		list = []incident.Incident{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}
