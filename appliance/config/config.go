// Package config reads and validates the seccloud appliance configuration:
// one YAML file (JSON is accepted, being YAML), versioned ("version: 1") and
// strict: an unknown key, a value of the wrong type or an invalid tenant is
// an error, and every error is reported at once with its file, line, column
// and key path.
//
// Usage:
//
//	cfg, err := config.Load("/etc/seccloud/config.yaml")
//	var errs config.Errors
//	if errors.As(err, &errs) {
//		for _, e := range errs {
//			fmt.Println(e) // config.yaml:12:9: tenants[1].networks[0]: ...
//		}
//	}
//	dir := cfg.Directory() // the validated *tenant.Snapshot
//
// The embedded demo configuration ([Demo]) works on a fresh machine and
// listens on 127.0.0.1 only.
package config

import (
	"net/netip"
	"path/filepath"
	"time"

	"github.com/jichitai/seccloud/tenant"
)

// Version is the only configuration format version this package reads.
const Version = 1

// Defaults applied by Parse to keys left out.
const (
	DefaultDataDir        = "./seccloud-data"
	DefaultHistoryKeep    = tenant.DefaultKeep
	DefaultStoreRetention = 5 * Year
	DefaultLogLevel       = "info"
	DefaultLogFormat      = "text"
	// DefaultEscalationDelay is notify.DefaultEscalateAfter.
	DefaultEscalationDelay = 4 * time.Minute
	DefaultBackupKeep      = 14
	DefaultBackupAt        = "03:00"
)

// Config is a parsed, validated configuration. Build it with Parse or Load;
// the zero value is not usable. A Config is read-only once built.
type Config struct {
	// Version must be 1.
	Version int `yaml:"version"`
	// DataDir holds the event store, the config history and the run file.
	// Relative paths resolve against the config file's directory (the
	// current directory for the embedded demo). Default ./seccloud-data.
	DataDir string `yaml:"data_dir"`
	// Log sets the appliance's own log output.
	Log Log `yaml:"log"`
	// Listen holds the listening addresses of the functions and console.
	Listen Listen `yaml:"listen"`
	// Functions switches the security functions on or off.
	Functions Functions `yaml:"functions"`
	// Tenants are the connecting bodies.
	Tenants []Tenant `yaml:"tenants"`
	// Intel names the threat-intelligence indicator files.
	Intel Intel `yaml:"intel"`
	// Proxy configures the forward web proxy.
	Proxy Proxy `yaml:"proxy"`
	// DNS configures the resolver.
	DNS DNS `yaml:"dns"`
	// Mail configures the mail relay.
	Mail Mail `yaml:"mail"`
	// Detect configures rules and incidents.
	Detect Detect `yaml:"detect"`
	// Notify configures urgent notifications.
	Notify Notify `yaml:"notify"`
	// History configures the config generations kept on disk.
	History History `yaml:"history"`
	// Store configures the embedded event store.
	Store Store `yaml:"store"`
	// Backup configures the daily backup of the data directory.
	Backup Backup `yaml:"backup"`
	// Cluster makes this appliance one node of several sharing one event
	// stream (NATS JetStream) and one detection node.
	Cluster Cluster `yaml:"cluster"`
	// WAF configures the sites' WAF / CDN (waf.go).
	WAF WAF `yaml:"waf"`
	// MemoryLimitMB is the Go runtime's soft memory limit of the process:
	// > 0 that many MiB; 0 (default) three quarters of the memory the
	// process may use (the machine's, or its cgroup's when lower); < 0
	// none. The GOMEMLIMIT environment variable wins when set.
	MemoryLimitMB int64 `yaml:"memory_limit_mb"`

	file string           // the file name errors refer to
	raw  []byte           // the bytes parsed
	dir  *tenant.Snapshot // built from Tenants
}

// Log configures the appliance's log (slog).
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
}

// Listen holds host:port listening addresses. An empty address leaves the
// function's listener closed.
type Listen struct {
	Proxy    string `yaml:"proxy"`
	DNS      string `yaml:"dns"`
	SMTP     string `yaml:"smtp"`
	WAFHTTP  string `yaml:"waf_http"`
	WAFHTTPS string `yaml:"waf_https"`
	// Console serves /healthz, /readyz, /metrics and the reload API.
	// Required.
	Console string `yaml:"console"`
}

// Functions switches the security functions. A nil switch means on.
type Functions struct {
	Proxy *bool `yaml:"proxy"`
	DNS   *bool `yaml:"dns"`
	Mail  *bool `yaml:"mail"`
	WAF   *bool `yaml:"waf"`
}

// FunctionNames lists the security functions in start order.
var FunctionNames = []string{"proxy", "dns", "mail", "waf"}

// Enabled reports whether the named function ("proxy", "dns", "mail",
// "waf") is switched on; unknown names are off.
func (f Functions) Enabled(name string) bool {
	var p *bool
	switch name {
	case "proxy":
		p = f.Proxy
	case "dns":
		p = f.DNS
	case "mail":
		p = f.Mail
	case "waf":
		p = f.WAF
	default:
		return false
	}
	return p == nil || *p
}

// Tenant is one connecting body as written in the config file. It maps onto
// tenant.Tenant (see ToTenant); the sub-structures are tenant's own types.
type Tenant struct {
	ID          string         `yaml:"id"`
	Name        string         `yaml:"name"`
	NameEN      string         `yaml:"name_en"`
	Networks    []netip.Prefix `yaml:"networks"`
	MailDomains []string       `yaml:"mail_domains"`
	MailServers []string       `yaml:"mail_servers"`
	Zones       []string       `yaml:"zones"`
	Sites       []tenant.Site  `yaml:"sites"`
	// EgressAddr is one address or a list of addresses.
	EgressAddr []netip.Addr `yaml:"egress_addr"`
	// BandwidthMbps is a number (both directions) or {up, down, weight}.
	BandwidthMbps Bandwidth        `yaml:"bandwidth_mbps"`
	Contacts      []tenant.Contact `yaml:"contacts"`
	Accounts      []tenant.Account `yaml:"accounts"`
	Policy        tenant.Policy    `yaml:"policy"`
}

// ToTenant returns the tenant.Tenant the entry describes.
func (t *Tenant) ToTenant() tenant.Tenant {
	return tenant.Tenant{
		ID: t.ID, Name: t.Name, NameEN: t.NameEN,
		Networks: t.Networks, MailDomains: t.MailDomains, MailServers: t.MailServers,
		Zones: t.Zones, Sites: t.Sites, EgressAddr: t.EgressAddr,
		Bandwidth: tenant.Bandwidth{UpMbps: t.BandwidthMbps.Up, DownMbps: t.BandwidthMbps.Down, Weight: t.BandwidthMbps.Weight},
		Contacts:  t.Contacts, Accounts: t.Accounts, Policy: t.Policy,
	}
}

// Bandwidth is a tenant's ceiling in Mbit/s. In YAML it is either a number,
// meaning the same ceiling in both directions ("bandwidth_mbps: 100"), or a
// mapping ("bandwidth_mbps: {up: 50, down: 200, weight: 2}"). Zero means no
// ceiling.
type Bandwidth struct {
	// Up caps tenant → internet, Down internet → tenant.
	Up   int `yaml:"up"`
	Down int `yaml:"down"`
	// Weight is the share under contention; 0 means 1.
	Weight int `yaml:"weight"`
}

// decodeScalar implements the number form.
func (b *Bandwidth) decodeScalar(s string) error {
	var n int
	if err := decodeInt(s, &n); err != nil {
		return err
	}
	b.Up, b.Down = n, n
	return nil
}

// Intel names indicator files, one indicator a line ('#' starts a comment).
type Intel struct {
	// Domains are files of malicious domain names.
	Domains []string `yaml:"domains"`
	// Addrs are files of malicious addresses or prefixes.
	Addrs []string `yaml:"addrs"`
	// URLs are files of malicious URLs (exact, or a path prefix ending in
	// '/').
	URLs []string `yaml:"urls"`
	// Hashes are files of malicious file hashes (SHA-256, SHA-1, MD5).
	Hashes []string `yaml:"hashes"`
	// STIX are STIX 2.1 bundle files; their indicator types become labels
	// (e.g. "c2", which the default C&C rules look for).
	STIX []string `yaml:"stix"`
}

// Detect configures the detection pipeline: rules and incidents.
type Detect struct {
	// RulesDir is a directory of rule files (*.yml, *.yaml); empty means
	// the default rules embedded in seccloud (detect/rules).
	RulesDir string `yaml:"rules_dir"`
	// IncidentDir holds the incident journal. Default DataDir/incidents.
	IncidentDir string `yaml:"incident_dir"`
	// Assets is a CSV asset inventory (tenant, host, vendor, product,
	// version; detect/vuln) and VulnFeed an NVD-style CVE JSON feed; with
	// both, the judge raises a reached attack on a vulnerable host to level
	// 3. Empty = no vulnerability lookup. Read at start.
	Assets   string `yaml:"assets"`
	VulnFeed string `yaml:"vuln_feed"`
	// Ingest receives external events (detect/ingest). Empty = off.
	Ingest Ingest `yaml:"ingest"`
	// Lateness is how far behind the newest event an event may arrive and
	// still take part in correlations (rules.Config.Lateness); zero means
	// the engine's default (2m). Restart to change.
	Lateness Duration `yaml:"lateness"`
}

// Ingest configures the external event inputs (Suricata EVE JSON, firewall
// syslog). Every address is empty (off) by default.
type Ingest struct {
	// SyslogUDP and SyslogTCP are host:port listeners for RFC 5424 / RFC
	// 3164 syslog (TCP: octet-counted or newline framing).
	SyslogUDP string `yaml:"syslog_udp"`
	SyslogTCP string `yaml:"syslog_tcp"`
	// EVEFile is a Suricata eve.json followed like tail -F; EVESocket a
	// unix socket path listened on for Suricata's unix_stream output.
	EVEFile   string `yaml:"eve_file"`
	EVESocket string `yaml:"eve_socket"`
}

// DNS configures the resolver.
type DNS struct {
	// Upstreams are host:port forwarders; empty means full recursion.
	Upstreams []string `yaml:"upstreams"`
	// RootHints are the root servers ("ip" or "ip:port") recursion starts
	// from when Upstreams is empty; empty means no recursion (the
	// appliance never uses a built-in root list).
	RootHints []string `yaml:"root_hints"`
	// FetchesPerZone caps the queries outstanding at once for one zone
	// (recursion) or one registered domain (forwarding): random-subdomain
	// flood defence; 0 means 200, negative means no limit.
	FetchesPerZone int `yaml:"fetches_per_zone"`
	// FetchesPerServer caps the queries outstanding at once to one
	// authoritative server (recursion only): a server that stops
	// answering cannot tie up the resolver; 0 means 1,000, negative
	// means no limit.
	FetchesPerServer int `yaml:"fetches_per_server"`
	// SinkholeA and SinkholeAAAA answer names on the intel list or an RPZ
	// (a warning page); unset means 0.0.0.0 and ::.
	SinkholeA    netip.Addr `yaml:"sinkhole_a"`
	SinkholeAAAA netip.Addr `yaml:"sinkhole_aaaa"`
	// RPZ are response-policy zone files (relative to the config file),
	// applied in order after the intel list.
	RPZ []string `yaml:"rpz"`
	// Detection configures DGA, tunnelling and NXDOMAIN-storm detection.
	Detection DNSDetection `yaml:"detection"`
	// RRL configures response rate limiting of UDP answers.
	RRL DNSRRL `yaml:"rrl"`
	// TenantLists are per-tenant allow and deny lists of domains.
	TenantLists []DNSTenantLists `yaml:"tenant_lists"`
	// TenantUpstreams give tenants their own forwarders (and cache).
	TenantUpstreams []DNSTenantUpstreams `yaml:"tenant_upstreams"`
}

// DNSTenantUpstreams are one tenant's own forwarders.
type DNSTenantUpstreams struct {
	// Tenant is the tenant id.
	Tenant string `yaml:"tenant"`
	// Upstreams are host:port forwarders used for this tenant instead of
	// dns.upstreams / dns.root_hints, with a cache of its own.
	Upstreams []string `yaml:"upstreams"`
}

// DNSTenantLists is one tenant's own DNS allow and deny lists.
type DNSTenantLists struct {
	// Tenant is the tenant id.
	Tenant string `yaml:"tenant"`
	// Allow lists domains (and their subdomains) exempt from every DNS
	// policy (intel list, RPZ) for this tenant.
	Allow []string `yaml:"allow"`
	// Deny lists domains (and their subdomains) sinkholed for this tenant.
	Deny []string `yaml:"deny"`
}

// DNSRRL configures the resolver's response rate limiting (dnsres.RRL).
type DNSRRL struct {
	// ResponseRate is identical responses per second per client /24
	// (/56); 0 means 20, negative turns RRL off.
	ResponseRate float64 `yaml:"response_rate"`
	// ClientRate is responses per second per client network; 0 means no
	// such limit.
	ClientRate float64 `yaml:"client_rate"`
	// Slip sends every Slip-th limited answer truncated (TC=1); 0 means 2,
	// negative drops them all.
	Slip int `yaml:"slip"`
}

// DNSDetection configures the resolver's detection (dnsres.Detector).
type DNSDetection struct {
	// Block answers DGA-like names and tunnels NXDOMAIN instead of
	// reporting only (report-only tenants are never blocked).
	Block bool `yaml:"block"`
	// BlockTenants narrows Block to these tenant ids; empty means all.
	BlockTenants []string `yaml:"block_tenants"`
	// DGAThreshold is the P(DGA) from which a name is judged DGA-like;
	// 0 means the model's own; negative turns DGA scoring off.
	DGAThreshold float64 `yaml:"dga_threshold"`
	// TunnelUnique is the distinct names per client and domain per
	// window from which tunnelling is considered; 0 means 60, negative off.
	TunnelUnique int `yaml:"tunnel_unique"`
	// NXDomainStorm is the NXDOMAIN answers per client per window reported
	// as a storm; 0 means 100, negative off.
	NXDomainStorm int `yaml:"nxdomain_storm"`
	// Window is the counting window; 0 means one minute.
	Window Duration `yaml:"window"`
	// AllowDomains are domains never judged, added to the built-in list
	// of CDN and cloud domains.
	AllowDomains []string `yaml:"allow_domains"`
}

// Proxy configures the forward web proxy (listen.proxy). Checked when the
// proxy starts (appliance/internal/app/proxy.go).
type Proxy struct {
	// AllowLoopbackDestinations lets requests reach 127.0.0.0/8 and ::1
	// (demos and tests only; logged as a warning). Unset: allowed exactly
	// when listen.proxy is a loopback address (the demo).
	AllowLoopbackDestinations *bool `yaml:"allow_loopback_destinations"`
	// ConnectPorts are the ports CONNECT may reach. Empty: 443.
	ConnectPorts []int `yaml:"connect_ports"`
	// TrustedProxies are the tenants' own downstream proxies (prefixes)
	// whose X-Forwarded-For names the terminal.
	TrustedProxies []netip.Prefix `yaml:"trusted_proxies"`
	// TLSInspect configures TLS inspection.
	TLSInspect ProxyTLSInspect `yaml:"tls_inspect"`
	// Scan configures malware scanning of downloads.
	Scan ProxyScan `yaml:"scan"`
	// TenantRestrictions insert the SaaS vendors' tenant-restriction
	// headers for a tenant's terminals (needs tls_inspect.enabled).
	TenantRestrictions []ProxyTenantRestriction `yaml:"tenant_restrictions"`
	// Breakout configures the SaaS local breakout line (the apps a
	// tenant's policy.breakout names).
	Breakout ProxyBreakout `yaml:"breakout"`
	// GlobalBandwidthMbps is the internet line's capacity, shared fairly
	// among the busy tenants by tenants[].bandwidth_mbps.weight, on top
	// of each tenant's own caps. Zero: not shared.
	GlobalBandwidthMbps ProxyGlobalBandwidth `yaml:"global_bandwidth_mbps"`
	// TenantConns caps the client connections one tenant holds at once
	// (keep-alive connections and tunnels alike); beyond it a new
	// request is refused with 503 (rule proxy-tenant-connections). Zero:
	// no cap.
	TenantConns int `yaml:"tenant_conns"`
}

// ProxyGlobalBandwidth is the line's capacity in Mbit/s per direction.
type ProxyGlobalBandwidth struct {
	// Up is tenants → internet; 0 shares nothing.
	Up int `yaml:"up"`
	// Down is internet → tenants; 0 shares nothing.
	Down int `yaml:"down"`
}

// ProxyBreakout configures the SaaS local breakout line.
type ProxyBreakout struct {
	// LocalAddrs are the breakout line's source addresses. Breakout is on
	// when LocalAddrs or Proxy is set.
	LocalAddrs []netip.Addr `yaml:"local_addrs"`
	// Proxy is an upstream proxy (host:port) on the breakout line.
	Proxy string `yaml:"proxy"`
	// HealthTarget (host:port) proves the line up; default Proxy.
	HealthTarget string `yaml:"health_target"`
	// HealthInterval is the time between checks. Default 10s.
	HealthInterval Duration `yaml:"health_interval"`
	// AppsDir holds extra app definitions (*.txt), added to the built-in
	// m365, google, slack and webex.
	AppsDir string `yaml:"apps_dir"`
}

// ProxyTLSInspect configures the proxy's TLS inspection.
type ProxyTLSInspect struct {
	// Enabled turns inspection on; the CA is created on first start in
	// DataDir/proxy-ca.pem (key proxy-ca.key). Default false.
	Enabled bool `yaml:"enabled"`
	// All inspects every tunnel not bypassed; false inspects only Hosts
	// and the tenant-restriction login hosts. Unset: true.
	All *bool `yaml:"all"`
	// Hosts are domains inspected even when All is false.
	Hosts []string `yaml:"hosts"`
	// Bypass are domains never inspected (spliced).
	Bypass []string `yaml:"bypass"`
	// BypassCategories are categories never inspected.
	BypassCategories []string `yaml:"bypass_categories"`
	// CategoryFiles are "domain category" files (relative to the config).
	CategoryFiles []string `yaml:"category_files"`
	// RootCAs are PEM files of roots the origins' certificates are
	// verified against instead of the system roots.
	RootCAs []string `yaml:"root_cas"`
}

// ProxyScan configures malware scanning of downloads.
type ProxyScan struct {
	// Clamd is clamd's address (host:port or a unix socket path); empty
	// turns scanning off.
	Clamd string `yaml:"clamd"`
	// MaxBytes is the largest body scanned. Default 10 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// Timeout bounds one scan. Default 30s.
	Timeout Duration `yaml:"timeout"`
	// FailOpen lets downloads through when clamd is down. Default false
	// (fail closed).
	FailOpen bool `yaml:"fail_open"`
}

// ProxyTenantRestriction is one tenant's SaaS tenant restrictions.
type ProxyTenantRestriction struct {
	Tenant           string   `yaml:"tenant"`
	MicrosoftTenants []string `yaml:"microsoft_tenants"`
	MicrosoftContext string   `yaml:"microsoft_context"`
	MicrosoftPolicy  string   `yaml:"microsoft_policy"`
	GoogleDomains    []string `yaml:"google_domains"`
	SlackWorkspaces  []string `yaml:"slack_workspaces"`
	SlackRequester   string   `yaml:"slack_requester"`
	WebexDomains     []string `yaml:"webex_domains"`
}

// Mail configures the mail relay.
type Mail struct {
	// Hostname is the relay's name in its greeting and Received: headers;
	// empty means the machine's host name.
	Hostname string `yaml:"hostname"`
	// Smarthost (host:port) receives all mail for domains no tenant owns;
	// empty means delivery by MX lookup.
	Smarthost string `yaml:"smarthost"`
	// Spam turns on spam scoring and advertising detection of inbound
	// mail (the classifier shipped in mailrelay/spam, header rules, the
	// threat-intel set, DNSBL). Default false.
	Spam bool `yaml:"spam"`
	// DNSBL are the DNS block lists spam scoring asks (through the
	// system resolver); empty = none.
	DNSBL []MailDNSBL `yaml:"dnsbl"`
	// Clamd is clamd's address for virus scanning: host:port, or a unix
	// socket path (contains '/'). Empty = no virus scan. When set and
	// clamd is down, mail is deferred (4xx), never passed unscanned.
	Clamd string `yaml:"clamd"`
	// Rspamd scores inbound mail with an rspamd daemon instead of the
	// built-in scorer (mailrelay/rspamd). Off when its URL is empty.
	Rspamd MailRspamd `yaml:"rspamd"`
	// Quarantine configures the quarantine store in <data_dir>/quarantine.
	Quarantine MailQuarantine `yaml:"quarantine"`
	// Policy is the cloud-wide content policy.
	Policy MailPolicy `yaml:"policy"`
	// TenantPolicies override Policy for single tenants.
	TenantPolicies []MailTenantPolicy `yaml:"tenant_policies"`
	// Auth is the sender authentication (SPF, DKIM, DMARC) of inbound
	// mail. Default off.
	Auth MailAuth `yaml:"auth"`
	// DKIM are the signing keys of tenant mail domains: outbound mail
	// whose From: domain is a key's domain (or a subdomain of it) is
	// DKIM-signed. Empty = no signing.
	DKIM []MailDKIM `yaml:"dkim"`
	// OutboundRecipientsPerHour caps the recipients one sender address of
	// a tenant may be given per hour (an hour's worth at once); beyond it
	// RCPT is deferred with 450 4.7.1 and an event (rule
	// mail-sender-rate). Zero: no cap; negative is an error.
	OutboundRecipientsPerHour int `yaml:"outbound_recipients_per_hour"`
}

// MailDKIM is one DKIM signing key of a tenant mail domain.
type MailDKIM struct {
	// Domain is a mail domain of a tenant (tenants[].mail_domains).
	Domain string `yaml:"domain"`
	// Selector names the key in DNS: <selector>._domainkey.<domain>.
	Selector string `yaml:"selector"`
	// KeyFile is the PEM private key (PKCS#8 RSA or Ed25519, or PKCS#1
	// RSA), relative to the config file's folder. A missing file is
	// created at start (RSA 2048, mode 0600) and the TXT record to
	// publish is logged and written beside it as <key_file>.txt.
	KeyFile string `yaml:"key_file"`
}

// MailAuth configures sender authentication of inbound mail: results in
// an Authentication-Results header on delivered mail; DMARC p=reject
// failures and unauthenticated mail claiming a tenant's own domain are
// refused (550), p=quarantine failures quarantined.
type MailAuth struct {
	// Enabled turns the checks on. Default false.
	Enabled bool `yaml:"enabled"`
	// Resolver (host:port, UDP and TCP) answers the checks' SPF, DKIM and
	// DMARC lookups; empty means the system resolver.
	Resolver string `yaml:"resolver"`
}

// MailRspamd configures rspamd as the spam scorer of inbound mail.
type MailRspamd struct {
	// URL of rspamd's normal worker or proxy, e.g.
	// "http://127.0.0.1:11333"; empty = rspamd off.
	URL string `yaml:"url"`
	// Timeout bounds one scan; 0 = 15s.
	Timeout Duration `yaml:"timeout"`
	// OnError is what happens to mail rspamd gives no answer for:
	// "tempfail" (default: 4xx, the sender retries), "allow" (delivered
	// unscored) or "builtin" (scored by the built-in scorer; needs
	// mail.spam).
	OnError string `yaml:"on_error"`
	// Actions uses rspamd's action (under the tenant's rspamd settings)
	// instead of comparing its score with the spam levels. Default false.
	Actions bool `yaml:"actions"`
	// TenantSettings sends each tenant's id as rspamd Settings-ID, so
	// per-tenant settings in rspamd (`id = "<tenant id>"`) apply to that
	// tenant's recipients. Default false.
	TenantSettings bool `yaml:"tenant_settings"`
}

// MailDNSBL is one DNS block list.
type MailDNSBL struct {
	// Zone is the list's zone, e.g. "bl.example.net".
	Zone string `yaml:"zone"`
	// Domains makes it a domain list (sender and URL domains) instead of
	// an IP list (client address).
	Domains bool `yaml:"domains"`
	// Points added to the spam score on a listing; 0 = 3.
	Points float64 `yaml:"points"`
}

// MailQuarantine configures the mail quarantine.
type MailQuarantine struct {
	// Retention is how long quarantined mail is kept; 0 = 30d.
	Retention Duration `yaml:"retention"`
	// ForwardTo (host:port) is the isolated server each quarantined
	// original is also sent to; empty = none.
	ForwardTo string `yaml:"forward_to"`
	// ForwardRcpt is the recipient address there (required with
	// ForwardTo); ForwardFrom the envelope sender (default
	// quarantine@<mail.hostname>).
	ForwardRcpt string `yaml:"forward_rcpt"`
	ForwardFrom string `yaml:"forward_from"`
}

// MailPolicy is a content policy (mailrelay.Policy). Empty fields take
// the cloud-wide policy's value, then the built-in default.
type MailPolicy struct {
	// SpamTag, SpamQuarantine, SpamReject are the spam-score levels
	// (defaults 4, 6, 15 points; negative = level off).
	SpamTag        float64 `yaml:"spam_tag"`
	SpamQuarantine float64 `yaml:"spam_quarantine"`
	SpamReject     float64 `yaml:"spam_reject"`
	// SpamSubject is the subject tag of tagged spam (default "[SPAM] ").
	SpamSubject string `yaml:"spam_subject"`
	// Ads: allow (default), tag, quarantine or reject advertising mail;
	// AdSubject is its subject tag (default "[広告] ").
	Ads       string `yaml:"ads"`
	AdSubject string `yaml:"ad_subject"`
	// Attachments: quarantine (default), reject or allow executables,
	// scripts, macro-enabled Office files and encrypted archives.
	Attachments string `yaml:"attachments"`
	// Virus: quarantine (default), reject or delete infected mail.
	Virus string `yaml:"virus"`
	// Sanitize turns on メール無害化 for inbound mail (default false).
	Sanitize *bool `yaml:"sanitize"`
	// Block and allow lists: sender addresses or domains, client prefixes.
	BlockSenders []string       `yaml:"block_senders"`
	AllowSenders []string       `yaml:"allow_senders"`
	BlockClients []netip.Prefix `yaml:"block_clients"`
	AllowClients []netip.Prefix `yaml:"allow_clients"`
}

// MailTenantPolicy is one tenant's content policy.
type MailTenantPolicy struct {
	Tenant string     `yaml:"tenant"`
	Policy MailPolicy `yaml:"policy"`
}

// Notify configures notification delivery.
type Notify struct {
	// SMTP is the smarthost (host:port) notification mail goes through;
	// empty disables mail notification.
	SMTP string `yaml:"smtp"`
	// From is the envelope and header sender of notification mail.
	From string `yaml:"from"`
	// RequireTLS refuses to send mail when the smarthost does not offer
	// STARTTLS. Default false.
	RequireTLS bool `yaml:"require_tls"`
	// AckURL is the public http(s) URL of the console's acknowledgement
	// path; links in notifications point there, and the console serves
	// the path of this URL. Empty means http://<listen.console>/ack.
	AckURL string `yaml:"ack_url"`
	// KeyFile holds the HMAC key (at least 32 bytes) signing
	// acknowledgement links. Empty means DataDir/notify.key, created with
	// 32 random bytes (mode 0600) on first start.
	KeyFile string `yaml:"key_file"`
	// EscalationDelay is the wait before the next contact of a tenant is
	// notified. Default 4m (notify.DefaultEscalateAfter).
	EscalationDelay Duration `yaml:"escalation_delay"`
}

// History configures the config generations.
type History struct {
	// Keep is the number of generations kept, at least 2. Default 10.
	Keep int `yaml:"keep"`
}

// Store configures the embedded event store.
type Store struct {
	// Retention is how long events are kept. Default 5y.
	Retention Duration `yaml:"retention"`
}

// Backup configures the daily backup of DataDir (appliance/backup).
type Backup struct {
	// Dir is the backup location; it must lie outside DataDir, on another
	// disk or a mounted remote share. Empty turns daily backups off (the
	// `seccloud backup` commands then need -dir).
	Dir string `yaml:"dir"`
	// Keep is how many daily snapshots are kept. Default 14.
	Keep int `yaml:"keep"`
	// At is the local time of day the backup runs, "HH:MM". Default "03:00".
	At string `yaml:"at"`
	// Verify restores each new snapshot into a scratch directory and checks
	// it (every file's hash and the event store's chain). Default true.
	Verify *bool `yaml:"verify"`
}

// Cluster roles.
const (
	RoleStandalone = "standalone" // one node: its events go to its store and its detection
	RoleEdge       = "edge"       // events to the local store and the stream; no detection here
	RoleDetector   = "detector"   // reads every node's events from the stream into its store and detection
)

// Cluster configures several appliance nodes. With Role edge or detector,
// every node publishes its events to the NATS JetStream stream; the
// detector node (one; a second may stand by with the same durable consumer)
// reads them all into its store, rules, incidents and notifications, so
// incidents and notifications are never duplicated across nodes.
type Cluster struct {
	// NATS is the NATS server URL, several separated by commas. Required
	// unless Role is standalone.
	NATS string `yaml:"nats"`
	// Role is standalone (default), edge or detector.
	Role string `yaml:"role"`
	// Node names this node in the logs. Default: the host name.
	Node string `yaml:"node"`
	// Stream is the JetStream stream, created when missing. Default
	// SECCLOUD_EVENTS.
	Stream string `yaml:"stream"`
	// Redis is a Redis server (host:port, or a redis:// or rediss:// URL)
	// where the nodes share their rate limits: the console's login
	// lockouts and throttle, and the WAF's per-client request rate. Any
	// role. Empty keeps every limit in the node's memory. Redis down:
	// each node falls back to its own limits and reports it (health).
	Redis string `yaml:"redis"`
}

// BackupDir is Backup.Dir resolved against the config file's directory.
func (c *Config) BackupDir() string { return c.Path(c.Backup.Dir) }

// File returns the name of the file the config was read from ("" for
// in-memory input).
func (c *Config) File() string { return c.file }

// Directory returns the validated tenant snapshot built from Tenants.
func (c *Config) Directory() *tenant.Snapshot { return c.dir }

// Path resolves p against the config file's directory (the current
// directory for the embedded demo or in-memory input). Absolute and empty
// paths are returned unchanged.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.file == "" || c.file == DemoName {
		return p
	}
	return filepath.Join(filepath.Dir(c.file), p)
}

// HistoryDir is where config generations are kept: DataDir/config-history.
func (c *Config) HistoryDir() string { return filepath.Join(c.Path(c.DataDir), "config-history") }

// StoreDir is where the event store lives: DataDir/events.
func (c *Config) StoreDir() string { return filepath.Join(c.Path(c.DataDir), "events") }

// IncidentDir is where the incident journal lives: Detect.IncidentDir,
// default DataDir/incidents.
func (c *Config) IncidentDir() string {
	if c.Detect.IncidentDir != "" {
		return c.Path(c.Detect.IncidentDir)
	}
	return filepath.Join(c.Path(c.DataDir), "incidents")
}

// RollupDir is where the report rollups live (detect/report), beside the
// event store: DataDir/rollups.
func (c *Config) RollupDir() string { return filepath.Join(c.Path(c.DataDir), "rollups") }

// NotifyKeyFile is the HMAC key file of acknowledgement links:
// Notify.KeyFile, default DataDir/notify.key.
func (c *Config) NotifyKeyFile() string {
	if c.Notify.KeyFile != "" {
		return c.Path(c.Notify.KeyFile)
	}
	return filepath.Join(c.Path(c.DataDir), "notify.key")
}

// RunFile is where a running appliance records its pid and console
// address: DataDir/seccloud.run.
func (c *Config) RunFile() string { return filepath.Join(c.Path(c.DataDir), "seccloud.run") }

// Year is the unit "y" of a Duration: 366 days, so that N years always
// cover N calendar years.
const Year = 366 * 24 * time.Hour

// Duration is a time.Duration written as a Go duration ("720h", "90m") or
// with the units d (days) and y (years of 366 days): "30d", "5y".
type Duration time.Duration

func (d *Duration) decodeScalar(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
