package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/store"
	"github.com/jichitai/seccloud/ratelimit"
	"github.com/jichitai/seccloud/tenant"
)

// Incidents is what the console needs of the incident manager
// (*incident.Manager implements it).
type Incidents interface {
	List(f incident.Filter) []incident.Incident
	Get(id string) (incident.Incident, bool)
	Ack(id, by, channel, token, note string) error
	Note(id, by, text string) error
	SetState(id string, to incident.State, by, note string) error
	Record(id string, e incident.Entry) error
}

// Events is what the console needs of the event store (*store.Store
// implements it).
type Events interface {
	Query(ctx context.Context, f store.Filter, fn func(detect.Event) error) error
}

// Tenants gives the current tenant snapshot (*tenant.Live implements it).
type Tenants interface {
	Load() *tenant.Snapshot
}

// Component is the health of one part of the appliance, shown on the
// dashboard.
type Component struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	OK     bool   `json:"ok"`
}

// Timeline kinds the console adds to incidents besides notes.
const (
	KindContact  = "contact"  // a contact record: who was reached, how
	KindResponse = "response" // a response record: what was done
)

// Defaults of Config.
const (
	DefaultLockoutAfter = 5
	DefaultLockoutFor   = 15 * time.Minute
	DefaultLoginPerMin  = 20
	DefaultSessionIdle  = 30 * time.Minute
	DefaultSessionMax   = 12 * time.Hour
	DefaultEventLimit   = 500
	DefaultAddrLockout  = 20
	maxFormBytes        = 64 << 10
)

// Config configures a Console.
type Config struct {
	// Accounts are the logins. Required.
	Accounts *Accounts
	// Audit receives every login, logout, refusal and action. Required.
	Audit *Audit
	// Incidents is the incident manager. Required.
	Incidents Incidents
	// Tenants gives the tenant directory. Required.
	Tenants Tenants
	// Events is the event store; nil leaves the events search and the
	// dashboard counts out.
	Events Events
	// Quarantine is the mail quarantine; nil leaves the quarantine pages
	// and API out (404).
	Quarantine QuarantineStore
	// Reports makes the monthly reports; nil leaves the reports pages
	// and API out (404).
	Reports Reports
	// Requests stores inquiries and settings-change requests; nil leaves
	// the requests pages and API out (404).
	Requests *Requests
	// MaxUpload caps the files of one upload to a request; 0 means
	// DefaultMaxUpload (10 MiB). Larger uploads are refused (413) and
	// audited.
	MaxUpload int64
	// Mailer tells the other side about each filed or updated request; nil
	// sends no mail.
	Mailer Mailer
	// OperatorMail is the operators' address for tenants' request
	// updates; "" sends them none.
	OperatorMail string
	// BaseURL is the console's public URL ("https://soc.example.jp"),
	// for links in mails; "" leaves links out.
	BaseURL string
	// SiteTraffic gives the public sites' daily traffic; Purger empties
	// the CDN cache. With either set the sites page (/sites) is served;
	// the purge button and API need Purger.
	SiteTraffic SiteTraffic
	Purger      Purger
	// Counter gives the dashboard's counts from pre-aggregated rollups;
	// nil counts from Events (every event of the month is read).
	Counter Counter
	// SessionsPath is the file where sessions are kept across restarts
	// (written atomically on login, logout and at most once a minute per
	// session as it is used); "" keeps them in memory only.
	SessionsPath string
	// TrustProxy lists the addresses of reverse proxies in front of the
	// console: for a request from one of them, the client address (audit
	// log, login throttling) is the last X-Forwarded-For entry. Empty
	// means the TCP peer is the client.
	TrustProxy []netip.Prefix
	// AddrLockoutAfter is how many failed logins from one client address
	// (an IPv6 /64) block further logins from it, whatever the account;
	// 0 means DefaultAddrLockout (20). It unlocks like LockoutAfter, over
	// LockoutFor.
	AddrLockoutAfter int
	// Limiters makes the login lockouts and throttle (LoginLimiter); nil
	// keeps them in this process's memory. The appliance keeps them in
	// Redis (cluster.redis) so that an account locked on one node is
	// locked on every node.
	Limiters LimiterFactory
	// Health lists the appliance's components; nil shows none.
	Health func() []Component
	// Location is the time zone of "today" and "this month" and of the
	// times shown; nil means time.Local.
	Location *time.Location
	// SecureCookies marks cookies Secure even on plain HTTP (behind a
	// TLS-terminating proxy). Cookies are always Secure on TLS requests.
	SecureCookies bool
	// LockoutAfter is how many wrong passwords lock an account; 0 means
	// DefaultLockoutAfter (5). The account is locked for LockoutFor (0
	// means 15 min) and unlocks gradually (one more try every
	// LockoutFor/LockoutAfter).
	LockoutAfter int
	LockoutFor   time.Duration
	// LoginPerMinute throttles login attempts per client address; 0
	// means DefaultLoginPerMin (20).
	LoginPerMinute int
	// SessionIdle and SessionMax end sessions after inactivity and after
	// login; 0 means 30 min and 12 h.
	SessionIdle, SessionMax time.Duration
	// EventLimit caps the events one search shows (the newest); 0 means
	// 500.
	EventLimit int
	// Now gives the time; nil means time.Now.
	Now func() time.Time
	// Logger receives internal errors; nil discards.
	Logger *slog.Logger
}

// Console is the web console: server-rendered pages and the JSON API,
// behind one authorisation. Create it with New and serve Handler. Safe
// for concurrent use.
type Console struct {
	cfg     Config
	log     *slog.Logger
	fails   LoginLimiter
	perAddr LoginLimiter
	// addrFails is the failed-login bucket of each client address.
	addrFails LoginLimiter
	mailing   sync.WaitGroup // notification mails being sent
	mux       *http.ServeMux
	tmpl      *templates

	saveMu   sync.Mutex // serialises writes of Config.SessionsPath
	mu       sync.Mutex
	sessions map[string]*session // by sessionKey
	lastTOTP map[string]int64    // user → last TOTP step used (no replay)
	counts   map[string]countsCache
}

//go:embed templates/*.html static/*
var assets embed.FS

// New validates cfg and builds a Console.
func New(cfg Config) (*Console, error) {
	switch {
	case cfg.Accounts == nil:
		return nil, errors.New("console: Config.Accounts is required")
	case cfg.Audit == nil:
		return nil, errors.New("console: Config.Audit is required")
	case cfg.Incidents == nil:
		return nil, errors.New("console: Config.Incidents is required")
	case cfg.Tenants == nil:
		return nil, errors.New("console: Config.Tenants is required")
	case cfg.LockoutAfter < 0 || cfg.LockoutFor < 0 || cfg.LoginPerMinute < 0 || cfg.EventLimit < 0 ||
		cfg.MaxUpload < 0 || cfg.AddrLockoutAfter < 0:
		return nil, errors.New("console: Config: negative limit")
	}
	if cfg.LockoutAfter == 0 {
		cfg.LockoutAfter = DefaultLockoutAfter
	}
	if cfg.LockoutFor == 0 {
		cfg.LockoutFor = DefaultLockoutFor
	}
	if cfg.MaxUpload == 0 {
		cfg.MaxUpload = DefaultMaxUpload
	}
	if cfg.AddrLockoutAfter == 0 {
		cfg.AddrLockoutAfter = DefaultAddrLockout
	}
	if cfg.LoginPerMinute == 0 {
		cfg.LoginPerMinute = DefaultLoginPerMin
	}
	if cfg.SessionIdle == 0 {
		cfg.SessionIdle = DefaultSessionIdle
	}
	if cfg.SessionMax == 0 {
		cfg.SessionMax = DefaultSessionMax
	}
	if cfg.EventLimit == 0 {
		cfg.EventLimit = DefaultEventLimit
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{cfg: cfg, log: cfg.Logger, sessions: map[string]*session{}, lastTOTP: map[string]int64{}, counts: map[string]countsCache{}}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var err error
	// A failed login takes a token from the account's bucket; an empty
	// bucket is a locked account. It refills one try per
	// LockoutFor/LockoutAfter.
	c.fails, err = c.newLimiter(LimiterLockout, ratelimit.Every(cfg.LockoutFor/time.Duration(cfg.LockoutAfter)), cfg.LockoutAfter)
	if err != nil {
		return nil, fmt.Errorf("console: lockout: %w", err)
	}
	c.addrFails, err = c.newLimiter(LimiterAddrLockout, ratelimit.Every(cfg.LockoutFor/time.Duration(cfg.AddrLockoutAfter)), cfg.AddrLockoutAfter)
	if err != nil {
		return nil, fmt.Errorf("console: address lockout: %w", err)
	}
	if err := c.loadSessions(); err != nil {
		return nil, err
	}
	c.perAddr, err = c.newLimiter(LimiterLoginThrottle, float64(cfg.LoginPerMinute)/60, cfg.LoginPerMinute)
	if err != nil {
		return nil, fmt.Errorf("console: login throttle: %w", err)
	}
	if c.tmpl, err = parseTemplates(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

// Handler returns the console's http.Handler. Mount it at "/"; the paths
// it serves are listed in README.md and openapi.yaml.
func (c *Console) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		c.mux.ServeHTTP(w, r)
	})
}

// session is a logged-in browser or API client.
type session struct {
	id      string  // the cookie value; known only when the session is made
	key     string  // SHA-256 of the cookie value: the map and file key
	acct    Account // Hash and TOTP cleared
	csrf    string
	created time.Time
	seen    time.Time
	saved   time.Time // seen as last written to Config.SessionsPath
}

const (
	cookieSession = "sc_session"
	cookieLogin   = "sc_login" // CSRF token of the login form, before a session exists
	cookieLang    = "sc_lang"
)

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("console: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c *Console) secure(r *http.Request) bool { return c.cfg.SecureCookies || r.TLS != nil }

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode})
}

func (c *Console) newSession(acct Account) *session {
	acct.Hash, acct.TOTP = "", ""
	now := c.cfg.Now()
	id := randomToken()
	s := &session{id: id, key: sessionKey(id), acct: acct, csrf: randomToken(), created: now, seen: now, saved: now}
	c.mu.Lock()
	for k, old := range c.sessions { // sweep expired sessions
		if c.expired(old, now) {
			delete(c.sessions, k)
		}
	}
	c.sessions[s.key] = s
	c.mu.Unlock()
	c.saveSessions()
	return s
}

func (c *Console) expired(s *session, now time.Time) bool {
	return now.Sub(s.seen) > c.cfg.SessionIdle || now.Sub(s.created) > c.cfg.SessionMax
}

// sessionOf returns the request's live session: its account must still
// exist with the same tenant and role.
func (c *Console) sessionOf(r *http.Request) *session {
	ck, err := r.Cookie(cookieSession)
	if err != nil || ck.Value == "" {
		return nil
	}
	now := c.cfg.Now()
	key := sessionKey(ck.Value)
	c.mu.Lock()
	s, ok := c.sessions[key]
	expired := ok && c.expired(s, now)
	if expired {
		delete(c.sessions, key)
		ok = false
	}
	save := expired
	if ok {
		s.seen = now
		if now.Sub(s.saved) >= sessionSaveEvery {
			s.saved, save = now, true
		}
	}
	c.mu.Unlock()
	if save {
		c.saveSessions()
	}
	if !ok {
		return nil
	}
	acct, found := c.cfg.Accounts.lookup(s.acct.User)
	if !found || acct.Tenant != s.acct.Tenant || acct.Role != s.acct.Role {
		c.endSession(s.key)
		return nil
	}
	return s
}

func (c *Console) endSession(key string) {
	c.mu.Lock()
	delete(c.sessions, key)
	c.mu.Unlock()
	c.saveSessions()
}

func sameToken(a, b string) bool {
	return a != "" && len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// remote is the client address for the audit log and the throttle: the
// TCP peer, or the last X-Forwarded-For entry when the peer is a trusted
// proxy (Config.TrustProxy).
func (c *Console) remote(r *http.Request) string {
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		host = h
	}
	if len(c.cfg.TrustProxy) == 0 {
		return host
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	trusted := false
	for _, p := range c.cfg.TrustProxy {
		trusted = trusted || p.Contains(peer.Unmap())
	}
	if !trusted {
		return host
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return host
	}
	parts := strings.Split(xff[len(xff)-1], ",")
	if a, err := netip.ParseAddr(strings.TrimSpace(parts[len(parts)-1])); err == nil {
		return a.Unmap().String()
	}
	return host
}

// throttleKey is the key of a client address in the login throttles:
// the address, or its /64 for IPv6 (one host usually holds a whole /64).
func throttleKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Is4() || a.Is4In6() {
		return addr
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// audit appends to the audit log; a failing audit log is logged (the
// action already happened or was refused).
func (c *Console) audit(r *http.Request, s *session, action, target, outcome, detail string) {
	e := AuditEntry{Time: c.cfg.Now(), Remote: c.remote(r), Action: action, Target: target, Outcome: outcome, Detail: detail}
	if s != nil {
		e.User, e.Role, e.Tenant = s.acct.User, s.acct.Role, s.acct.Tenant
	}
	if err := c.cfg.Audit.Append(e); err != nil {
		c.log.Error("audit log write failed", "err", err, "action", action)
	}
}

// login checks a login attempt; it returns the account or a reason code
// (for the page) after auditing the attempt.
func (c *Console) login(r *http.Request, user, password, code string) (Account, string) {
	now := c.cfg.Now()
	addr := throttleKey(c.remote(r))
	user = strings.TrimSpace(strings.ToLower(user))
	fail := func(reason, detail string) (Account, string) {
		c.audit(r, &session{acct: Account{User: user}}, "login", user, "failure", detail)
		return Account{}, reason
	}
	if !c.perAddr.AllowN(now, addr, 1) {
		return fail("throttled", "too many attempts from this address")
	}
	if c.addrFails.Tokens(now, addr) < 1 {
		return fail("throttled", "address blocked after repeated failed logins")
	}
	if c.fails.Tokens(now, user) < 1 {
		return fail("locked", "account locked after repeated failures")
	}
	acct, ok := c.cfg.Accounts.Verify(user, password)
	if ok && acct.TOTP != "" {
		k, err := decodeTOTPSecret(acct.TOTP)
		step := int64(-1)
		if err == nil {
			step = totpMatch(k, code, now)
		}
		c.mu.Lock()
		replay := step >= 0 && step <= c.lastTOTP[user]
		if step >= 0 && !replay {
			c.lastTOTP[user] = step
		}
		c.mu.Unlock()
		if step < 0 || replay {
			c.fails.AllowN(now, user, 1)
			c.addrFails.AllowN(now, addr, 1)
			return fail("bad", "wrong, missing or reused TOTP code")
		}
	}
	if !ok {
		c.fails.AllowN(now, user, 1)
		c.addrFails.AllowN(now, addr, 1)
		if c.fails.Tokens(now, user) < 1 {
			return fail("locked", fmt.Sprintf("wrong password; account locked for %s", c.cfg.LockoutFor))
		}
		return fail("bad", "wrong user or password")
	}
	c.fails.Forget(user)
	return acct, ""
}
