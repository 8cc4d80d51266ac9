package config

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/idna"

	"github.com/jichitai/seccloud/tenant"
)

//go:embed demo.yaml
var demo []byte

// DemoName is the file name errors and File() use for the embedded demo.
const DemoName = "embedded:demo.yaml"

// Demo returns the embedded demo configuration, with its comments.
func Demo() []byte { return append([]byte(nil), demo...) }

// Load reads and parses the file at path. Errors in the file are returned
// as Errors; a file that cannot be read returns the read error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// LoadDemo parses the embedded demo configuration.
func LoadDemo() (*Config, error) { return Parse(DemoName, demo) }

// Raw returns the bytes the configuration was parsed from. The slice must
// not be modified.
func (c *Config) Raw() []byte { return c.raw }

// Parse parses and validates data, naming file in errors. Relative paths in
// the config resolve against file's directory (see Config.Path). On failure
// it returns Errors holding every problem found, sorted by position.
func Parse(file string, data []byte) (*Config, error) {
	c, err := parse(file, data)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LoadPartial reads the file at path like Load, but on errors in the file
// it also returns the configuration as far as it could be decoded (nil
// only when the file cannot be read or is not YAML). It is for commands
// that must work on a broken file, such as `config rollback`, and need only
// data_dir and history.keep. Never run with a partial configuration.
func LoadPartial(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(path, data)
}

func parse(file string, data []byte) (*Config, error) {
	root, err := parseDocument(file, data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, Errors{{File: file, Msg: "empty configuration (start from `seccloud print-config`)"}}
	}
	d := &decoder{file: file}
	c := &Config{file: file, raw: data}
	d.decode(root, reflect.ValueOf(c).Elem(), "")
	if d.nodes > maxNodes {
		return c, d.errs
	}
	decodeErrs := len(d.errs)
	c.validate(d, root)
	c.buildDirectory(d, root, d.errs[:decodeErrs])
	if len(d.errs) > 0 {
		c.tagTenants(d.errs)
		sort.SliceStable(d.errs, func(i, j int) bool {
			a, b := d.errs[i], d.errs[j]
			if a.Line != b.Line {
				return a.Line < b.Line
			}
			return a.Column < b.Column
		})
		if d.tooMany {
			d.errs = append(d.errs, &Error{File: file, Msg: fmt.Sprintf("too many errors; stopped after %d", maxErrors)})
		}
		return c, d.errs
	}
	return c, nil
}

var tenantPath = regexp.MustCompile(`^tenants\[(\d+)\]`)

// tagTenants fills Error.Tenant for errors under tenants[i].
func (c *Config) tagTenants(errs Errors) {
	for _, e := range errs {
		if e.Tenant != "" {
			continue
		}
		if m := tenantPath.FindStringSubmatch(e.Path); m != nil {
			if i, err := strconv.Atoi(m[1]); err == nil && i < len(c.Tenants) {
				e.Tenant = c.Tenants[i].ID
			}
		}
	}
}

// at records an error located at path in root.
func (d *decoder) at(root *yaml.Node, path, format string, args ...any) {
	d.errorf(locate(root, path), path, format, args...)
}

// validate applies defaults and checks everything but the tenants.
func (c *Config) validate(d *decoder, root *yaml.Node) {
	switch c.Version {
	case Version:
	case 0:
		d.at(root, "version", "missing: add \"version: 1\"")
	default:
		d.at(root, "version", "unsupported version %d (this seccloud reads version %d)", c.Version, Version)
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		d.at(root, "log.level", "want debug, info, warn or error, found %q", c.Log.Level)
	}
	if c.Log.Format == "" {
		c.Log.Format = DefaultLogFormat
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		d.at(root, "log.format", "want text or json, found %q", c.Log.Format)
	}

	seen := map[string]string{}
	for _, l := range []struct{ key, addr string }{
		{"proxy", c.Listen.Proxy}, {"dns", c.Listen.DNS}, {"smtp", c.Listen.SMTP},
		{"waf_http", c.Listen.WAFHTTP}, {"waf_https", c.Listen.WAFHTTPS}, {"console", c.Listen.Console},
	} {
		path := "listen." + l.key
		if l.addr == "" {
			if l.key == "console" {
				d.at(root, path, "missing: the console address (host:port) is required")
			}
			continue
		}
		if err := checkHostPort(l.addr); err != nil {
			d.at(root, path, "%v", err)
			continue
		}
		if _, port, _ := net.SplitHostPort(l.addr); port == "0" {
			continue // any free port: cannot clash
		}
		if other, dup := seen[l.addr]; dup {
			d.at(root, path, "%s is already used by %s", l.addr, other)
		}
		seen[l.addr] = path
	}

	for _, list := range []struct {
		key   string
		files []string
	}{{"intel.domains", c.Intel.Domains}, {"intel.addrs", c.Intel.Addrs}, {"intel.urls", c.Intel.URLs},
		{"intel.hashes", c.Intel.Hashes}, {"intel.stix", c.Intel.STIX}} {
		for i, f := range list.files {
			path := fmt.Sprintf("%s[%d]", list.key, i)
			if f == "" {
				d.at(root, path, "empty file name")
			} else if st, err := os.Stat(c.Path(f)); err != nil {
				d.at(root, path, "cannot read indicator file: %v", errors.Unwrap(err))
			} else if st.IsDir() {
				d.at(root, path, "%s is a directory, want an indicator file", c.Path(f))
			}
		}
	}
	for i, u := range c.DNS.Upstreams {
		if err := checkHostPort(u); err != nil {
			d.at(root, fmt.Sprintf("dns.upstreams[%d]", i), "%v", err)
		}
	}
	for i, h := range c.DNS.RootHints {
		if _, err := netip.ParseAddr(h); err != nil {
			if _, err2 := netip.ParseAddrPort(h); err2 != nil {
				d.at(root, fmt.Sprintf("dns.root_hints[%d]", i), "want an IP address or ip:port, found %q", h)
			}
		}
	}
	if a := c.DNS.SinkholeA; a.IsValid() && !a.Unmap().Is4() {
		d.at(root, "dns.sinkhole_a", "%s is not an IPv4 address", a)
	}
	if a := c.DNS.SinkholeAAAA; a.IsValid() && (!a.Is6() || a.Is4In6()) {
		d.at(root, "dns.sinkhole_aaaa", "%s is not an IPv6 address", a)
	}
	for i, f := range c.DNS.RPZ {
		if f == "" {
			d.at(root, fmt.Sprintf("dns.rpz[%d]", i), "empty file name")
		} else if _, err := os.Stat(c.Path(f)); err != nil {
			d.at(root, fmt.Sprintf("dns.rpz[%d]", i), "cannot read RPZ file: %v", errors.Unwrap(err))
		}
	}
	if t := c.DNS.Detection.DGAThreshold; t > 1 {
		d.at(root, "dns.detection.dga_threshold", "%v is above 1", t)
	}
	for i, tl := range c.DNS.TenantLists {
		found := false
		for _, t := range c.Tenants {
			found = found || t.ID == tl.Tenant
		}
		if !found {
			d.at(root, fmt.Sprintf("dns.tenant_lists[%d].tenant", i), "no tenant with id %q", tl.Tenant)
		}
	}
	for i, tu := range c.DNS.TenantUpstreams {
		found := false
		for _, t := range c.Tenants {
			found = found || t.ID == tu.Tenant
		}
		if !found {
			d.at(root, fmt.Sprintf("dns.tenant_upstreams[%d].tenant", i), "no tenant with id %q", tu.Tenant)
		}
		if len(tu.Upstreams) == 0 {
			d.at(root, fmt.Sprintf("dns.tenant_upstreams[%d].upstreams", i), "empty list")
		}
		for j, u := range tu.Upstreams {
			if err := checkHostPort(u); err != nil {
				d.at(root, fmt.Sprintf("dns.tenant_upstreams[%d].upstreams[%d]", i, j), "%v", err)
			}
		}
	}
	if c.Mail.OutboundRecipientsPerHour < 0 {
		d.at(root, "mail.outbound_recipients_per_hour", "must not be negative, found %d", c.Mail.OutboundRecipientsPerHour)
	}
	if w := c.WAF.DDoS.ChallengeWork; w < 0 || w > 24 {
		d.at(root, "waf.ddos.challenge_work", "want 0 (cookie challenge) to 24 bits, found %d", w)
	}
	if c.WAF.DDoS.GlobalInFlight < 0 {
		d.at(root, "waf.ddos.global_in_flight", "must not be negative, found %d", c.WAF.DDoS.GlobalInFlight)
	}
	if r := c.WAF.DDoS.DisasterReserve; r < 0 || r >= 1 {
		d.at(root, "waf.ddos.disaster_reserve", "want a share in [0, 1), found %g", r)
	}
	if c.Proxy.TenantConns < 0 {
		d.at(root, "proxy.tenant_conns", "must not be negative, found %d", c.Proxy.TenantConns)
	}
	if c.DNS.RRL.ClientRate < 0 {
		d.at(root, "dns.rrl.client_rate", "negative rate")
	}
	if c.DNS.Detection.Window < 0 {
		d.at(root, "dns.detection.window", "negative duration")
	}
	if c.Mail.Smarthost != "" {
		if err := checkHostPort(c.Mail.Smarthost); err != nil {
			d.at(root, "mail.smarthost", "%v", err)
		}
	}
	if c.Mail.Auth.Resolver != "" {
		if err := checkHostPort(c.Mail.Auth.Resolver); err != nil {
			d.at(root, "mail.auth.resolver", "%v", err)
		}
	}
	if r := c.Mail.Rspamd; r.URL != "" {
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.at(root, "mail.rspamd.url", "want an http(s) URL, found %q", r.URL)
		}
		switch r.OnError {
		case "", "tempfail", "allow":
		case "builtin":
			if !c.Mail.Spam {
				d.at(root, "mail.rspamd.on_error", "builtin needs mail.spam: true")
			}
		default:
			d.at(root, "mail.rspamd.on_error", "want tempfail, allow or builtin, found %q", r.OnError)
		}
		if r.Timeout < 0 {
			d.at(root, "mail.rspamd.timeout", "negative duration")
		}
	}
	c.validateDKIM(d, root)
	if c.Notify.SMTP != "" {
		if err := checkHostPort(c.Notify.SMTP); err != nil {
			d.at(root, "notify.smtp", "%v", err)
		}
		if c.Notify.From == "" {
			d.at(root, "notify", "notify.from is required when notify.smtp is set")
		}
	}
	if c.Detect.RulesDir != "" {
		if st, err := os.Stat(c.Path(c.Detect.RulesDir)); err != nil {
			d.at(root, "detect.rules_dir", "cannot read rules directory: %v", errors.Unwrap(err))
		} else if !st.IsDir() {
			d.at(root, "detect.rules_dir", "%s is not a directory", c.Path(c.Detect.RulesDir))
		}
	}
	if c.Notify.AckURL != "" {
		if u, err := url.Parse(c.Notify.AckURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.RawQuery != "" || u.Fragment != "" {
			d.at(root, "notify.ack_url", "want an http(s) URL without query, found %q", c.Notify.AckURL)
		}
	}
	if c.Notify.KeyFile != "" {
		if st, err := os.Stat(c.Path(c.Notify.KeyFile)); err != nil {
			d.at(root, "notify.key_file", "cannot read key file: %v", errors.Unwrap(err))
		} else if st.IsDir() {
			d.at(root, "notify.key_file", "%s is a directory, want a key file", c.Path(c.Notify.KeyFile))
		} else if st.Size() < 32 {
			d.at(root, "notify.key_file", "key too short: %d bytes, want at least 32", st.Size())
		}
	}
	switch {
	case c.Notify.EscalationDelay == 0:
		c.Notify.EscalationDelay = Duration(DefaultEscalationDelay)
	case c.Notify.EscalationDelay < 0:
		d.at(root, "notify.escalation_delay", "must not be negative")
	}
	if c.Notify.From != "" {
		if a, err := mail.ParseAddress(c.Notify.From); err != nil || a.Name != "" {
			d.at(root, "notify.from", "want a plain mail address, found %q", c.Notify.From)
		}
	}
	switch {
	case c.History.Keep == 0:
		c.History.Keep = DefaultHistoryKeep
	case c.History.Keep < 2:
		d.at(root, "history.keep", "at least 2 generations must be kept, found %d", c.History.Keep)
	}
	switch {
	case c.Store.Retention == 0:
		c.Store.Retention = Duration(DefaultStoreRetention)
	case c.Store.Retention < Duration(24*60*60*1e9):
		d.at(root, "store.retention", "want at least 1d (segments are daily)")
	}
	switch {
	case c.Backup.Keep == 0:
		c.Backup.Keep = DefaultBackupKeep
	case c.Backup.Keep < 1:
		d.at(root, "backup.keep", "want at least 1 snapshot, found %d", c.Backup.Keep)
	}
	if c.Backup.At == "" {
		c.Backup.At = DefaultBackupAt
	} else if _, err := time.Parse("15:04", c.Backup.At); err != nil {
		d.at(root, "backup.at", "want a time of day HH:MM, found %q", c.Backup.At)
	}
	if c.Backup.Verify == nil {
		t := true
		c.Backup.Verify = &t
	}
	switch c.Cluster.Role {
	case "":
		c.Cluster.Role = RoleStandalone
		if c.Cluster.NATS != "" {
			d.at(root, "cluster.role", "cluster.nats is set: want role edge or detector")
		}
	case RoleStandalone:
		if c.Cluster.NATS != "" {
			d.at(root, "cluster.role", "cluster.nats is set: want role edge or detector")
		}
	case RoleEdge, RoleDetector:
		if c.Cluster.NATS == "" {
			d.at(root, "cluster.nats", "role %s needs the NATS server URL", c.Cluster.Role)
		}
	default:
		d.at(root, "cluster.role", "want standalone, edge or detector, found %q", c.Cluster.Role)
	}
	if c.Cluster.Node == "" {
		c.Cluster.Node, _ = os.Hostname()
	}
	if r := c.Cluster.Redis; r != "" && !strings.HasPrefix(r, "redis://") && !strings.HasPrefix(r, "rediss://") {
		if err := checkHostPort(r); err != nil {
			d.at(root, "cluster.redis", "want host:port or a redis:// URL: %v", err)
		}
	}
	if c.Backup.Dir != "" {
		data, _ := filepath.Abs(c.Path(c.DataDir))
		dst, _ := filepath.Abs(c.Path(c.Backup.Dir))
		if dst == data || strings.HasPrefix(dst, data+string(filepath.Separator)) {
			d.at(root, "backup.dir", "the backup location %s must lie outside data_dir", c.Backup.Dir)
		}
	}
}

// checkHostPort checks a host:port address with a numeric port.
// validateDKIM checks mail.dkim: each key names a tenant's mail domain
// (or a subdomain of one) once per selector, a DNS-label selector and a
// key file path (created at start when missing, so not checked here).
func (c *Config) validateDKIM(d *decoder, root *yaml.Node) {
	ascii := func(s string) string {
		s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
		if a, err := idna.Lookup.ToASCII(s); err == nil {
			return a
		}
		return s
	}
	seen := map[string]bool{}
	for i, k := range c.Mail.DKIM {
		at := func(field, format string, args ...any) {
			d.at(root, fmt.Sprintf("mail.dkim[%d].%s", i, field), format, args...)
		}
		dom := ascii(k.Domain)
		owned := false
		for _, t := range c.Tenants {
			for _, md := range t.MailDomains {
				if m := ascii(md); dom == m || strings.HasSuffix(dom, "."+m) {
					owned = true
				}
			}
		}
		switch {
		case dom == "":
			at("domain", "required")
		case !owned:
			at("domain", "%q is not a tenant's mail domain (tenants[].mail_domains) nor under one", k.Domain)
		}
		if !dkimSelector.MatchString(k.Selector) {
			at("selector", "want DNS labels (letters, digits, '-', '.'), found %q", k.Selector)
		} else if seen[k.Selector+"._domainkey."+dom] {
			at("selector", "%s._domainkey.%s is configured twice", k.Selector, dom)
		}
		seen[k.Selector+"._domainkey."+dom] = true
		if k.KeyFile == "" {
			at("key_file", "required")
		}
	}
}

var dkimSelector = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, found %q", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("bad port in %q", addr)
	}
	if strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("bad host in %q", addr)
	}
	return nil
}

// buildDirectory validates the tenants with tenant.NewSnapshot and maps its
// errors back to positions. Problems at or under a path that already failed
// to decode are not reported twice.
func (c *Config) buildDirectory(d *decoder, root *yaml.Node, decodeErrs Errors) {
	ts := make([]tenant.Tenant, len(c.Tenants))
	for i := range c.Tenants {
		ts[i] = c.Tenants[i].ToTenant()
	}
	dir, err := tenant.NewSnapshot(ts, tenant.Options{})
	if err == nil {
		c.dir = dir
		return
	}
	var fes tenant.Errors
	if !errors.As(err, &fes) {
		d.errorf(locate(root, "tenants"), "tenants", "%v", err)
		return
	}
	for _, fe := range fes {
		path := configPath(fe.Path())
		if coveredBy(path, decodeErrs) {
			continue
		}
		msg := fe.Msg
		if fe.Value != "" {
			msg = fmt.Sprintf("%q: %s", fe.Value, fe.Msg)
		}
		if op := fe.OtherPath(); op != "" {
			op = configPath(op)
			o := locate(root, op)
			msg += fmt.Sprintf("; conflicts with tenant %q %s at %s:%d:%d", fe.OtherTenant, op, d.file, o.Line, o.Column)
		}
		d.errs = append(d.errs, &Error{
			File: d.file, Path: path, Tenant: fe.Tenant, Msg: msg,
			Line: locate(root, path).Line, Column: locate(root, path).Column,
		})
	}
}

// configPath maps a tenant field path to the config key path.
func configPath(p string) string {
	if i := strings.Index(p, ".bandwidth"); i >= 0 {
		return p[:i] + ".bandwidth_mbps"
	}
	return p
}

func coveredBy(path string, errs Errors) bool {
	for _, e := range errs {
		if e.Path == path || strings.HasPrefix(path, e.Path+".") || strings.HasPrefix(path, e.Path+"[") {
			return true
		}
	}
	return false
}
