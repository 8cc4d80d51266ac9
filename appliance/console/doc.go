// Package console is the web console of the seccloud appliance: the portal
// where SOC operators and municipal staff (接続団体の担当者) log in, see
// incidents, acknowledge them, record contacts and responses, search
// events and read their tenant's settings. Pages are server-rendered
// html/template (auto-escaping), Japanese first with an English switch,
// with one embedded stylesheet and no JavaScript. A JSON API
// (openapi.yaml) does everything the pages do, behind the same sessions.
//
// Accounts (Accounts) have one of three roles: an operator sees and acts
// on every tenant; a tenant admin acts on its own tenant; a tenant viewer
// only reads its own tenant. Passwords are argon2id hashes (DefaultArgon2),
// TOTP (RFC 6238) is an optional second factor, repeated wrong passwords
// lock an account (ratelimit.Keyed), and every login, refusal and action
// is appended durably to the audit log (Audit).
//
// Tenant isolation is enforced in one place: every handler receives a
// scope built from its session and reaches incidents, events and tenants
// only through it; another tenant's id answers 404 exactly like an id that
// does not exist, and is audited.
//
// Tenants file inquiries and settings-change requests (Requests) with
// file attachments and a comment thread; each update is mailed to the
// other side (Mailer, SMTPMailer). Each tenant's public sites show their
// daily traffic (SiteTraffic) and a cache purge button (Purger); the
// dashboard counts from rollups (Counter) when given. Sessions survive a
// restart with Config.SessionsPath; failed logins lock the account and,
// separately, the client address.
//
//	accts, _ := console.OpenAccounts(console.AccountsConfig{Path: "/var/lib/seccloud/console/accounts.json"})
//	audit, _ := console.OpenAudit("/var/lib/seccloud/console/audit.jsonl")
//	c, err := console.New(console.Config{Accounts: accts, Audit: audit,
//		Incidents: incidentManager, Tenants: tenantLive, Events: eventStore})
//	http.ListenAndServe("127.0.0.1:9090", c.Handler())
package console
