package waf

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/ratelimit"
)

// DDoSConfig configures layer-7 DDoS protection (issue 7 part 5). The
// zero value turns it on with the defaults below. Refused requests get
// 429 with Retry-After; refused connections are closed at once; each is
// an event with action "drop".
type DDoSConfig struct {
	// Disabled turns every limit below off.
	Disabled bool
	// ClientRate is the sustained requests per second allowed to one
	// client address over all sites; 0 means DefaultClientRate (50).
	ClientRate float64
	// ClientBurst is the burst above ClientRate; 0 means
	// DefaultClientBurst (200). Size both for offices behind one NAT.
	ClientBurst int
	// ClientInFlight caps one client address's requests in progress; 0
	// means DefaultClientInFlight (64).
	ClientInFlight int
	// ConnsPerSource caps the open connections of one source address on
	// each listener; 0 means DefaultConnsPerSource (256).
	ConnsPerSource int
	// AdaptiveFactor: a site enters protection when its request rate
	// exceeds AdaptiveFactor × its learned baseline (at least
	// AdaptiveMinRate); 0 means DefaultAdaptiveFactor (4). In protection,
	// the site's capacity (factor × baseline) is shared max-min fairly
	// among its clients of the last window; clients above their share
	// get 429 for what is not in the cache, while cached pages are still
	// served to everyone.
	AdaptiveFactor float64
	// AdaptiveMinRate is the baseline floor in requests per second; a
	// site below AdaptiveFactor × AdaptiveMinRate is never in protection;
	// 0 means DefaultAdaptiveMinRate (20).
	AdaptiveMinRate float64
	// MinClientShare is the fewest requests per AdaptiveWindow a client
	// is always allowed in protection, whatever its computed share (a
	// person loading a page and its assets); 0 means
	// DefaultMinClientShare (2).
	MinClientShare float64
	// AdaptiveWindow is the measuring window; 0 means 1 s.
	AdaptiveWindow time.Duration
	// BaselineHalfLife is how fast the baseline follows the site's
	// normal rate (exponential average; frozen while in protection); 0
	// means DefaultBaselineHalfLife (10 min).
	BaselineHalfLife time.Duration
	// MaxClients bounds the client addresses remembered by each limiter
	// and per site; 0 means 65536. In protection, clients beyond it are
	// treated as above their share.
	MaxClients int
	// Exempt are source networks never limited (monitoring, the
	// municipalities' own offices).
	Exempt []netip.Prefix
	// NoChallenge answers clients over their fair share during adaptive
	// protection with a bare 429. By default a GET or HEAD from such a
	// client gets a JavaScript-free cookie challenge instead (challenge.go):
	// a 303 back to the same URL setting a signed cookie bound to the
	// client address and site; a client that comes back with it (a
	// browser) is let through for ChallengeTTL, within the per-client rate
	// and concurrency limits, while tools that ignore cookies keep getting
	// the cheap 303.
	NoChallenge bool
	// ChallengeKey signs the challenge cookies (at least 16 bytes); give
	// every node behind one load balancer the same key. Empty means a
	// random key per process (cookies then fail after a restart and on
	// other nodes; the appliance keeps its key in a file,
	// waf.ddos.challenge_key_file).
	ChallengeKey []byte
	// ChallengeWork, when > 0, turns the cookie challenge into a
	// JavaScript proof of work: the page (503, never cached) carries a
	// signed seed, and the browser must find a number whose SHA-256 with
	// the seed starts with ChallengeWork zero bits before its cookie is
	// accepted, so a tool that keeps cookies but runs no JavaScript — or
	// runs it at flood rates — stays out. 16 is about 65,000 hashes, a
	// fraction of a second in a browser; at most 24. 0 (default) keeps
	// the JavaScript-free cookie challenge.
	ChallengeWork int
	// ChallengeTTL is how long a passed challenge counts; 0 means
	// DefaultChallengeTTL (10 min).
	ChallengeTTL time.Duration
	// Shared, when not nil, decides the per-client rate (ClientRate,
	// ClientBurst) instead of this process's own limiter, with the client
	// address as the key: a ratelimit.Shared on a RedisStore makes every
	// node behind a load balancer enforce one limit together. Its Limit
	// should be ClientRate and ClientBurst. Each request then costs one
	// store round trip; a store that does not answer degrades to local
	// limits inside ratelimit.Shared. Nil keeps the limit in process.
	Shared ClientLimiter
	// GlobalInFlight caps the requests the whole gateway inspects and
	// forwards at once, across all sites, so that under global overload
	// the disaster-information sites (tenant.Site.Disaster) keep being
	// served: other sites may hold at most (1 − DisasterReserve) of the
	// slots, a disaster site every one. Over its cap a request gets the
	// site's stored copy from the CDN cache when there is one, else 503
	// with Retry-After (rule waf-overload, action drop). Exempt sources
	// count too. 0 (default) means no cap.
	GlobalInFlight int
	// DisasterReserve is the share of GlobalInFlight only disaster sites
	// may use; 0 means DefaultDisasterReserve (0.25). Below 1.
	DisasterReserve float64
}

// ClientLimiter decides a keyed rate limit outside the process;
// *ratelimit.Shared implements it. Implementations must be safe for
// concurrent use and must not block for long.
type ClientLimiter interface {
	Allow(ctx context.Context, key string) ratelimit.Result
}

// Defaults of DDoSConfig.
const (
	DefaultClientRate       = 50
	DefaultClientBurst      = 200
	DefaultClientInFlight   = 64
	DefaultConnsPerSource   = 256
	DefaultAdaptiveFactor   = 4
	DefaultAdaptiveMinRate  = 20
	DefaultMinClientShare   = 2
	DefaultBaselineHalfLife = 10 * time.Minute
	DefaultDisasterReserve  = 0.25
)

func (c *DDoSConfig) defaults() error {
	if c.ClientRate == 0 {
		c.ClientRate = DefaultClientRate
	}
	if c.ClientBurst == 0 {
		c.ClientBurst = DefaultClientBurst
	}
	if c.ClientInFlight == 0 {
		c.ClientInFlight = DefaultClientInFlight
	}
	if c.ConnsPerSource == 0 {
		c.ConnsPerSource = DefaultConnsPerSource
	}
	if c.AdaptiveFactor == 0 {
		c.AdaptiveFactor = DefaultAdaptiveFactor
	}
	if c.AdaptiveMinRate == 0 {
		c.AdaptiveMinRate = DefaultAdaptiveMinRate
	}
	if c.MinClientShare == 0 {
		c.MinClientShare = DefaultMinClientShare
	}
	if c.AdaptiveWindow == 0 {
		c.AdaptiveWindow = time.Second
	}
	if c.BaselineHalfLife == 0 {
		c.BaselineHalfLife = DefaultBaselineHalfLife
	}
	if c.MaxClients == 0 {
		c.MaxClients = 1 << 16
	}
	if c.DisasterReserve == 0 {
		c.DisasterReserve = DefaultDisasterReserve
	}
	if c.GlobalInFlight < 0 || c.DisasterReserve < 0 || c.DisasterReserve >= 1 {
		return fmt.Errorf("waf: Config.DDoS: GlobalInFlight %d must not be negative and DisasterReserve %g must be in [0, 1)", c.GlobalInFlight, c.DisasterReserve)
	}
	if c.ClientRate < 0 || c.ClientBurst < 0 || c.ClientInFlight < 0 || c.ConnsPerSource < 0 ||
		c.AdaptiveFactor < 1 || c.AdaptiveMinRate < 0 || c.MinClientShare < 0 || c.AdaptiveWindow < 0 || c.BaselineHalfLife < 0 || c.MaxClients < 0 {
		return fmt.Errorf("waf: Config.DDoS: negative value or AdaptiveFactor < 1 (%+v)", *c)
	}
	return nil
}

// ddos holds the limiters.
type ddos struct {
	cfg  DDoSConfig
	now  func() time.Time
	rate *ratelimit.Keyed[netip.Addr]
	conc *ratelimit.Concurrency[netip.Addr]

	mu    sync.Mutex
	sites map[string]*siteLoad
}

func newDDoS(cfg DDoSConfig, now func() time.Time) (*ddos, error) {
	d := &ddos{cfg: cfg, now: now, sites: map[string]*siteLoad{}}
	if cfg.Disabled {
		return d, nil
	}
	var err error
	d.rate, err = ratelimit.NewKeyed[netip.Addr](ratelimit.KeyedConfig{Rate: cfg.ClientRate, Burst: cfg.ClientBurst, MaxKeys: cfg.MaxClients, Now: now})
	if err != nil {
		return nil, fmt.Errorf("waf: Config.DDoS: %w", err)
	}
	d.conc, err = ratelimit.NewConcurrency[netip.Addr](ratelimit.ConcurrencyConfig{MaxInFlight: cfg.ClientInFlight, MaxKeys: cfg.MaxClients})
	if err != nil {
		return nil, fmt.Errorf("waf: Config.DDoS: %w", err)
	}
	return d, nil
}

func (d *ddos) allowRate(client netip.Addr) bool {
	if d.cfg.Shared != nil {
		return d.cfg.Shared.Allow(context.Background(), client.String()).Allowed
	}
	return d.rate.Allow(client)
}

// ddosVerdict is the outcome of the DDoS checks for one request.
type ddosVerdict struct {
	rule, reason string
	// adaptive: over the fair share while the site is in protection; the
	// request may still be answered from the cache.
	adaptive bool
}

func (d *ddos) exempt(a netip.Addr) bool {
	return prefixesContain(d.cfg.Exempt, a)
}

// admit applies the per-client rate, concurrency and the site's adaptive
// protection. On success it returns a release func to call when the
// request is done.
func (d *ddos) admit(site string, client netip.Addr, siteOff bool) (release func(), v *ddosVerdict) {
	if d.cfg.Disabled || !client.IsValid() || d.exempt(client) {
		return func() {}, nil
	}
	if !d.allowRate(client) {
		return nil, &ddosVerdict{rule: "waf-ddos-client-rate", reason: fmt.Sprintf("client above %g requests/s (burst %d)", d.cfg.ClientRate, d.cfg.ClientBurst)}
	}
	if !d.conc.TryAcquire(client) {
		return nil, &ddosVerdict{rule: "waf-ddos-client-concurrency", reason: fmt.Sprintf("client has %d requests in progress", d.cfg.ClientInFlight)}
	}
	release = func() { d.conc.Release(client) }
	if !siteOff {
		if over, why := d.site(site).hit(client, d.now(), &d.cfg); over {
			return release, &ddosVerdict{rule: "waf-ddos-adaptive", reason: why, adaptive: true}
		}
	}
	return release, nil
}

func (d *ddos) site(host string) *siteLoad {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sites[host]
	if s == nil {
		s = &siteLoad{clients: map[netip.Addr]int32{}}
		d.sites[host] = s
	}
	return s
}

// siteLoad is a site's adaptive protection state.
type siteLoad struct {
	mu       sync.Mutex
	winStart time.Time
	count    int64
	clients  map[netip.Addr]int32 // requests in the current window
	baseline float64              // learned normal rate, requests/s
	attack   bool
	level    float64 // allowed requests per client per window in protection
}

// count records one request of client at now and reports whether it is
// over the client's fair share while the site is in protection.
func (s *siteLoad) hit(client netip.Addr, now time.Time, cfg *DDoSConfig) (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.winStart.IsZero() {
		s.winStart = now
	}
	if el := now.Sub(s.winStart); el >= cfg.AdaptiveWindow {
		s.rollover(el, cfg)
		s.winStart = now
	}
	s.count++
	n, ok := s.clients[client]
	if !ok && len(s.clients) >= cfg.MaxClients {
		return s.attack, "site in protection; client table full"
	}
	n++
	s.clients[client] = n
	if s.attack && float64(n) > s.level {
		return true, fmt.Sprintf("site in protection (baseline %.1f req/s); client above its fair share of %.1f requests per %v",
			s.baseline, s.level, cfg.AdaptiveWindow)
	}
	return false, ""
}

// rollover ends a window of length el: updates the baseline, the
// protection state and the fair share for the next window.
func (s *siteLoad) rollover(el time.Duration, cfg *DDoSConfig) {
	rate := float64(s.count) / el.Seconds()
	base := max(s.baseline, cfg.AdaptiveMinRate)
	s.attack = rate > cfg.AdaptiveFactor*base
	if !s.attack {
		a := 1 - math.Exp(-el.Seconds()*math.Ln2/cfg.BaselineHalfLife.Seconds())
		s.baseline += a * (rate - s.baseline)
	} else {
		capacity := cfg.AdaptiveFactor * base * cfg.AdaptiveWindow.Seconds()
		demands := make([]float64, 0, len(s.clients))
		for _, n := range s.clients {
			demands = append(demands, float64(n)*cfg.AdaptiveWindow.Seconds()/el.Seconds())
		}
		s.level = max(waterLevel(demands, capacity), cfg.MinClientShare)
	}
	s.count = 0
	clear(s.clients)
}

// waterLevel returns the max-min fair share of capacity among demands:
// the level L with sum(min(d, L)) = capacity, or +Inf when every demand
// fits.
func waterLevel(demands []float64, capacity float64) float64 {
	slices.Sort(demands)
	left := capacity
	for i, d := range demands {
		share := left / float64(len(demands)-i)
		if d > share {
			return share
		}
		left -= d
	}
	return math.Inf(1)
}

// connLimiter caps the open connections per source address of a
// listener.
type connLimiter struct {
	net.Listener
	s   *Server
	max int

	mu sync.Mutex
	n  map[netip.Addr]int
}

func (s *Server) limitConns(l net.Listener) net.Listener {
	if s.ddos.cfg.Disabled {
		return l
	}
	return &connLimiter{Listener: l, s: s, max: s.ddos.cfg.ConnsPerSource, n: map[netip.Addr]int{}}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, perr := netip.ParseAddrPort(c.RemoteAddr().String())
		a := ap.Addr().Unmap()
		if perr != nil || l.s.ddos.exempt(a) {
			return c, nil
		}
		l.mu.Lock()
		over := l.n[a] >= l.max
		if !over {
			l.n[a]++
		}
		l.mu.Unlock()
		if over {
			c.Close()
			l.s.connDropped(netip.AddrPortFrom(a, ap.Port()), l.max)
			continue
		}
		return &limitedConn{Conn: c, release: func() {
			l.mu.Lock()
			if l.n[a]--; l.n[a] <= 0 {
				delete(l.n, a)
			}
			l.mu.Unlock()
		}}, nil
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// connDropped emits the event of a refused connection.
func (s *Server) connDropped(client netip.AddrPort, max int) {
	s.droppedConns.Add(1)
	s.cfg.Sink.Emit(detect.Event{
		Time: s.cfg.Now(), Module: "waf", Dataset: "waf.access", Category: "network", Type: "denied",
		Action: "connection", Outcome: "failure", Client: client,
		Verdict: detect.Verdict{Action: detect.ActionDrop, Rule: "waf-ddos-conn-limit",
			Reason: fmt.Sprintf("source has %d connections open", max)},
		Message: "connection refused: too many connections from this source",
	})
}
