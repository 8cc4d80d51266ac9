package config

import (
	"net/netip"
	"path/filepath"
)

// WAF configures the sites' WAF / CDN beyond listen.waf_* and
// tenants[].sites (package waf). Every field's zero value is the
// package's default.
type WAF struct {
	// SourceAddr is the local address used toward origins (origins allow
	// exactly it); empty lets the system choose.
	SourceAddr netip.Addr `yaml:"source_addr"`
	// Egress are further addresses origins must allow (the uplink's NAT
	// addresses); published with SourceAddr at GET /api/waf/egress.
	Egress []netip.Addr `yaml:"egress"`
	// Allow and Deny are global source address lists (deny wins).
	Allow []netip.Prefix `yaml:"allow"`
	Deny  []netip.Prefix `yaml:"deny"`
	// GeoIPFile is a MaxMind-format country database for the sites'
	// country rules.
	GeoIPFile string `yaml:"geoip_file"`
	// Cache is the CDN cache shared by all sites.
	Cache WAFCache `yaml:"cache"`
	// DDoS are the layer-7 limits.
	DDoS WAFDDoS `yaml:"ddos"`
	// Sites are per-site options, by the site's host.
	Sites []WAFSite `yaml:"sites"`
	// Engine is the inspection engine (wafengine.go).
	Engine WAFEngine `yaml:"engine"`
}

// WAFCache configures the CDN cache.
type WAFCache struct {
	Disabled    bool   `yaml:"disabled"`
	MaxMB       int64  `yaml:"max_mb"`
	Dir         string `yaml:"dir"`
	MaxDiskMB   int64  `yaml:"max_disk_mb"`
	MaxObjectMB int64  `yaml:"max_object_mb"`
}

// WAFDDoS configures the layer-7 DDoS limits.
type WAFDDoS struct {
	Disabled       bool           `yaml:"disabled"`
	ClientRate     float64        `yaml:"client_rate"`
	ClientBurst    int            `yaml:"client_burst"`
	ClientInFlight int            `yaml:"client_in_flight"`
	ConnsPerSource int            `yaml:"conns_per_source"`
	AdaptiveFactor float64        `yaml:"adaptive_factor"`
	Exempt         []netip.Prefix `yaml:"exempt"`
	// ChallengeWork is the proof of work (leading zero bits of SHA-256,
	// 0-24) a browser must do in JavaScript before the challenge cookie
	// counts; 0 keeps the JavaScript-free cookie challenge.
	ChallengeWork int `yaml:"challenge_work"`
	// GlobalInFlight caps the requests the WAF works on at once across
	// all sites; other sites leave DisasterReserve of it (default 0.25)
	// to the disaster sites. 0: no cap.
	GlobalInFlight  int     `yaml:"global_in_flight"`
	DisasterReserve float64 `yaml:"disaster_reserve"`
	// ChallengeKeyFile holds the key (at least 16 bytes) signing the
	// challenge cookies of adaptive protection. Empty means
	// DataDir/waf/challenge.key, created with 32 random bytes (mode
	// 0600) on first start; when set, the file must exist. Give every
	// node behind one load balancer the same file, so that a cookie from
	// one node passes on the others.
	ChallengeKeyFile string `yaml:"challenge_key_file"`
}

// WAFChallengeKeyFile is the key file of the WAF's challenge cookies:
// WAF.DDoS.ChallengeKeyFile, default DataDir/waf/challenge.key.
func (c *Config) WAFChallengeKeyFile() string {
	if c.WAF.DDoS.ChallengeKeyFile != "" {
		return c.Path(c.WAF.DDoS.ChallengeKeyFile)
	}
	return filepath.Join(c.Path(c.DataDir), "waf", "challenge.key")
}

// WAFSite are one site's WAF options.
type WAFSite struct {
	// Host is the site's host as in tenants[].sites[].host.
	Host          string `yaml:"host"`
	RedirectHTTPS bool   `yaml:"redirect_https"`
	HTTPSPort     int    `yaml:"https_port"`
	// ReportOnly logs what the gateway checks would refuse.
	ReportOnly         bool            `yaml:"report_only"`
	FrameOptions       string          `yaml:"frame_options"`
	FrameAncestors     string          `yaml:"frame_ancestors"`
	CSRFExempt         []string        `yaml:"csrf_exempt"`
	CSRFTrustedOrigins []string        `yaml:"csrf_trusted_origins"`
	CacheDisabled      bool            `yaml:"cache_disabled"`
	CacheDefaultTTL    Duration        `yaml:"cache_default_ttl"`
	CacheGrace         Duration        `yaml:"cache_grace"`
	Allow              []netip.Prefix  `yaml:"allow"`
	Deny               []netip.Prefix  `yaml:"deny"`
	PathAccess         []WAFPathAccess `yaml:"path_access"`
	AllowCountries     []string        `yaml:"allow_countries"`
	DenyCountries      []string        `yaml:"deny_countries"`
	OriginHeader       string          `yaml:"origin_header"`
	OriginSecret       string          `yaml:"origin_secret"`
	OriginClientCert   string          `yaml:"origin_client_cert"`
	OriginClientKey    string          `yaml:"origin_client_key"`
	// Inspection engine overrides (wafengine.go); 0 / false keep
	// waf.engine's defaults.
	ParanoiaLevel    int            `yaml:"paranoia_level"`
	AnomalyThreshold int            `yaml:"anomaly_threshold"`
	DetectOnly       bool           `yaml:"detect_only"`
	RuleExclusions   []WAFExclusion `yaml:"rule_exclusions"`
}

// WAFPathAccess restricts a path prefix to networks.
type WAFPathAccess struct {
	Path  string         `yaml:"path"`
	Allow []netip.Prefix `yaml:"allow"`
}
