package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// QuarantinedMail is a quarantined message as the console shows it: its
// envelope, decoded header fields and plain text. The mail's HTML is never
// rendered: Text is text, escaped like every other field.
type QuarantinedMail struct {
	ID          string       `json:"id"`
	Tenant      string       `json:"tenant"`
	Direction   string       `json:"direction"`
	Time        time.Time    `json:"time"`
	From        string       `json:"from"`
	To          []string     `json:"to"`
	HeaderFrom  string       `json:"header_from,omitempty"`
	Subject     string       `json:"subject,omitempty"`
	Size        int          `json:"size"`
	Reason      string       `json:"reason"` // virus, spam, attachment, ad, policy, sanitized
	Rule        string       `json:"rule,omitempty"`
	Detail      string       `json:"detail,omitempty"`
	Released    *time.Time   `json:"released,omitempty"`
	Headers     []MailHeader `json:"headers,omitempty"`
	Text        string       `json:"text,omitempty"`
	Attachments []string     `json:"attachments,omitempty"`
}

// MailHeader is one decoded header field.
type MailHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// QuarantineStore is the mail quarantine (the appliance wires
// mailrelay.Quarantine). Unknown ids are ErrNotFound.
type QuarantineStore interface {
	// List returns the items of tenant ("" = all), newest first, without
	// headers and text.
	List(tenant string) ([]QuarantinedMail, error)
	// Get returns one item with its headers, text and attachment names.
	Get(id string) (QuarantinedMail, error)
	// Release delivers the original to its recipients.
	Release(ctx context.Context, id string) error
	// Delete removes the item.
	Delete(id string) error
}

func (s *scope) quarantineList(requested string) ([]QuarantinedMail, error) {
	t, err := s.tenantFilter("quarantine.list", requested)
	if err != nil {
		return nil, err
	}
	list, err := s.c.cfg.Quarantine.List(t)
	if err != nil {
		return nil, err
	}
	out := list[:0]
	for _, m := range list {
		if s.covers(m.Tenant) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (s *scope) quarantineItem(action, id string) (QuarantinedMail, error) {
	m, err := s.c.cfg.Quarantine.Get(id)
	if err != nil || !s.covers(m.Tenant) {
		return QuarantinedMail{}, s.deny(action, "mail:"+id, fmt.Errorf("%w: quarantined mail %s", ErrNotFound, id))
	}
	return m, nil
}

// quarantineAct releases or deletes a message; the reason is required and
// audited.
func (s *scope) quarantineAct(ctx context.Context, action, id, reason string) error {
	if _, err := s.quarantineItem("quarantine."+action, id); err != nil {
		return err
	}
	if !s.canAct() {
		return s.deny("quarantine."+action, "mail:"+id, fmt.Errorf("%w: %s", ErrForbidden, s.sess.acct.Role))
	}
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > 1000 {
		return s.deny("quarantine."+action, "mail:"+id, fmt.Errorf("%w: a reason (1-1000 bytes) is required", errBadRequest))
	}
	var err error
	if action == "release" {
		err = s.c.cfg.Quarantine.Release(ctx, id)
	} else {
		err = s.c.cfg.Quarantine.Delete(id)
	}
	s.result("quarantine."+action, "mail:"+id, err, reason)
	return err
}

func (c *Console) quarantinePage(w http.ResponseWriter, r *http.Request, s *scope) {
	tn := r.URL.Query().Get("tenant")
	list, err := s.quarantineList(tn)
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	d := struct {
		Tenant  string
		List    []QuarantinedMail
		Tenants any
	}{tn, list, s.tenants()}
	c.render(w, http.StatusOK, "quarantine", c.newPage(r, s, "quarantine", "quarantine", d))
}

func (c *Console) quarantineItemPage(w http.ResponseWriter, r *http.Request, s *scope) {
	m, err := s.quarantineItem("quarantine.view", r.PathValue("id"))
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	s.audit("quarantine.view", "mail:"+m.ID, "success", "")
	p := c.newPage(r, s, "quarantine", "quarantine", struct {
		M      QuarantinedMail
		CanAct bool
	}{m, s.canAct()})
	if r.URL.Query().Get("done") == "release" {
		p.Flash = tr(p.Lang, "q.released")
	}
	c.render(w, http.StatusOK, "quarantine_item", p)
}

func (c *Console) quarantinePost(action string) scoped {
	return func(w http.ResponseWriter, r *http.Request, s *scope) {
		id := r.PathValue("id")
		err := s.quarantineAct(r.Context(), action, id, r.PostForm.Get("reason"))
		switch {
		case errors.Is(err, errBadRequest):
			c.pageError(w, r, s, http.StatusBadRequest, "q.reason.required")
			return
		case err != nil:
			c.errorPage(w, r, s, err)
			return
		case action == "release":
			http.Redirect(w, r, "/quarantine/"+url.PathEscape(id)+"?done=release", http.StatusSeeOther)
		default:
			http.Redirect(w, r, "/quarantine?done=delete", http.StatusSeeOther)
		}
	}
}

func (c *Console) apiQuarantine(w http.ResponseWriter, r *http.Request, s *scope) {
	list, err := s.quarantineList(r.URL.Query().Get("tenant"))
	if err != nil {
		c.apiScopeError(w, err)
		return
	}
	if list == nil {
		list = []QuarantinedMail{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (c *Console) apiQuarantineItem(w http.ResponseWriter, r *http.Request, s *scope) {
	m, err := s.quarantineItem("quarantine.view", r.PathValue("id"))
	if err != nil {
		c.apiScopeError(w, err)
		return
	}
	s.audit("quarantine.view", "mail:"+m.ID, "success", "api")
	writeJSON(w, http.StatusOK, m)
}

func (c *Console) apiQuarantineAct(action string) scoped {
	return func(w http.ResponseWriter, r *http.Request, s *scope) {
		var in struct {
			Reason string `json:"reason"`
		}
		if !readJSON(w, r, &in) {
			return
		}
		id := r.PathValue("id")
		if err := s.quarantineAct(r.Context(), action, id, in.Reason); err != nil {
			if errors.Is(err, errBadRequest) {
				apiError(w, http.StatusBadRequest, err.Error())
				return
			}
			c.apiScopeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"id": id, "done": action})
	}
}
