package mailrelay

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Handler returns the quarantine's HTTP API (JSON), for the console:
//
//	GET    {prefix}?tenant=&reason=&since=RFC3339&limit=   list, newest first
//	GET    {prefix}/{id}                                   view: metadata, headers, text
//	GET    {prefix}/{id}/raw                               the original (message/rfc822)
//	POST   {prefix}/{id}/release                           deliver it; {"queue_id": ...}
//	DELETE {prefix}/{id}                                   delete it
//
// Scope, when non-nil, returns the tenant a request may see ("" = all
// tenants) or ok=false to refuse it (403); nil = every request sees
// everything (put the handler behind the console's authentication).
// Errors are JSON {"error": "..."} with 400, 403, 404 or 500.
func (q *Quarantine) Handler(prefix string, scope func(*http.Request) (tenant string, ok bool)) http.Handler {
	prefix = strings.TrimRight(prefix, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant := ""
		if scope != nil {
			t, ok := scope(r)
			if !ok {
				httpError(w, http.StatusForbidden, "forbidden")
				return
			}
			tenant = t
		}
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			httpError(w, http.StatusNotFound, "not found")
			return
		}
		rest = strings.Trim(rest, "/")
		if rest == "" {
			if r.Method != http.MethodGet {
				httpError(w, http.StatusMethodNotAllowed, "method not allowed")
				return
			}
			f := QuarantineFilter{Tenant: r.URL.Query().Get("tenant"), Reason: r.URL.Query().Get("reason")}
			if tenant != "" {
				if f.Tenant != "" && f.Tenant != tenant {
					httpError(w, http.StatusForbidden, "forbidden")
					return
				}
				f.Tenant = tenant
			}
			if s := r.URL.Query().Get("since"); s != "" {
				t, err := time.Parse(time.RFC3339, s)
				if err != nil {
					httpError(w, http.StatusBadRequest, "since: "+err.Error())
					return
				}
				f.Since = t
			}
			if s := r.URL.Query().Get("limit"); s != "" {
				n, err := strconv.Atoi(s)
				if err != nil || n < 0 {
					httpError(w, http.StatusBadRequest, "limit: not a number")
					return
				}
				f.Limit = n
			}
			writeJSON(w, http.StatusOK, map[string]any{"items": q.List(f)})
			return
		}
		id, action, _ := strings.Cut(rest, "/")
		if !validID(id) {
			httpError(w, http.StatusBadRequest, "bad id")
			return
		}
		it, data, err := q.Get(id)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				httpError(w, http.StatusNotFound, "not found")
			} else {
				httpError(w, http.StatusInternalServerError, err.Error())
			}
			return
		}
		if tenant != "" && it.Tenant != tenant {
			httpError(w, http.StatusNotFound, "not found")
			return
		}
		switch {
		case action == "" && r.Method == http.MethodGet:
			v, err := q.View(id)
			if err != nil {
				httpError(w, http.StatusInternalServerError, err.Error())
				return
			}
			writeJSON(w, http.StatusOK, v)
		case action == "" && r.Method == http.MethodDelete:
			if err := q.Delete(id); err != nil && !errors.Is(err, ErrNotFound) {
				httpError(w, http.StatusInternalServerError, err.Error())
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"deleted": id})
		case action == "raw" && r.Method == http.MethodGet:
			w.Header().Set("Content-Type", "message/rfc822")
			w.Header().Set("Content-Disposition", `attachment; filename="`+id+`.eml"`)
			w.Write(data)
		case action == "release" && r.Method == http.MethodPost:
			qid, err := q.Release(r.Context(), id)
			if err != nil {
				httpError(w, http.StatusInternalServerError, err.Error())
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"released": id, "queue_id": qid})
		default:
			httpError(w, http.StatusMethodNotAllowed, "method not allowed")
		}
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
