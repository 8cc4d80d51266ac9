package waf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
)

// Defaults of the Config fields whose zero value means "the default".
const (
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultReadTimeout           = 60 * time.Second
	DefaultIdleTimeout           = 120 * time.Second
	DefaultMaxHeaderBytes        = 64 << 10
	DefaultOriginDialTimeout     = 5 * time.Second
	DefaultOriginResponseTimeout = 60 * time.Second
	DefaultMaxFails              = 3
	DefaultEjectFor              = 30 * time.Second
	DefaultHealthInterval        = 5 * time.Second
	DefaultHealthTimeout         = 2 * time.Second
	DefaultHealthPath            = "/"
	DefaultCertCheckInterval     = 2 * time.Second
)

// Balance is how a site's requests are spread over its origins.
type Balance uint8

// The balancing methods. The zero value is RoundRobin.
const (
	// RoundRobin takes the available origins in turn.
	RoundRobin Balance = iota
	// LeastConn takes the available origin with the fewest requests in
	// flight, in turn among equals.
	LeastConn
)

// Config configures a Server. The zero value of every field but Directory
// is a documented default. A Config must not be modified after New.
type Config struct {
	// Directory maps a request's host to its site and tenant (BySite).
	// Required. A *tenant.Live is consulted per request, so reloads apply
	// at once.
	Directory tenant.Directory
	// Sink receives one event per request; nil discards. Emit must not
	// block (see detect.Sink).
	Sink detect.Sink
	// Logger logs operational problems (certificate reload failures,
	// origins going down); nil discards. Security events go to Sink.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// Sites holds per-site options that tenant.Site does not carry, keyed
	// by the site's Host as written in the tenant ("www.city.example.jp",
	// "*.bousai.example.jp"; Unicode names are converted to A-labels like
	// the Directory does). Sites not listed get the zero SiteOptions.
	Sites map[string]SiteOptions

	// Client side timeouts and limits (slowloris protection).
	Timeouts Timeouts
	// Origins tunes origin selection, ejection and health checks.
	Origins OriginConfig
	// TLS tunes certificate handling on the HTTPS listener.
	TLS TLSConfig

	// Engine inspects every proxied request (see engine.go); nil means no
	// inspection. NewCRSEngine builds the default: OWASP CRS on Coraza
	// with our decoding layer, one instance shared by all sites.
	Engine Engine
	// Inspection tunes how requests are fed to the Engine (body limit).
	Inspection InspectionConfig

	// Limits bound request sizes for every site (guard.go); a site's
	// SiteOptions.Limits overrides field by field.
	Limits Limits
	// Access are the global source address allow / deny lists.
	Access IPLists
	// GeoIP is an optional MaxMind-format country database for the
	// sites' country rules (geoip.go).
	GeoIP GeoIPConfig
	// Cache is the CDN cache shared by all sites (waf/cache).
	Cache CacheConfig
	// DDoS configures the layer-7 DDoS limits (ddos.go).
	DDoS DDoSConfig
}

// CacheConfig configures the CDN cache. The zero value is a memory cache
// holding at most 256 MiB of heap; each site's SiteOptions.Cache sets its
// policy.
type CacheConfig struct {
	// Disabled proxies every request without the cache.
	Disabled bool
	// MaxBytes bounds the heap memory the cache holds, counted in real
	// bytes (bodies, header maps and strings, keys, bookkeeping and the
	// disk tier's index; see cache.Config.MaxBytes); 0 means
	// cache.DefaultMaxBytes (256 MiB). Every distinct URL of a storable
	// response takes room (about 2.5 KiB for a 700-byte page), so a load
	// of new query strings fills it. Under the default GOGC the process
	// heap can reach about twice the live memory: pair a large cache with
	// a soft memory limit (runtime/debug.SetMemoryLimit).
	MaxBytes int64
	// MaxObjectBytes is the largest response stored; 0 means
	// cache.DefaultMaxObjectBytes.
	MaxObjectBytes int64
	// Dir enables the disk tier in that directory (emptied at start);
	// MaxDiskBytes bounds it (0 means 4 × MaxBytes).
	Dir          string
	MaxDiskBytes int64
}

// SiteCache is a site's cache policy. The zero value follows the origin's
// Cache-Control with no default lifetime and no grace.
type SiteCache struct {
	// Disabled forwards every request of the site to its origins.
	Disabled bool
	// DefaultTTL is the lifetime given to cacheable responses without
	// explicit freshness (not to requests with Cookie or Authorization);
	// 0 means none (RFC 9111 heuristics only).
	DefaultTTL time.Duration
	// Grace is how long past freshness the last good copy is served when
	// the origins fail (down, 5xx): a disaster site stays readable.
	Grace time.Duration
	// HonorClientNoCache lets a client's no-cache / max-age=0 force a
	// revalidation (off: clients cannot push load to the origin).
	HonorClientNoCache bool
}

// SiteOptions are per-site options of the WAF. The zero value proxies both
// HTTP and HTTPS.
type SiteOptions struct {
	// RedirectHTTPS answers plain-HTTP requests with 308 to the same URL
	// over https (only on listeners started with Serve / ListenAndServe).
	RedirectHTTPS bool
	// HTTPSPort is the port put in redirects; 0 or 443 gives none.
	HTTPSPort int

	// Protect are the gateway protections (clickjacking, CSRF, cookies,
	// injection checks); the zero value turns them all on.
	Protect Protections
	// Limits override Config.Limits field by field for this site.
	Limits Limits
	// Access are the site's source address allow / deny lists.
	Access IPLists
	// PathAccess restricts paths to listed networks (e.g. /admin).
	PathAccess []AccessRule
	// Countries are the site's country rules (need Config.GeoIP).
	Countries CountryRules
	// Cache is the site's cache policy.
	Cache SiteCache
	// NoAdaptiveDDoS exempts the site from adaptive protection (the
	// per-client limits still apply).
	NoAdaptiveDDoS bool
	// OriginAuth proves to the site's origins that a request came
	// through the WAF (secret header, mTLS client certificate).
	OriginAuth OriginAuth
}

// Timeouts bound how long clients and origins may take.
type Timeouts struct {
	// ReadHeaderTimeout bounds reading a request head; 0 means
	// DefaultReadHeaderTimeout (10 s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included; 0 means
	// DefaultReadTimeout (60 s); negative means none.
	ReadTimeout time.Duration
	// IdleTimeout bounds a keep-alive connection's idle time between
	// requests; 0 means DefaultIdleTimeout (2 min).
	IdleTimeout time.Duration
	// MaxHeaderBytes caps the request head; 0 means DefaultMaxHeaderBytes
	// (64 KiB).
	MaxHeaderBytes int
	// OriginDial bounds connecting to an origin; 0 means
	// DefaultOriginDialTimeout (5 s).
	OriginDial time.Duration
	// OriginResponse bounds waiting for an origin's response head after
	// the request was written; 0 means DefaultOriginResponseTimeout (60 s).
	// Exceeding it gives 504.
	OriginResponse time.Duration
}

// OriginConfig tunes how origins are chosen and watched.
type OriginConfig struct {
	// Balance is the balancing method; the zero value is RoundRobin.
	Balance Balance
	// MaxFails consecutive failures (connection refused, reset, timeout
	// before a response) eject an origin for EjectFor; 0 means
	// DefaultMaxFails (3).
	MaxFails int
	// EjectFor is how long an ejected origin is skipped; 0 means
	// DefaultEjectFor (30 s).
	EjectFor time.Duration
	// HealthInterval is the period of active health checks; 0 means
	// DefaultHealthInterval (5 s); negative disables them.
	HealthInterval time.Duration
	// HealthTimeout bounds one health check; 0 means DefaultHealthTimeout.
	HealthTimeout time.Duration
	// HealthPath is the path requested by health checks (GET, with the
	// site's host as Host); "" means "/". A 2xx or 3xx answer is healthy.
	HealthPath string
	// TLS is the client configuration toward https:// origins; nil means
	// the system roots. It is cloned.
	TLS *tls.Config
	// SourceAddr, when set, is the local address connections to origins
	// are made from, so origins can allow exactly it.
	SourceAddr netip.Addr
	// Egress are further addresses origins must allow (e.g. the NAT
	// addresses of the appliance's uplink), published by EgressAddrs.
	Egress []netip.Addr
}

// TLSConfig tunes the HTTPS listener.
type TLSConfig struct {
	// CertCheckInterval is how often a site's certificate files are
	// stat'ed for changes (at handshake time, at most once per interval);
	// 0 means DefaultCertCheckInterval (2 s).
	CertCheckInterval time.Duration
	// MinVersion is the lowest TLS version accepted; 0 means TLS 1.2.
	MinVersion uint16
}

func (c *Config) defaults() error {
	var errs []error
	if c.Directory == nil {
		errs = append(errs, errors.New("waf: Config.Directory is required"))
	}
	if c.Sink == nil {
		c.Sink = detect.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	t := &c.Timeouts
	def(&t.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&t.ReadTimeout, DefaultReadTimeout)
	if t.ReadTimeout < 0 {
		t.ReadTimeout = 0
	}
	def(&t.IdleTimeout, DefaultIdleTimeout)
	def(&t.OriginDial, DefaultOriginDialTimeout)
	def(&t.OriginResponse, DefaultOriginResponseTimeout)
	if t.MaxHeaderBytes == 0 {
		t.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	for name, d := range map[string]time.Duration{"ReadHeaderTimeout": t.ReadHeaderTimeout, "IdleTimeout": t.IdleTimeout,
		"OriginDial": t.OriginDial, "OriginResponse": t.OriginResponse} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("waf: Config.Timeouts.%s is negative (%v)", name, d))
		}
	}
	if t.MaxHeaderBytes < 0 {
		errs = append(errs, fmt.Errorf("waf: Config.Timeouts.MaxHeaderBytes is negative (%d)", t.MaxHeaderBytes))
	}
	o := &c.Origins
	if o.Balance > LeastConn {
		errs = append(errs, fmt.Errorf("waf: Config.Origins.Balance: unknown method %d", o.Balance))
	}
	if o.MaxFails == 0 {
		o.MaxFails = DefaultMaxFails
	}
	if o.MaxFails < 0 {
		errs = append(errs, fmt.Errorf("waf: Config.Origins.MaxFails is negative (%d)", o.MaxFails))
	}
	def(&o.EjectFor, DefaultEjectFor)
	def(&o.HealthInterval, DefaultHealthInterval)
	def(&o.HealthTimeout, DefaultHealthTimeout)
	if o.HealthPath == "" {
		o.HealthPath = DefaultHealthPath
	}
	if !strings.HasPrefix(o.HealthPath, "/") {
		errs = append(errs, fmt.Errorf("waf: Config.Origins.HealthPath %q must start with '/'", o.HealthPath))
	}
	if o.TLS != nil {
		o.TLS = o.TLS.Clone()
	}
	def(&c.TLS.CertCheckInterval, DefaultCertCheckInterval)
	if c.TLS.MinVersion == 0 {
		c.TLS.MinVersion = tls.VersionTLS12
	}
	if err := c.Inspection.defaults(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Limits.validate("Config.Limits"); err != nil {
		errs = append(errs, err)
	}
	c.Limits.defaults(Limits{MaxURLBytes: DefaultMaxURLBytes, MaxHeaders: DefaultMaxHeaders,
		MaxHeaderBytes: DefaultMaxHeaderValue, MaxBodyBytes: DefaultMaxBodyBytes,
		MaxParams: DefaultMaxParams, MaxParamBytes: DefaultMaxParamBytes})
	if err := c.DDoS.defaults(); err != nil {
		errs = append(errs, err)
	}
	if c.Cache.MaxBytes < 0 || c.Cache.MaxObjectBytes < 0 || c.Cache.MaxDiskBytes < 0 {
		errs = append(errs, errors.New("waf: Config.Cache: negative size"))
	}
	sites := make(map[string]SiteOptions, len(c.Sites))
	for h, so := range c.Sites {
		k, err := normSiteKey(h)
		if err != nil {
			errs = append(errs, fmt.Errorf("waf: Config.Sites[%q]: %w", h, err))
		}
		if so.HTTPSPort < 0 || so.HTTPSPort > 65535 {
			errs = append(errs, fmt.Errorf("waf: Config.Sites[%q].HTTPSPort %d out of range", h, so.HTTPSPort))
		}
		if err := so.check(fmt.Sprintf("Config.Sites[%q]", h)); err != nil {
			errs = append(errs, err)
		}
		sites[k] = so
	}
	c.Sites = sites
	return errors.Join(errs...)
}

func def(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}
