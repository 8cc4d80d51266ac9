package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

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
