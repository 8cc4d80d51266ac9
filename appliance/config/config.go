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
}

// DNS configures the resolver.
type DNS struct {
	// Upstreams are host:port forwarders; empty means full recursion.
	Upstreams []string `yaml:"upstreams"`
}

// Mail configures the mail relay.
type Mail struct {
	// Hostname is the relay's name in its greeting and Received: headers;
	// empty means the machine's host name.
	Hostname string `yaml:"hostname"`
	// Smarthost (host:port) receives all mail for domains no tenant owns;
	// empty means delivery by MX lookup.
	Smarthost string `yaml:"smarthost"`
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
