package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/store"
	"github.com/jichitai/seccloud/tenant"
)

// Errors of a scope. Another tenant's object is ErrNotFound, exactly like
// an object that does not exist, so ids of other tenants cannot be probed.
var (
	ErrNotFound  = errors.New("console: not found")
	ErrForbidden = errors.New("console: not allowed for this role")
)

// scope is the one place where tenant isolation and roles are enforced:
// every handler, page or API, gets a scope from its session and reaches
// incidents, events and tenants only through it. An operator's scope
// covers every tenant; a tenant account's scope covers its own tenant,
// and only an admin may act. Every refusal is audited.
type scope struct {
	c    *Console
	sess *session
	r    *http.Request
}

func (s *scope) user() string   { return s.sess.acct.User }
func (s *scope) operator() bool { return s.sess.acct.Role == RoleOperator }
func (s *scope) canAct() bool {
	return s.sess.acct.Role == RoleOperator || s.sess.acct.Role == RoleAdmin
}
func (s *scope) ownTenant() string { return s.sess.acct.Tenant }

// covers reports whether the scope includes tenant id.
func (s *scope) covers(id string) bool { return s.operator() || (id != "" && id == s.sess.acct.Tenant) }

func (s *scope) deny(action, target string, err error) error {
	s.c.audit(s.r, s.sess, action, target, "denied", err.Error())
	return err
}

// Audit records a successful or failed action in the scope's name.
func (s *scope) audit(action, target, outcome, detail string) {
	s.c.audit(s.r, s.sess, action, target, outcome, detail)
}

// tenantFilter turns a requested tenant ("" = all the scope covers) into
// the tenant to filter on; another tenant is ErrNotFound.
func (s *scope) tenantFilter(action, requested string) (string, error) {
	switch {
	case requested == "" && s.operator():
		return "", nil
	case requested == "":
		return s.ownTenant(), nil
	case s.covers(requested):
		return requested, nil
	}
	return "", s.deny(action, "tenant:"+requested, fmt.Errorf("%w: tenant %s", ErrNotFound, requested))
}

// incidents lists the incidents of f within the scope.
func (s *scope) incidents(f incident.Filter) ([]incident.Incident, error) {
	t, err := s.tenantFilter("incident.list", f.Tenant)
	if err != nil {
		return nil, err
	}
	f.Tenant = t
	list := s.c.cfg.Incidents.List(f)
	out := list[:0]
	for _, inc := range list { // belt and braces: never trust the filter alone
		if s.covers(inc.Tenant) {
			out = append(out, inc)
		}
	}
	return out, nil
}

// incident returns one incident within the scope.
func (s *scope) incident(action, id string) (incident.Incident, error) {
	inc, ok := s.c.cfg.Incidents.Get(id)
	if !ok || !s.covers(inc.Tenant) {
		return incident.Incident{}, s.deny(action, "incident:"+id, fmt.Errorf("%w: incident %s", ErrNotFound, id))
	}
	return inc, nil
}

// act checks that the scope may change incident id and returns it.
func (s *scope) act(action, id string) (incident.Incident, error) {
	inc, err := s.incident(action, id)
	if err != nil {
		return inc, err
	}
	if !s.canAct() {
		return inc, s.deny(action, "incident:"+id, fmt.Errorf("%w: %s", ErrForbidden, s.sess.acct.Role))
	}
	return inc, nil
}

// ack acknowledges incident id on behalf of the scope's user.
func (s *scope) ack(id, note string) error {
	if _, err := s.act("incident.ack", id); err != nil {
		return err
	}
	err := s.c.cfg.Incidents.Ack(id, s.user(), "console", "", note)
	s.result("incident.ack", "incident:"+id, err, note)
	return err
}

// record adds a note, contact record or response record.
func (s *scope) record(id, kind, text string) error {
	action := "incident." + kind
	if _, err := s.act(action, id); err != nil {
		return err
	}
	var err error
	switch kind {
	case incident.KindNote:
		err = s.c.cfg.Incidents.Note(id, s.user(), text)
	case KindContact, KindResponse:
		err = s.c.cfg.Incidents.Record(id, incident.Entry{Kind: kind, By: s.user(), Text: text})
	default:
		err = fmt.Errorf("console: unknown record kind %q", kind)
	}
	s.result(action, "incident:"+id, err, text)
	return err
}

// setState changes incident id's state.
func (s *scope) setState(id string, to incident.State, note string) error {
	if _, err := s.act("incident.state", id); err != nil {
		return err
	}
	err := s.c.cfg.Incidents.SetState(id, to, s.user(), note)
	s.result("incident.state", "incident:"+id, err, string(to)+" "+note)
	return err
}

func (s *scope) result(action, target string, err error, detail string) {
	if len(detail) > 200 {
		detail = detail[:200]
	}
	if err != nil {
		s.audit(action, target, "failure", err.Error())
		return
	}
	s.audit(action, target, "success", detail)
}

// eventQuery is an events search.
type eventQuery struct {
	store.Filter
	Terminal string
	Verdict  string // an action name, "" = any
	Limit    int
	// countOnly, when set, is called for every matching event and nothing
	// is kept (the dashboard's counts).
	countOnly func(*detect.Event)
}

// events returns the newest q.Limit events matching q within the scope,
// oldest first, and how many matched in all.
func (s *scope) events(ctx context.Context, q eventQuery) ([]detect.Event, int, error) {
	t, err := s.tenantFilter("event.search", q.Tenant)
	if err != nil {
		return nil, 0, err
	}
	q.Tenant = t
	if s.c.cfg.Events == nil {
		return nil, 0, nil
	}
	ring := make([]detect.Event, 0, q.Limit)
	n := 0
	err = s.c.cfg.Events.Query(ctx, q.Filter, func(e detect.Event) error {
		if !s.operator() && e.Tenant != s.ownTenant() {
			return nil
		}
		if q.Terminal != "" && e.Terminal != q.Terminal && !strings.HasPrefix(e.Client.String(), q.Terminal+":") {
			return nil
		}
		if q.Verdict != "" && e.Verdict.Action.String() != q.Verdict {
			return nil
		}
		if q.countOnly != nil {
			q.countOnly(&e)
			n++
			return nil
		}
		if len(ring) < q.Limit {
			ring = append(ring, e)
		} else {
			ring[n%q.Limit] = e
		}
		n++
		return nil
	})
	if q.countOnly == nil && n > q.Limit { // rotate the ring back into time order
		k := n % q.Limit
		ring = append(ring[k:], ring[:k]...)
	}
	return ring, n, err
}

// tenants returns the tenants in the scope, by id.
func (s *scope) tenants() []*tenant.Tenant {
	snap := s.c.cfg.Tenants.Load()
	if snap == nil {
		return nil
	}
	var out []*tenant.Tenant
	for _, t := range snap.Tenants() {
		if s.covers(t.ID) {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// tenant returns one tenant within the scope.
func (s *scope) tenant(id string) (*tenant.Tenant, error) {
	if snap := s.c.cfg.Tenants.Load(); snap != nil && s.covers(id) {
		if t, ok := snap.ByID(id); ok {
			return t, nil
		}
	}
	return nil, s.deny("tenant.view", "tenant:"+id, fmt.Errorf("%w: tenant %s", ErrNotFound, id))
}

// tenantName returns the display name of a tenant in the scope's
// language.
func (s *scope) tenantName(id string, en bool) string {
	if snap := s.c.cfg.Tenants.Load(); snap != nil {
		if t, ok := snap.ByID(id); ok {
			if en && t.NameEN != "" {
				return t.NameEN
			}
			return t.Name
		}
	}
	return id
}

// side is "operator" for operators and "tenant" for tenant accounts: who
// gets told about an update of a request.
func (s *scope) side() string {
	if s.operator() {
		return "operator"
	}
	return "tenant"
}

// requestsOn returns the request store or ErrNotFound when requests are
// off.
func (s *scope) requestsOn(action string) (*Requests, error) {
	if s.c.cfg.Requests == nil {
		return nil, s.deny(action, "requests", fmt.Errorf("%w: requests are off", ErrNotFound))
	}
	return s.c.cfg.Requests, nil
}

// requests lists the requests within the scope.
func (s *scope) requests(requested string) ([]Request, error) {
	rs, err := s.requestsOn("request.list")
	if err != nil {
		return nil, err
	}
	t, err := s.tenantFilter("request.list", requested)
	if err != nil {
		return nil, err
	}
	list := rs.List(t)
	out := list[:0]
	for _, r := range list {
		if s.covers(r.Tenant) {
			out = append(out, r)
		}
	}
	return out, nil
}

// request returns one request within the scope; another tenant's is
// ErrNotFound.
func (s *scope) request(action, id string) (Request, error) {
	rs, err := s.requestsOn(action)
	if err != nil {
		return Request{}, err
	}
	r, err := rs.Get(id)
	if err != nil || !s.covers(r.Tenant) {
		return Request{}, s.deny(action, "request:"+id, fmt.Errorf("%w: request %s", ErrNotFound, id))
	}
	return r, nil
}

// fileRequest files a request for tenantID ("" = the account's own
// tenant; an operator must name one) with its first files.
func (s *scope) fileRequest(tenantID string, n NewRequest, files []Upload) (Request, error) {
	rs, err := s.requestsOn("request.create")
	if err != nil {
		return Request{}, err
	}
	if tenantID == "" {
		tenantID = s.ownTenant()
	}
	if _, err := s.tenant(tenantID); err != nil {
		return Request{}, err
	}
	if !s.canAct() {
		return Request{}, s.deny("request.create", "tenant:"+tenantID, fmt.Errorf("%w: %s", ErrForbidden, s.sess.acct.Role))
	}
	n.Tenant, n.By, n.Side = tenantID, s.user(), s.side()
	r, err := rs.Create(n)
	if err != nil {
		s.audit("request.create", "tenant:"+tenantID, "failure", err.Error())
		return Request{}, err
	}
	s.audit("request.create", "request:"+r.ID, "success", string(r.Kind)+" "+clip(r.Subject))
	if len(files) > 0 {
		if r, err = s.updateRequest(r.ID, "", "", files, true); err != nil {
			return r, err
		}
		return r, nil
	}
	s.c.notifyRequest(s, r, "created")
	return r, nil
}

// updateRequest adds a comment, a status change (operators only) and
// files to a request within the scope.
func (s *scope) updateRequest(id, text string, status RequestStatus, files []Upload, created bool) (Request, error) {
	action := "request.comment"
	if _, err := s.request(action, id); err != nil {
		return Request{}, err
	}
	if !s.canAct() {
		return Request{}, s.deny(action, "request:"+id, fmt.Errorf("%w: %s", ErrForbidden, s.sess.acct.Role))
	}
	if status != "" && !s.operator() {
		return Request{}, s.deny("request.status", "request:"+id, fmt.Errorf("%w: only operators change the status", ErrForbidden))
	}
	r, err := s.c.cfg.Requests.Update(id, s.user(), s.side(), text, status, files, s.c.cfg.MaxUpload)
	if err != nil {
		outcome := "failure"
		if errors.Is(err, ErrBadFileName) || errors.Is(err, ErrTooLarge) {
			outcome = "denied"
		}
		s.audit(action, "request:"+id, outcome, err.Error())
		return Request{}, err
	}
	detail := clip(text)
	if status != "" {
		detail = "status " + string(status) + " " + detail
	}
	for _, f := range files {
		detail += fmt.Sprintf(" file %q", f.Name)
	}
	s.audit(action, "request:"+id, "success", detail)
	what := "updated"
	if created {
		what = "created"
	}
	s.c.notifyRequest(s, r, what)
	return r, nil
}

// attachment opens file n of request id within the scope.
func (s *scope) attachment(id, n string) (*os.File, Attachment, error) {
	if _, err := s.request("request.download", id); err != nil {
		return nil, Attachment{}, err
	}
	num, err := strconv.Atoi(n)
	var f *os.File
	var a Attachment
	if err == nil && num > 0 && strconv.Itoa(num) == n {
		f, a, err = s.c.cfg.Requests.Open(id, num)
	} else {
		err = ErrNotFound
	}
	if err != nil {
		return nil, Attachment{}, s.deny("request.download", "request:"+id+"/"+clip(n), fmt.Errorf("%w: attachment %q", ErrNotFound, n))
	}
	s.audit("request.download", "request:"+id+"/"+n, "success", a.Name)
	return f, a, nil
}

// siteTenants returns the tenants in the scope that have public sites,
// narrowed to requested ("" = all the scope covers).
func (s *scope) siteTenants(requested string) ([]*tenant.Tenant, error) {
	t, err := s.tenantFilter("site.view", requested)
	if err != nil {
		return nil, err
	}
	var out []*tenant.Tenant
	for _, tn := range s.tenants() {
		if (t == "" || tn.ID == t) && len(tn.Sites) > 0 {
			out = append(out, tn)
		}
	}
	return out, nil
}

// purge removes cached responses of one of the scope's sites: target is
// a URL ("https://host/path", or "host/path" for both schemes); with
// prefix every URL under it. The host must be a site of a tenant in the
// scope (a wildcard site covers one label), else ErrNotFound.
func (s *scope) purge(target string, prefix bool) (int, string, error) {
	key, host, err := purgeTarget(target, prefix)
	if err != nil {
		return 0, "", s.deny("site.purge", "url:"+clip(target), err)
	}
	snap := s.c.cfg.Tenants.Load()
	var owner string
	if snap != nil {
		if _, t, ok := snap.BySite(host); ok {
			owner = t.ID
		}
	}
	if owner == "" || !s.covers(owner) {
		return 0, "", s.deny("site.purge", "site:"+host, fmt.Errorf("%w: site %s", ErrNotFound, host))
	}
	if !s.canAct() {
		return 0, "", s.deny("site.purge", "site:"+host, fmt.Errorf("%w: %s", ErrForbidden, s.sess.acct.Role))
	}
	var n int
	if prefix {
		n, err = s.c.cfg.Purger.PurgePrefix(key)
	} else {
		n, err = s.c.cfg.Purger.Purge(key)
	}
	mode := "url"
	if prefix {
		mode = "prefix"
	}
	s.result("site.purge", "site:"+host, err, fmt.Sprintf("%s %s: %d removed", mode, key, n))
	return n, key, err
}

func clip(s string) string {
	if len(s) > 120 {
		s = s[:120]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}
