package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
)

type templates struct {
	pages map[string]*template.Template
}

func parseTemplates() (*templates, error) {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	t := &templates{pages: map[string]*template.Template{}}
	for _, n := range names {
		if n == "templates/layout.html" {
			continue
		}
		tp, err := template.ParseFS(assets, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		t.pages[name] = tp
	}
	return t, nil
}

// page is what every template gets: the page-specific data in D.
type page struct {
	Lang, Title, Nav, Path, CSRF, Flash, Error string
	User                                       *Account
	Operator, Reports, Quarantine              bool
	Requests, Sites                            bool
	D                                          any

	loc   *time.Location
	tname func(string) string
}

func (p *page) T(key string) string           { return tr(p.Lang, key) }
func (p *page) Sev(s detect.Severity) string  { return severityLabel(p.Lang, s) }
func (p *page) State(s incident.State) string { return stateLabel(p.Lang, s) }
func (p *page) Reason(r string) string        { return reasonLabel(p.Lang, r) }
func (p *page) Kind(k string) string          { return kindLabel(p.Lang, k) }
func (p *page) Status(s RequestStatus) string { return tr(p.Lang, "status."+string(s)) }
func (p *page) RKind(k RequestKind) string    { return tr(p.Lang, "kind."+string(k)) }
func (p *page) Bytes(n int64) string          { return humanBytes(n) }
func (p *page) Ratio(d SiteDay) string {
	if d.Requests == 0 {
		return "–"
	}
	return strconv.FormatFloat(100*d.CacheHitRatio(), 'f', 1, 64) + "%"
}
func (p *page) RoleLabel() string { return p.T("role." + string(p.User.Role)) }
func (p *page) Time(t any) string {
	var tm time.Time
	switch v := t.(type) {
	case time.Time:
		tm = v
	case *time.Time:
		if v != nil {
			tm = *v
		}
	}
	if tm.IsZero() {
		return ""
	}
	return tm.In(p.loc).Format("2006-01-02 15:04:05")
}
func (p *page) Addr(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
func (p *page) TName(id string) string {
	if p.tname == nil {
		return id
	}
	return p.tname(id)
}

func (c *Console) newPage(r *http.Request, s *scope, title, nav string, d any) *page {
	l := lang(r)
	p := &page{Lang: l, Title: tr(l, title), Nav: nav, Path: r.URL.RequestURI(), D: d, loc: c.cfg.Location,
		Reports: c.cfg.Reports != nil, Quarantine: c.cfg.Quarantine != nil, Requests: c.cfg.Requests != nil, Sites: c.sitesOn()}
	if s != nil {
		acct := s.sess.acct
		p.User, p.CSRF, p.Operator = &acct, s.sess.csrf, s.operator()
		p.tname = func(id string) string { return s.tenantName(id, l == "en") }
	}
	return p
}

func (c *Console) render(w http.ResponseWriter, code int, name string, p *page) {
	var buf bytes.Buffer
	if err := c.tmpl.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		c.log.Error("template failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// scoped is a page or API handler that runs inside an authorised scope.
type scoped func(w http.ResponseWriter, r *http.Request, s *scope)

// page wraps a page handler: no session → the login page; a POST without
// the session's CSRF token → 403 and an audit entry.
func (c *Console) page(h scoped) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := c.sessionOf(r)
		if sess == nil {
			if r.Method != http.MethodGet {
				c.audit(r, nil, "request", r.URL.Path, "denied", "no session")
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		s := &scope{c: c, sess: sess, r: r}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				s.audit("request", r.URL.Path, "denied", "form refused: "+err.Error())
				c.pageError(w, r, s, http.StatusRequestEntityTooLarge, "failed")
				return
			}
			if !sameToken(r.PostForm.Get("csrf"), sess.csrf) {
				s.audit("csrf", r.URL.Path, "denied", "missing or wrong CSRF token")
				c.pageError(w, r, s, http.StatusForbidden, "csrf")
				return
			}
		}
		h(w, r, s)
	}
}

func (c *Console) pageError(w http.ResponseWriter, r *http.Request, s *scope, code int, key string) {
	p := c.newPage(r, s, key, "", nil)
	c.render(w, code, "error", p)
}

// errorPage maps a scope error to its page.
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, s *scope, err error) {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, incident.ErrNotFound):
		c.pageError(w, r, s, http.StatusNotFound, "not.found")
	case errors.Is(err, ErrForbidden):
		c.pageError(w, r, s, http.StatusForbidden, "forbidden")
	default:
		p := c.newPage(r, s, "failed", "", nil)
		p.Error = err.Error()
		c.render(w, http.StatusConflict, "error", p)
	}
}

func (c *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
	})
	m.HandleFunc("GET /lang", c.langSwitch)
	m.HandleFunc("GET /login", c.loginPage)
	m.HandleFunc("POST /login", c.loginPost)
	m.HandleFunc("POST /logout", c.page(c.logout))
	m.HandleFunc("GET /dashboard", c.page(c.dashboardPage))
	m.HandleFunc("GET /incidents", c.page(c.incidentsPage))
	m.HandleFunc("GET /incidents/{id}", c.page(c.incidentPage))
	m.HandleFunc("POST /incidents/{id}/ack", c.page(c.ackPost))
	m.HandleFunc("POST /incidents/{id}/records", c.page(c.recordPost))
	m.HandleFunc("POST /incidents/{id}/state", c.page(c.statePost))
	m.HandleFunc("GET /events", c.page(c.eventsPage))
	m.HandleFunc("GET /tenants", c.page(c.tenantsPage))
	m.HandleFunc("GET /tenants/{id}", c.page(c.tenantPage))
	if c.cfg.Quarantine != nil {
		m.HandleFunc("GET /quarantine", c.page(c.quarantinePage))
		m.HandleFunc("GET /quarantine/{id}", c.page(c.quarantineItemPage))
		m.HandleFunc("POST /quarantine/{id}/release", c.page(c.quarantinePost("release")))
		m.HandleFunc("POST /quarantine/{id}/delete", c.page(c.quarantinePost("delete")))
	}
	if c.cfg.Requests != nil {
		m.HandleFunc("GET /requests", c.page(c.requestsPage))
		m.HandleFunc("POST /requests", c.uploadPage(c.requestCreatePost))
		m.HandleFunc("GET /requests/{id}", c.page(c.requestPage))
		m.HandleFunc("POST /requests/{id}/comments", c.uploadPage(c.requestCommentPost))
		m.HandleFunc("GET /requests/{id}/files/{n}", c.page(c.requestFile))
	}
	if c.sitesOn() {
		m.HandleFunc("GET /sites", c.page(c.sitesPage))
	}
	if c.cfg.Purger != nil {
		m.HandleFunc("POST /sites/purge", c.page(c.purgePost))
	}
	if c.cfg.Reports != nil {
		m.HandleFunc("GET /reports", c.page(c.reportsPage))
		m.HandleFunc("GET /reports/monthly", c.page(c.reportDownload))
	}
	c.apiRoutes(m)
	c.mux = m
}

// localPath keeps only same-site paths ("/x", never "//host" or "/\host").
// Control characters are refused anywhere: browsers drop tabs and
// newlines from URLs, so "/\t/evil.example" would become "//evil.example".
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") ||
		strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return "/dashboard"
	}
	return p
}

func (c *Console) langSwitch(w http.ResponseWriter, r *http.Request) {
	to := "ja"
	if r.URL.Query().Get("to") == "en" {
		to = "en"
	}
	c.setCookie(w, r, cookieLang, to, 365*24*3600)
	http.Redirect(w, r, localPath(r.URL.Query().Get("back")), http.StatusSeeOther)
}

type loginData struct{ Next, User string }

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.showLogin(w, r, http.StatusOK, "", "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, code int, user, errKey string) {
	tok := randomToken()
	c.setCookie(w, r, cookieLogin, tok, 3600)
	p := c.newPage(r, nil, "login", "", loginData{Next: localPath(r.FormValue("next")), User: user})
	p.CSRF = tok
	if errKey != "" {
		p.Error = tr(p.Lang, errKey)
	}
	c.render(w, code, "login", p)
}

func (c *Console) loginPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	ck, err := r.Cookie(cookieLogin)
	if err != nil || !sameToken(r.PostForm.Get("csrf"), ck.Value) {
		c.audit(r, nil, "login", r.PostForm.Get("user"), "denied", "missing or wrong CSRF token")
		c.showLogin(w, r, http.StatusForbidden, r.PostForm.Get("user"), "login.csrf")
		return
	}
	acct, reason := c.login(r, r.PostForm.Get("user"), r.PostForm.Get("password"), r.PostForm.Get("code"))
	if reason != "" {
		code := http.StatusUnauthorized
		if reason == "locked" || reason == "throttled" {
			code = http.StatusTooManyRequests
		}
		c.showLogin(w, r, code, r.PostForm.Get("user"), "login."+reason)
		return
	}
	s := c.newSession(acct)
	c.audit(r, s, "login", acct.User, "success", "")
	c.setCookie(w, r, cookieSession, s.id, 0)
	c.setCookie(w, r, cookieLogin, "", -1)
	http.Redirect(w, r, localPath(r.PostForm.Get("next")), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *scope) {
	c.endSession(s.sess.key)
	s.audit("logout", s.user(), "success", "")
	c.setCookie(w, r, cookieSession, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (c *Console) dashboardPage(w http.ResponseWriter, r *http.Request, s *scope) {
	d, err := c.dashboard(r, s)
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	c.render(w, http.StatusOK, "dashboard", c.newPage(r, s, "dashboard", "dashboard", d))
}

var allStates = []incident.State{incident.StateOpen, incident.StateNotified, incident.StateAcknowledged, incident.StateResolved, incident.StateFalsePositive}
var allSevs = []detect.Severity{0, 1, 2, 3}

// incidentQuery reads the incident filters of a page or API request.
type incidentQuery struct {
	Tenant string
	State  string
	MinSev detect.Severity
	Active bool
}

func readIncidentQuery(r *http.Request) incidentQuery {
	q := r.URL.Query()
	iq := incidentQuery{Tenant: q.Get("tenant"), State: q.Get("state"), Active: q.Get("active") == "1" || q.Get("active") == "true"}
	if n, err := strconv.Atoi(q.Get("severity")); err == nil && n >= 0 && n <= 3 {
		iq.MinSev = detect.Severity(n)
	}
	return iq
}

func (s *scope) queryIncidents(iq incidentQuery) ([]incident.Incident, error) {
	list, err := s.incidents(incident.Filter{Tenant: iq.Tenant, MinSeverity: iq.MinSev, Active: iq.Active})
	if err != nil {
		return nil, err
	}
	if iq.State != "" {
		out := list[:0]
		for _, inc := range list {
			if string(inc.State) == iq.State {
				out = append(out, inc)
			}
		}
		list = out
	}
	// Newest first for people.
	for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
		list[i], list[j] = list[j], list[i]
	}
	return list, nil
}

func (c *Console) incidentsPage(w http.ResponseWriter, r *http.Request, s *scope) {
	iq := readIncidentQuery(r)
	list, err := s.queryIncidents(iq)
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	d := struct {
		incidentQuery
		List    []incident.Incident
		Tenants any
		States  []incident.State
		Sevs    []detect.Severity
	}{iq, list, s.tenants(), allStates, allSevs}
	c.render(w, http.StatusOK, "incidents", c.newPage(r, s, "incidents", "incidents", d))
}

// nextStates are the states an operator may move an incident to.
func nextStates(st incident.State) []incident.State {
	switch st {
	case incident.StateOpen:
		return []incident.State{incident.StateNotified, incident.StateAcknowledged, incident.StateResolved, incident.StateFalsePositive}
	case incident.StateNotified:
		return []incident.State{incident.StateAcknowledged, incident.StateResolved, incident.StateFalsePositive}
	case incident.StateAcknowledged:
		return []incident.State{incident.StateResolved, incident.StateFalsePositive}
	}
	return nil
}

func (c *Console) incidentPage(w http.ResponseWriter, r *http.Request, s *scope) {
	inc, err := s.incident("incident.view", r.PathValue("id"))
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	d := struct {
		Inc    incident.Incident
		CanAct bool
		Next   []incident.State
	}{inc, s.canAct(), nextStates(inc.State)}
	p := c.newPage(r, s, "incidents", "incidents", d)
	p.Title = tr(p.Lang, "incidents") + " " + inc.ID
	switch r.URL.Query().Get("done") {
	case "ack":
		p.Flash = tr(p.Lang, "ack.done")
	case "1":
		p.Flash = tr(p.Lang, "save")
	}
	c.render(w, http.StatusOK, "incident", p)
}

func (c *Console) ackPost(w http.ResponseWriter, r *http.Request, s *scope) {
	id := r.PathValue("id")
	if err := s.ack(id, r.PostForm.Get("note")); err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/incidents/"+url.PathEscape(id)+"?done=ack", http.StatusSeeOther)
}

func (c *Console) recordPost(w http.ResponseWriter, r *http.Request, s *scope) {
	id := r.PathValue("id")
	kind := r.PostForm.Get("kind")
	if kind != KindContact && kind != KindResponse {
		kind = incident.KindNote
	}
	text := strings.TrimSpace(r.PostForm.Get("text"))
	if text == "" || len(text) > 4000 {
		c.pageError(w, r, s, http.StatusBadRequest, "failed")
		return
	}
	if err := s.record(id, kind, text); err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/incidents/"+url.PathEscape(id)+"?done=1", http.StatusSeeOther)
}

func (c *Console) statePost(w http.ResponseWriter, r *http.Request, s *scope) {
	id := r.PathValue("id")
	if err := s.setState(id, incident.State(r.PostForm.Get("state")), strings.TrimSpace(r.PostForm.Get("note"))); err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/incidents/"+url.PathEscape(id)+"?done=1", http.StatusSeeOther)
}

var eventModules = []string{"proxy", "dns", "mail", "waf", "detect", "appliance"}

func eventVerdicts() []string {
	var out []string
	for a := detect.ActionNone; a <= detect.ActionTempFail; a++ {
		out = append(out, a.String())
	}
	return out
}

// readEventQuery reads an events search; times are datetime-local values
// (in the console's zone), RFC 3339, or dates. The default range is the
// last 24 hours.
func (c *Console) readEventQuery(r *http.Request) (eventQuery, error) {
	q := r.URL.Query()
	eq := eventQuery{Terminal: strings.TrimSpace(q.Get("terminal")), Verdict: q.Get("verdict"), Limit: c.cfg.EventLimit}
	eq.Tenant, eq.Module = q.Get("tenant"), q.Get("module")
	now := c.cfg.Now()
	var err error
	if eq.Since, err = c.parseTime(q.Get("since"), now.Add(-24*time.Hour)); err != nil {
		return eq, fmt.Errorf("since: %w", err)
	}
	if eq.Until, err = c.parseTime(q.Get("until"), time.Time{}); err != nil {
		return eq, fmt.Errorf("until: %w", err)
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 && n < eq.Limit {
		eq.Limit = n
	}
	return eq, nil
}

func (c *Console) parseTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, c.cfg.Location); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad time %q", s)
}

func (c *Console) eventsPage(w http.ResponseWriter, r *http.Request, s *scope) {
	eq, err := c.readEventQuery(r)
	if err != nil {
		p := c.newPage(r, s, "events", "events", nil)
		p.Error = err.Error()
		c.render(w, http.StatusBadRequest, "error", p)
		return
	}
	list, n, err := s.events(r.Context(), eq)
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	local := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.In(c.cfg.Location).Format("2006-01-02T15:04")
	}
	d := struct {
		Q              eventQuery
		Since, Until   string
		List           []detect.Event
		Matched, Limit int
		NoStore        bool
		Tenants        any
		Modules        []string
		Verdicts       []string
	}{eq, local(eq.Since), local(eq.Until), list, n, eq.Limit, c.cfg.Events == nil, s.tenants(), eventModules, eventVerdicts()}
	c.render(w, http.StatusOK, "events", c.newPage(r, s, "events", "events", d))
}

func (c *Console) tenantsPage(w http.ResponseWriter, r *http.Request, s *scope) {
	if !s.operator() {
		http.Redirect(w, r, "/tenants/"+url.PathEscape(s.ownTenant()), http.StatusSeeOther)
		return
	}
	c.render(w, http.StatusOK, "tenants", c.newPage(r, s, "tenants", "tenants", struct{ Tenants any }{s.tenants()}))
}

func (c *Console) tenantPage(w http.ResponseWriter, r *http.Request, s *scope) {
	t, err := s.tenant(r.PathValue("id"))
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	p := c.newPage(r, s, "tenants", "tenants", struct{ Tenant any }{t})
	p.Title = tr(p.Lang, "tenants") + " — " + s.tenantName(t.ID, p.Lang == "en")
	c.render(w, http.StatusOK, "tenant", p)
}

func parsePositive(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err == nil && n <= 0 {
		err = errors.New("not positive")
	}
	return n, err
}

func (c *Console) sitesOn() bool { return c.cfg.SiteTraffic != nil || c.cfg.Purger != nil }

// humanBytes shows a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTP"[exp]) + "iB"
}
