package console

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
)

// The JSON API (openapi.yaml) does what the pages do, behind the same
// sessions and the same scope. Log in with POST /api/v1/session; send the
// returned csrf value as X-CSRF-Token on every POST and DELETE.
func (c *Console) apiRoutes(m *http.ServeMux) {
	for _, ep := range c.apiEndpoints() {
		if ep.path == "/api/v1/reports/monthly" && c.cfg.Reports == nil ||
			strings.HasPrefix(ep.path, "/api/v1/quarantine") && c.cfg.Quarantine == nil ||
			strings.HasPrefix(ep.path, "/api/v1/requests") && c.cfg.Requests == nil ||
			ep.path == "/api/v1/sites" && !c.sitesOn() ||
			ep.path == "/api/v1/sites/purge" && c.cfg.Purger == nil {
			continue
		}
		m.HandleFunc(ep.method+" "+ep.path, ep.h)
	}
	m.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no such endpoint")
	})
}

type endpoint struct {
	method, path string
	h            http.HandlerFunc
}

// apiEndpoints lists the API; openapi.yaml documents exactly these
// (TestOpenAPIDocumentsEveryEndpoint).
func (c *Console) apiEndpoints() []endpoint {
	return []endpoint{
		{"POST", "/api/v1/session", c.apiLogin},
		{"DELETE", "/api/v1/session", c.api(c.apiLogout)},
		{"GET", "/api/v1/me", c.api(c.apiMe)},
		{"GET", "/api/v1/dashboard", c.api(c.apiDashboard)},
		{"GET", "/api/v1/incidents", c.api(c.apiIncidents)},
		{"GET", "/api/v1/incidents/{id}", c.api(c.apiIncident)},
		{"POST", "/api/v1/incidents/{id}/ack", c.api(c.apiAck)},
		{"POST", "/api/v1/incidents/{id}/records", c.api(c.apiRecord)},
		{"POST", "/api/v1/incidents/{id}/state", c.api(c.apiState)},
		{"GET", "/api/v1/events", c.api(c.apiEvents)},
		{"GET", "/api/v1/tenants", c.api(c.apiTenants)},
		{"GET", "/api/v1/tenants/{id}", c.api(c.apiTenant)},
		{"GET", "/api/v1/audit", c.api(c.apiAudit)},
		{"GET", "/api/v1/reports/monthly", c.api(c.apiReport)},
		{"GET", "/api/v1/quarantine", c.api(c.apiQuarantine)},
		{"GET", "/api/v1/quarantine/{id}", c.api(c.apiQuarantineItem)},
		{"POST", "/api/v1/quarantine/{id}/release", c.api(c.apiQuarantineAct("release"))},
		{"POST", "/api/v1/quarantine/{id}/delete", c.api(c.apiQuarantineAct("delete"))},
		{"GET", "/api/v1/requests", c.api(c.apiRequests)},
		{"POST", "/api/v1/requests", c.api(c.apiRequestCreate)},
		{"GET", "/api/v1/requests/{id}", c.api(c.apiRequest)},
		{"POST", "/api/v1/requests/{id}/comments", c.api(c.apiRequestComment)},
		{"POST", "/api/v1/requests/{id}/attachments", c.api(c.apiRequestAttach)},
		{"GET", "/api/v1/requests/{id}/files/{n}", c.api(c.apiRequestFile)},
		{"GET", "/api/v1/sites", c.api(c.apiSites)},
		{"POST", "/api/v1/sites/purge", c.api(c.apiPurge)},
	}
}

type apiErr struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func apiError(w http.ResponseWriter, code int, msg string) { writeJSON(w, code, apiErr{msg}) }

func (c *Console) apiScopeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, incident.ErrNotFound):
		apiError(w, http.StatusNotFound, "not found")
	case errors.Is(err, ErrForbidden):
		apiError(w, http.StatusForbidden, "not allowed for this role")
	case errors.Is(err, incident.ErrTransition):
		apiError(w, http.StatusConflict, err.Error())
	default:
		apiError(w, http.StatusBadRequest, err.Error())
	}
}

// api wraps an API handler: 401 without a session; for POST and DELETE,
// 403 without the session's X-CSRF-Token (audited).
func (c *Console) api(h scoped) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := c.sessionOf(r)
		if sess == nil {
			c.audit(r, nil, "api", r.Method+" "+r.URL.Path, "denied", "no session")
			apiError(w, http.StatusUnauthorized, "log in first: POST /api/v1/session")
			return
		}
		s := &scope{c: c, sess: sess, r: r}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !sameToken(r.Header.Get("X-CSRF-Token"), sess.csrf) {
				s.audit("csrf", r.Method+" "+r.URL.Path, "denied", "missing or wrong X-CSRF-Token")
				apiError(w, http.StatusForbidden, "missing or wrong X-CSRF-Token")
				return
			}
		}
		h(w, r, s)
	}
}

// readJSON decodes a small JSON body strictly.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		apiError(w, http.StatusUnsupportedMediaType, "want Content-Type: application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFormBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		apiError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

// Me is the logged-in account.
type Me struct {
	User   string `json:"user"`
	Role   Role   `json:"role"`
	Tenant string `json:"tenant,omitempty"`
	CSRF   string `json:"csrf"`
}

func (c *Console) apiLogin(w http.ResponseWriter, r *http.Request) {
	var in struct {
		User     string `json:"user"`
		Password string `json:"password"`
		Code     string `json:"code"`
	}
	// Requiring application/json is the login's CSRF defence: a
	// cross-site form cannot send it without a CORS preflight, which
	// the console never grants.
	if !readJSON(w, r, &in) {
		return
	}
	acct, reason := c.login(r, in.User, in.Password, in.Code)
	switch reason {
	case "":
	case "locked", "throttled":
		apiError(w, http.StatusTooManyRequests, tr("en", "login."+reason))
		return
	default:
		apiError(w, http.StatusUnauthorized, tr("en", "login.bad"))
		return
	}
	s := c.newSession(acct)
	c.audit(r, s, "login", acct.User, "success", "api")
	c.setCookie(w, r, cookieSession, s.id, 0)
	writeJSON(w, http.StatusOK, Me{User: acct.User, Role: acct.Role, Tenant: acct.Tenant, CSRF: s.csrf})
}

func (c *Console) apiLogout(w http.ResponseWriter, r *http.Request, s *scope) {
	c.endSession(s.sess.key)
	s.audit("logout", s.user(), "success", "api")
	c.setCookie(w, r, cookieSession, "", -1)
	w.WriteHeader(http.StatusNoContent)
}

func (c *Console) apiMe(w http.ResponseWriter, r *http.Request, s *scope) {
	a := s.sess.acct
	writeJSON(w, http.StatusOK, Me{User: a.User, Role: a.Role, Tenant: a.Tenant, CSRF: s.sess.csrf})
}

func (c *Console) apiDashboard(w http.ResponseWriter, r *http.Request, s *scope) {
	d, err := c.dashboard(r, s)
	if err != nil {
		c.apiScopeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (c *Console) apiIncidents(w http.ResponseWriter, r *http.Request, s *scope) {
	list, err := s.queryIncidents(readIncidentQuery(r))
	if err != nil {
		c.apiScopeError(w, err)
		return
	}
	if list == nil {
		list = []incident.Incident{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (c *Console) apiIncident(w http.ResponseWriter, r *http.Request, s *scope) {
	inc, err := s.incident("incident.view", r.PathValue("id"))
	if err != nil {
		c.apiScopeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, inc)
}

func (c *Console) afterAction(w http.ResponseWriter, s *scope, id string, err error) {
	if err != nil {
		c.apiScopeError(w, err)
		return
	}
	inc, err := s.incident("incident.view", id)
	if err != nil {
		c.apiScopeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, inc)
}

func (c *Console) apiAck(w http.ResponseWriter, r *http.Request, s *scope) {
	var in struct {
		Note string `json:"note"`
	}
	if r.ContentLength != 0 && !readJSON(w, r, &in) {
		return
	}
	id := r.PathValue("id")
	c.afterAction(w, s, id, s.ack(id, in.Note))
}

func (c *Console) apiRecord(w http.ResponseWriter, r *http.Request, s *scope) {
	var in struct {
		Kind string `json:"kind"`
		Text string `json:"text"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	in.Text = strings.TrimSpace(in.Text)
	switch {
	case in.Kind != incident.KindNote && in.Kind != KindContact && in.Kind != KindResponse:
		apiError(w, http.StatusBadRequest, "kind: want note, contact or response")
		return
	case in.Text == "" || len(in.Text) > 4000:
		apiError(w, http.StatusBadRequest, "text: want 1-4000 bytes")
		return
	}
	id := r.PathValue("id")
	c.afterAction(w, s, id, s.record(id, in.Kind, in.Text))
}

func (c *Console) apiState(w http.ResponseWriter, r *http.Request, s *scope) {
	var in struct {
		State incident.State `json:"state"`
		Note  string         `json:"note"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	id := r.PathValue("id")
	c.afterAction(w, s, id, s.setState(id, in.State, in.Note))
}

// EventsResult is the answer of GET /api/v1/events: the newest Limit
// matching events, oldest first, as ECS objects.
type EventsResult struct {
	Matched int               `json:"matched"`
	Limit   int               `json:"limit"`
	Events  []json.RawMessage `json:"events"`
}

func (c *Console) apiEvents(w http.ResponseWriter, r *http.Request, s *scope) {
	eq, err := c.readEventQuery(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	list, n, err := s.events(r.Context(), eq)
	if err != nil {
		c.apiScopeError(w, err)
		return
	}
	res := EventsResult{Matched: n, Limit: eq.Limit, Events: make([]json.RawMessage, 0, len(list))}
	for i := range list {
		res.Events = append(res.Events, detect.AppendECS(nil, &list[i]))
	}
	writeJSON(w, http.StatusOK, res)
}

func (c *Console) apiTenants(w http.ResponseWriter, r *http.Request, s *scope) {
	list := s.tenants()
	out := make([]any, 0, len(list))
	for _, t := range list {
		out = append(out, t)
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) apiTenant(w http.ResponseWriter, r *http.Request, s *scope) {
	t, err := s.tenant(r.PathValue("id"))
	if err != nil {
		c.apiScopeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// apiAudit is the audit log, operators only; ?limit=N keeps the newest N
// (default 200).
func (c *Console) apiAudit(w http.ResponseWriter, r *http.Request, s *scope) {
	if !s.operator() {
		c.apiScopeError(w, s.deny("audit.view", "audit", ErrForbidden))
		return
	}
	list, err := c.cfg.Audit.Entries(nil)
	if err != nil {
		apiError(w, http.StatusInternalServerError, "audit log unreadable")
		return
	}
	limit := 200
	if n, err := parsePositive(r.URL.Query().Get("limit")); err == nil {
		limit = n
	}
	if len(list) > limit {
		list = list[len(list)-limit:]
	}
	if list == nil {
		list = []AuditEntry{}
	}
	writeJSON(w, http.StatusOK, list)
}
