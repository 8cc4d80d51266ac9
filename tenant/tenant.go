package tenant

import (
	"net/netip"
)

// MaxAccounts is the default cap on console accounts per tenant (the
// specification: usually one, up to about five per connecting body).
const MaxAccounts = 5

// Tenant is one connecting body (接続団体): a municipality or other
// organisation whose terminals, mail domains, zones and web sites go through
// the security cloud. A Tenant held by a [Snapshot] is immutable: never
// modify it after building the snapshot.
type Tenant struct {
	// ID is the short stable identifier used in events, logs and URLs
	// (organization.id): lower-case ASCII letters, digits, '-' and '_'.
	ID string `yaml:"id" json:"id"`
	// Name is the display name, usually Japanese (e.g. "津市").
	Name string `yaml:"name" json:"name"`
	// NameEN is the optional English display name.
	NameEN string `yaml:"name_en,omitempty" json:"name_en,omitempty"`
	// Networks are the source prefixes of the tenant's terminals and
	// servers, IPv4 and IPv6. They must not overlap another tenant's.
	Networks []netip.Prefix `yaml:"networks" json:"networks"`
	// MailDomains are the mail domains the tenant owns; the relay accepts
	// inbound mail only for these and relays outbound only from these.
	MailDomains []string `yaml:"mail_domains,omitempty" json:"mail_domains,omitempty"`
	// MailServers are host:port addresses where inbound mail for the
	// tenant's domains is delivered, in order of preference.
	MailServers []string `yaml:"mail_servers,omitempty" json:"mail_servers,omitempty"`
	// Zones are the DNS zones the tenant owns (tenant zones in dnsres).
	Zones []string `yaml:"zones,omitempty" json:"zones,omitempty"`
	// Sites are the public web sites behind the WAF/CDN.
	Sites []Site `yaml:"sites,omitempty" json:"sites,omitempty"`
	// EgressAddr is the fixed source address(es) towards the internet for
	// this tenant's proxied traffic. At least one is required unless the
	// policy switch EgressOptional is set.
	EgressAddr []netip.Addr `yaml:"egress_addr,omitempty" json:"egress_addr,omitempty"`
	// Bandwidth holds the tenant's ceilings; zero means no ceiling.
	Bandwidth Bandwidth `yaml:"bandwidth,omitempty" json:"bandwidth,omitempty"`
	// Contacts are the people and endpoints to reach, in escalation order.
	Contacts []Contact `yaml:"contacts,omitempty" json:"contacts,omitempty"`
	// Accounts are the tenant's console accounts (at most MaxAccounts
	// unless the directory is built with a larger cap).
	Accounts []Account `yaml:"accounts,omitempty" json:"accounts,omitempty"`
	// Policy holds the per-tenant policy switches.
	Policy Policy `yaml:"policy,omitempty" json:"policy,omitempty"`
}

// Bandwidth is a tenant's bandwidth ceiling in megabits per second for each
// direction. Zero means no ceiling in that direction.
type Bandwidth struct {
	// UpMbps caps traffic from the tenant towards the internet.
	UpMbps int `yaml:"up_mbps,omitempty" json:"up_mbps,omitempty"`
	// DownMbps caps traffic from the internet towards the tenant.
	DownMbps int `yaml:"down_mbps,omitempty" json:"down_mbps,omitempty"`
	// Weight is the tenant's share of the global capacity under
	// contention; 0 means 1.
	Weight int `yaml:"weight,omitempty" json:"weight,omitempty"`
}

// Site is a public web site of a tenant served through the WAF/CDN.
type Site struct {
	// Host is the site's host name, exact ("www.city.example.jp") or a
	// wildcard of one label ("*.city.example.jp").
	Host string `yaml:"host" json:"host"`
	// Origins are the origin servers as host:port or URLs, at least one.
	Origins []string `yaml:"origins" json:"origins"`
	// TLSCert and TLSKey are PEM file paths of the site's certificate.
	TLSCert string `yaml:"tls_cert,omitempty" json:"tls_cert,omitempty"`
	TLSKey  string `yaml:"tls_key,omitempty" json:"tls_key,omitempty"`
	// Disaster marks a disaster-information site (served from cache when
	// origins fail, given priority under load).
	Disaster bool `yaml:"disaster,omitempty" json:"disaster,omitempty"`
}

// Contact is someone (or something) to notify, tried in the order listed.
type Contact struct {
	Name    string `yaml:"name" json:"name"`
	Email   string `yaml:"email,omitempty" json:"email,omitempty"`
	Phone   string `yaml:"phone,omitempty" json:"phone,omitempty"`
	Webhook string `yaml:"webhook,omitempty" json:"webhook,omitempty"`
}

// Role is a console account's role within its tenant.
type Role string

// The tenant roles. Operators (SOC, prefecture) are not tenant accounts.
const (
	RoleAdmin  Role = "admin"
	RoleViewer Role = "viewer"
)

// Account is a console account belonging to a tenant.
type Account struct {
	// Name is the login name, unique across all tenants.
	Name string `yaml:"name" json:"name"`
	// Role is RoleAdmin or RoleViewer; empty means RoleViewer.
	Role Role `yaml:"role,omitempty" json:"role,omitempty"`
	// Email receives notifications for the account.
	Email string `yaml:"email,omitempty" json:"email,omitempty"`
}

// Policy holds per-tenant policy switches. The zero value is the default
// policy: every protection on and enforcing.
type Policy struct {
	// ReportOnly makes every function report what it would block instead
	// of blocking (for a safe roll-out).
	ReportOnly bool `yaml:"report_only,omitempty" json:"report_only,omitempty"`
	// NoTLSInspect turns TLS inspection off for the tenant.
	NoTLSInspect bool `yaml:"no_tls_inspect,omitempty" json:"no_tls_inspect,omitempty"`
	// AllowTenants lists tenant ids this tenant may reach directly
	// (exceptions to the ban on traffic between municipalities).
	AllowTenants []string `yaml:"allow_tenants,omitempty" json:"allow_tenants,omitempty"`
	// Breakout lists SaaS services sent over the local breakout line
	// (e.g. "m365", "google", "slack", "webex").
	Breakout []string `yaml:"breakout,omitempty" json:"breakout,omitempty"`
	// SpamLevel is the mail spam threshold level (0 = the cloud default).
	SpamLevel int `yaml:"spam_level,omitempty" json:"spam_level,omitempty"`
	// BlockCategories are URL categories blocked for the tenant in
	// addition to the cloud-wide list.
	BlockCategories []string `yaml:"block_categories,omitempty" json:"block_categories,omitempty"`
	// EgressOptional allows a tenant without a fixed egress address.
	EgressOptional bool `yaml:"egress_optional,omitempty" json:"egress_optional,omitempty"`
}

// AllowsTenant reports whether traffic from t to the tenant with id other is
// allowed as an exception to the ban on direct inter-municipality traffic.
func (t *Tenant) AllowsTenant(other string) bool {
	for _, id := range t.Policy.AllowTenants {
		if id == other {
			return true
		}
	}
	return false
}
