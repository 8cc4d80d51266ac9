package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/jichitai/seccloud/tenant"
)

// TenantRestriction limits a tenant's terminals to the municipality's own
// SaaS tenants: the proxy inserts the vendors' tenant-restriction headers
// into requests to the vendors' login hosts (which it therefore inspects).
// Empty fields insert nothing for that vendor.
type TenantRestriction struct {
	// MicrosoftTenants are the Entra ID (Microsoft 365) tenant domains or
	// ids users may sign in to (Restrict-Access-To-Tenants), and
	// MicrosoftContext the id of the tenant setting the restriction
	// (Restrict-Access-Context). Both are needed for Microsoft.
	MicrosoftTenants []string
	MicrosoftContext string
	// MicrosoftPolicy, when set, is the tenant restrictions v2 value
	// "<tenant id>:<policy id>" (sec-Restrict-Tenant-Access-Policy).
	MicrosoftPolicy string
	// GoogleDomains are the Google Workspace domains allowed
	// (X-GoogApps-Allowed-Domains).
	GoogleDomains []string
	// SlackWorkspaces are the Slack workspace or organisation ids allowed
	// (X-Slack-Allowed-Workspaces); SlackRequester is the id of the
	// workspace or organisation setting the restriction
	// (X-Slack-Allowed-Workspaces-Requester).
	SlackWorkspaces []string
	SlackRequester  string
	// WebexDomains are the e-mail domains of the Webex organisations
	// allowed (CiscoSpark-Allowed-Domains).
	WebexDomains []string
}

// Vendor login hosts on which the headers are inserted (patterns as in
// Rules: a domain covers its subdomains, "=" one host). From the vendors'
// documentation of tenant restrictions.
var (
	MicrosoftLoginHosts = []string{"=login.microsoftonline.com", "=login.microsoft.com", "=login.windows.net"}
	GoogleLoginHosts    = []string{"=accounts.google.com", "=www.google.com", "=mail.google.com", "=drive.google.com", "=docs.google.com"}
	SlackLoginHosts     = []string{"slack.com"}
	WebexLoginHosts     = []string{"=identity.webex.com", "=identity-eu.webex.com", "=idbroker.webex.com",
		"=idbroker-secondary.webex.com", "=idbroker-b-us.webex.com", "=idbroker-eu.webex.com", "=idbroker-au.webex.com",
		"=idbroker-ca.webex.com", "=atlas-a.wbx2.com"}
)

// restriction is one vendor's compiled headers.
type restriction struct {
	vendor string
	hosts  patterns
	set    [][2]string
}

func (r *restriction) apply(h http.Header) {
	for _, kv := range r.set {
		h[kv[0]] = []string{kv[1]}
	}
}

// compileRestrictions builds the per-tenant vendor restrictions.
func compileRestrictions(m map[string]TenantRestriction) (map[string][]*restriction, error) {
	out := make(map[string][]*restriction, len(m))
	for id, tr := range m {
		where := "Config.TenantRestrictions[" + id + "]"
		var list []*restriction
		add := func(vendor string, hosts []string, set [][2]string) error {
			r := &restriction{vendor: vendor, set: set}
			if err := r.hosts.add(hosts, where); err != nil {
				return err
			}
			list = append(list, r)
			return nil
		}
		for _, v := range append(append(append(append([]string{}, tr.MicrosoftTenants...), tr.GoogleDomains...), tr.SlackWorkspaces...), tr.WebexDomains...) {
			if v == "" || strings.ContainsAny(v, ", \r\n") {
				return nil, fmt.Errorf("proxy: %s: bad value %q", where, v)
			}
		}
		if len(tr.MicrosoftTenants) > 0 || tr.MicrosoftPolicy != "" {
			if len(tr.MicrosoftTenants) > 0 && tr.MicrosoftContext == "" {
				return nil, fmt.Errorf("proxy: %s: MicrosoftContext is required with MicrosoftTenants", where)
			}
			var set [][2]string
			if len(tr.MicrosoftTenants) > 0 {
				set = append(set, [2]string{"Restrict-Access-To-Tenants", strings.Join(tr.MicrosoftTenants, ",")},
					[2]string{"Restrict-Access-Context", tr.MicrosoftContext})
			}
			if tr.MicrosoftPolicy != "" {
				set = append(set, [2]string{"Sec-Restrict-Tenant-Access-Policy", tr.MicrosoftPolicy})
			}
			if err := add("microsoft", MicrosoftLoginHosts, set); err != nil {
				return nil, err
			}
		}
		if len(tr.GoogleDomains) > 0 {
			if err := add("google", GoogleLoginHosts, [][2]string{{"X-Googapps-Allowed-Domains", strings.Join(tr.GoogleDomains, ",")}}); err != nil {
				return nil, err
			}
		}
		if len(tr.SlackWorkspaces) > 0 {
			if tr.SlackRequester == "" {
				return nil, errors.New("proxy: " + where + ": SlackRequester is required with SlackWorkspaces")
			}
			if err := add("slack", SlackLoginHosts, [][2]string{{"X-Slack-Allowed-Workspaces", strings.Join(tr.SlackWorkspaces, ",")},
				{"X-Slack-Allowed-Workspaces-Requester", tr.SlackRequester}}); err != nil {
				return nil, err
			}
		}
		if len(tr.WebexDomains) > 0 {
			if err := add("webex", WebexLoginHosts, [][2]string{{"Ciscospark-Allowed-Domains", strings.Join(tr.WebexDomains, ",")}}); err != nil {
				return nil, err
			}
		}
		out[id] = list
	}
	return out, nil
}

// SetTenantRestrictions replaces Config.TenantRestrictions, e.g. after a
// configuration reload. It validates m as New does and, on error, keeps
// the restrictions in force. The new headers apply from the next request
// (also inside inspected connections already open); a tunnel to a login
// host that was spliced because no restriction named it stays spliced
// until it ends. Restrictions need Config.Inspect. It is safe for
// concurrent use.
func (s *Server) SetTenantRestrictions(m map[string]TenantRestriction) error {
	if len(m) > 0 && s.insp == nil {
		return errors.New("proxy: tenant restrictions need Config.Inspect (the login hosts must be inspected)")
	}
	compiled, err := compileRestrictions(m)
	if err != nil {
		return err
	}
	s.restrict.Store(&compiled)
	return nil
}

// restrictionFor returns the restriction of tenant t for host, or nil.
func (s *Server) restrictionFor(t *tenant.Tenant, host string) *restriction {
	list := (*s.restrict.Load())[t.ID]
	if len(list) == 0 {
		return nil
	}
	r := Request{Host: host}
	for _, rr := range list {
		if _, ok := rr.hosts.match(&r); ok {
			return rr
		}
	}
	return nil
}
