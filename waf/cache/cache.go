package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the Config and Policy fields whose zero value means "the
// default".
const (
	DefaultMaxBytes          = 256 << 20
	DefaultMaxObjectBytes    = 8 << 20
	DefaultMaxHeuristic      = time.Hour
	DefaultRevalidateTimeout = 60 * time.Second
	DefaultName              = "seccloud"
	// uncacheableFor is how long a URL whose response was not storable is
	// fetched without coalescing (so a burst on a dynamic page is not
	// serialised behind one request).
	uncacheableFor = 10 * time.Second
	// maxUncacheable bounds the hit-for-pass set (URLs found not storable).
	maxUncacheable = 100_000
)

// Config configures a Cache. The zero value is a 256 MiB memory cache.
type Config struct {
	// MaxBytes bounds the heap memory the cache holds; 0 means
	// DefaultMaxBytes (256 MiB). It counts what is really allocated for
	// each stored response — body (by capacity), header map, names and
	// values, Vary values, key, index slot and bookkeeping, each rounded
	// up to the Go runtime's size class — so a cache of 8 MiB holds about
	// 8 MiB of live heap whether it stores a few large pages or many tiny
	// ones (TestMemoryBoundRealBytes). With Dir set, the disk tier's
	// index (about 300 bytes + the URL per file on disk) counts in it
	// too, and takes at most half of it: the oldest files are dropped
	// beyond that (TestDiskIndexBound). The least recently used
	// responses are evicted first. Not counted: responses being fetched
	// (at most MaxObjectBytes each) and the hit-for-pass set of URLs
	// found not storable (at most about 4 MB). Under the default GOGC the
	// process heap can reach about twice its live memory: bound the
	// process with runtime/debug.SetMemoryLimit (GOMEMLIMIT) too.
	MaxBytes int64
	// MaxObjectBytes is the largest body stored; larger responses are
	// passed through. 0 means DefaultMaxObjectBytes (8 MiB), capped at
	// MaxBytes/4.
	MaxObjectBytes int64
	// Dir, when set, is a directory for a second tier on disk: responses
	// evicted from memory are written there and read back on a memory
	// miss. It is created if missing and emptied by New (the tier does not
	// survive a restart). "" means memory only.
	Dir string
	// MaxDiskBytes bounds the disk tier's files; 0 means 4 × MaxBytes.
	// Its index in memory counts in MaxBytes (see there).
	MaxDiskBytes int64
	// MaxHeuristic caps the heuristic freshness given to responses with
	// Last-Modified and no explicit expiry (10 % of their age, RFC 9111
	// §4.2.2); 0 means DefaultMaxHeuristic (1 h).
	MaxHeuristic time.Duration
	// RevalidateTimeout bounds a background revalidation
	// (stale-while-revalidate); 0 means DefaultRevalidateTimeout (60 s).
	RevalidateTimeout time.Duration
	// Name is this cache's name in Cache-Status; "" means "seccloud".
	Name string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger logs background failures; nil discards.
	Logger *slog.Logger
}

// Policy is the operator's per-request (per-site) cache policy. The zero
// value follows RFC 9111 with no operator overrides.
type Policy struct {
	// Bypass forwards every request and stores nothing.
	Bypass bool
	// DefaultTTL, when positive, is the heuristic freshness lifetime given
	// to storable responses without explicit freshness (no max-age,
	// s-maxage or Expires) — many CMS pages carry none. It replaces the
	// Last-Modified heuristic. It is never applied when the request
	// carried Cookie or Authorization (a personalised page must not be
	// shared), nor to responses marked private, no-store or no-cache.
	DefaultTTL time.Duration
	// Grace is how long past its freshness a stored response is still
	// served when the origin cannot give a good answer (a transport error
	// or a 500/502/503/504) — the disaster site stays readable when all
	// origins are down. It is an operator override: it applies even to
	// responses with must-revalidate or s-maxage (the operator speaks for
	// the origin here), but never to no-store or private ones, which are
	// not stored at all. 0 means only the origin's stale-if-error.
	Grace time.Duration
	// HonorRequestNoCache makes a client's Cache-Control: no-cache or
	// max-age=0 force a revalidation with the origin. Off by default: on a
	// public site under attack, clients must not be able to push requests
	// through to the origin.
	HonorRequestNoCache bool
}

// Cache is a shared HTTP cache (RFC 9111) in front of an http.Handler
// that reaches the origin. It is safe for concurrent use. Close stops
// background revalidations.
type Cache struct {
	cfg  Config
	log  *slog.Logger
	name string

	mu      sync.Mutex
	m       map[string][]*entry // primary key -> variants
	head    *entry              // LRU: most recently used
	tail    *entry
	bytes   int64 // entrySize of the memory tier; with the disk index ≤ MaxBytes
	flights map[string]*flight
	reval   map[string]bool
	nocache map[uint64]time.Time // hit-for-pass: hash of the key -> until
	seed    maphash.Seed
	disk    *disk

	bg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc

	hits, misses, stores, evictions atomic.Int64
}

// New validates cfg and returns a Cache.
func New(cfg Config) (*Cache, error) {
	if cfg.MaxBytes < 0 || cfg.MaxObjectBytes < 0 || cfg.MaxDiskBytes < 0 {
		return nil, errors.New("cache: negative size in Config")
	}
	if cfg.MaxHeuristic < 0 || cfg.RevalidateTimeout < 0 {
		return nil, errors.New("cache: negative duration in Config")
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxObjectBytes == 0 {
		cfg.MaxObjectBytes = DefaultMaxObjectBytes
	}
	cfg.MaxObjectBytes = min(cfg.MaxObjectBytes, max(cfg.MaxBytes/4, 1))
	if cfg.MaxDiskBytes == 0 {
		cfg.MaxDiskBytes = 4 * cfg.MaxBytes
	}
	if cfg.MaxHeuristic == 0 {
		cfg.MaxHeuristic = DefaultMaxHeuristic
	}
	if cfg.RevalidateTimeout == 0 {
		cfg.RevalidateTimeout = DefaultRevalidateTimeout
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if strings.ContainsAny(cfg.Name, ",;=\" \r\n") {
		return nil, fmt.Errorf("cache: Config.Name %q is not a token", cfg.Name)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{cfg: cfg, log: cfg.Logger, name: cfg.Name, m: map[string][]*entry{},
		flights: map[string]*flight{}, reval: map[string]bool{}, nocache: map[uint64]time.Time{},
		seed: maphash.MakeSeed()}
	if cfg.Dir != "" {
		d, err := newDisk(cfg.Dir, cfg.MaxDiskBytes, cfg.MaxBytes/2)
		if err != nil {
			return nil, err
		}
		c.disk = d
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Close cancels background revalidations and waits for them.
func (c *Cache) Close() error {
	c.cancel()
	c.bg.Wait()
	return nil
}

// Status is what the cache did with a request.
type Status uint8

// The statuses, as reported in Result and in the event label "cache".
const (
	// Bypass: not a cacheable request (method, Range, Authorization,
	// policy); forwarded, nothing stored.
	Bypass Status = iota
	// Miss: nothing usable stored; forwarded.
	Miss
	// Hit: served from storage, fresh; not forwarded.
	Hit
	// Stale: served from storage past its freshness (stale-while-
	// revalidate, stale-if-error or grace; see Result.Detail).
	Stale
	// Revalidated: the stored response was validated with the origin
	// (304) and served.
	Revalidated
)

func (s Status) String() string {
	switch s {
	case Miss:
		return "miss"
	case Hit:
		return "hit"
	case Stale:
		return "stale"
	case Revalidated:
		return "revalidated"
	}
	return "bypass"
}

// Result describes how one request was served.
type Result struct {
	Status Status
	// Detail says why a stale copy was served: "stale-while-revalidate",
	// "stale-if-error" or "grace"; "collapsed" when the request waited
	// for another identical request's origin fetch.
	Detail string
	// Forwarded reports whether this request went to the origin (next was
	// called for it); FwdStatus is the status the origin path answered
	// (0 when not forwarded or no answer).
	Forwarded bool
	FwdStatus int
	// Stored reports whether the response was stored.
	Stored bool
}

// Key returns the primary cache key of r: scheme://host/path?query with
// the host lower-cased.
func Key(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + strings.ToLower(r.Host) + r.URL.RequestURI()
}

// Handler returns next behind the cache with policy p, for use alone.
func (c *Cache) Handler(next http.Handler, p Policy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.Serve(w, r, next, p) })
}

// Serve answers r from the cache or through next (the origin path),
// storing what may be stored, and adds a Cache-Status header (RFC 9211).
// next must not be used by the caller after Serve returns for requests it
// started in the background (stale-while-revalidate); those carry a
// context for which Background reports true.
func (c *Cache) Serve(w http.ResponseWriter, r *http.Request, next http.Handler, p Policy) Result {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return c.forwardUnsafe(w, r, next)
	}
	if p.Bypass || r.Header.Get("Range") != "" || r.Header.Get("Authorization") != "" {
		return c.bypass(w, r, next, "request")
	}
	reqCC := ParseCacheControl(r.Header["Cache-Control"])
	key := Key(r)
	for attempt := 0; ; attempt++ {
		now := c.cfg.Now()
		e, primaryFound := c.lookup(key, r)
		if e != nil {
			st := e.staleness(now)
			force := p.HonorRequestNoCache && (reqCC.NoCache || reqCC.MaxAge == 0)
			if st < 0 && !e.cc.NoCache && !force {
				c.hits.Add(1)
				res := Result{Status: Hit}
				detail := ""
				if attempt > 0 {
					res.Detail, detail = "collapsed", "; collapsed"
				}
				c.writeEntry(w, r, e, now, "hit; ttl="+ttl(-st)+detail)
				return res
			}
			if st >= 0 && !e.mustRevalidate() && !force && e.cc.StaleWhileRevalidate >= 0 &&
				st < secs(e.cc.StaleWhileRevalidate) {
				c.hits.Add(1)
				c.revalidateInBackground(key, r, next, p)
				c.writeEntry(w, r, e, now, "hit; ttl="+ttl(-st)+"; detail=stale-while-revalidate")
				return Result{Status: Stale, Detail: "stale-while-revalidate"}
			}
		}
		if reqCC.OnlyIfCached {
			http.Error(w, "not cached", http.StatusGatewayTimeout)
			return Result{Status: Miss}
		}
		// Coalesce identical misses: one leader fetches, the others wait
		// and look again.
		if attempt == 0 && !c.uncacheable(key, now) {
			f, leader := c.join(r.Method + " " + key)
			if !leader {
				select {
				case <-f.done:
					continue
				case <-r.Context().Done():
					return Result{Status: Miss}
				}
			}
			// A fetch may have finished between our lookup and join.
			if e2, _ := c.lookup(key, r); e2 != e {
				c.leave(r.Method+" "+key, f)
				continue
			}
			defer c.leave(r.Method+" "+key, f)
		}
		c.misses.Add(1)
		fwd := "uri-miss"
		if e != nil {
			fwd = "stale"
		} else if primaryFound {
			fwd = "vary-miss"
		}
		return c.fetch(w, r, next, p, key, e, fwd, false)
	}
}

// ServeStored answers r from storage only, never forwarding: a fresh
// copy, or a stale one within stale-while-revalidate, stale-if-error or
// p.Grace. It reports false (and writes nothing) when there is none. The
// WAF uses it to keep serving cached pages to clients it is throttling.
func (c *Cache) ServeStored(w http.ResponseWriter, r *http.Request, p Policy) (Result, bool) {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || p.Bypass ||
		r.Header.Get("Range") != "" || r.Header.Get("Authorization") != "" {
		return Result{}, false
	}
	now := c.cfg.Now()
	e, _ := c.lookup(Key(r), r)
	if e == nil {
		return Result{}, false
	}
	st := e.staleness(now)
	switch {
	case st < 0 && !e.cc.NoCache:
		c.hits.Add(1)
		c.writeEntry(w, r, e, now, "hit; ttl="+ttl(-st))
		return Result{Status: Hit}, true
	case st < max(secs(e.cc.StaleWhileRevalidate), secs(e.cc.StaleIfError)) && !e.mustRevalidate(),
		st < p.Grace:
		c.hits.Add(1)
		c.writeEntry(w, r, e, now, "hit; ttl="+ttl(-st)+"; detail=stored-only")
		return Result{Status: Stale, Detail: "stored-only"}, true
	}
	return Result{}, false
}

func ttl(d time.Duration) string {
	return strconv.FormatInt(int64(d/time.Second), 10)
}

func (c *Cache) bypass(w http.ResponseWriter, r *http.Request, next http.Handler, why string) Result {
	w.Header().Add("Cache-Status", c.name+"; fwd=bypass; detail="+why)
	sw := &statusWriter{ResponseWriter: w}
	next.ServeHTTP(sw, r)
	return Result{Status: Bypass, Forwarded: true, FwdStatus: sw.code}
}

// forwardUnsafe forwards a non-GET/HEAD request and, when it succeeded
// (2xx/3xx), invalidates the stored responses of its URL (RFC 9111 §4.4).
func (c *Cache) forwardUnsafe(w http.ResponseWriter, r *http.Request, next http.Handler) Result {
	res := c.bypass(w, r, next, "method")
	if res.FwdStatus >= 200 && res.FwdStatus < 400 {
		c.invalidate(Key(r))
	}
	return res
}

// statusWriter remembers the status written through it.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeEntry answers r with e, adding Age and Cache-Status.
func (c *Cache) writeEntry(w http.ResponseWriter, r *http.Request, e *entry, now time.Time, status string) {
	h := w.Header()
	for k, v := range e.header {
		h[k] = slices.Clip(v) // appends by later writers must not touch the entry
	}
	h.Set("Age", strconv.FormatInt(int64(max(e.currentAge(now), 0)/time.Second), 10))
	h.Add("Cache-Status", c.name+"; "+status)
	if notModified(r, e) {
		for _, k := range []string{"Content-Length", "Content-Type", "Content-Encoding", "Content-Range", "Trailer", "Transfer-Encoding"} {
			h.Del(k)
		}
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if e.status == http.StatusOK || len(e.body) > 0 {
		h.Set("Content-Length", strconv.Itoa(len(e.body)))
	}
	w.WriteHeader(e.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(e.body)
	}
}

// flight is an origin fetch that identical requests wait for.
type flight struct{ done chan struct{} }

func (c *Cache) join(k string) (*flight, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.flights[k]; ok {
		return f, false
	}
	f := &flight{done: make(chan struct{})}
	c.flights[k] = f
	return f, true
}

func (c *Cache) leave(k string, f *flight) {
	c.mu.Lock()
	if c.flights[k] == f {
		delete(c.flights, k)
	}
	c.mu.Unlock()
	close(f.done)
}

func (c *Cache) uncacheable(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := maphash.String(c.seed, key)
	until, ok := c.nocache[h]
	if ok && now.After(until) {
		delete(c.nocache, h)
		return false
	}
	return ok
}

func (c *Cache) markUncacheable(key string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Bound: forget them all. Keys are kept as 64-bit hashes, so this is
	// at most about 4 MB whatever the URLs' length; a collision only
	// means one URL is fetched without coalescing for a while.
	if len(c.nocache) >= maxUncacheable {
		clear(c.nocache)
	}
	c.nocache[maphash.String(c.seed, key)] = now.Add(uncacheableFor)
}

type bgKey struct{}

// Background reports whether ctx belongs to a request the cache sent on
// its own (a stale-while-revalidate revalidation), not a client's.
func Background(ctx context.Context) bool { return ctx.Value(bgKey{}) != nil }

func (c *Cache) revalidateInBackground(key string, r *http.Request, next http.Handler, p Policy) {
	c.mu.Lock()
	if c.reval[key] || c.ctx.Err() != nil {
		c.mu.Unlock()
		return
	}
	c.reval[key] = true
	c.bg.Add(1)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithValue(context.WithoutCancel(r.Context()), bgKey{}, true), c.cfg.RevalidateTimeout)
	stop := context.AfterFunc(c.ctx, cancel)
	r2 := r.Clone(ctx)
	r2.Method = http.MethodGet
	r2.Body = http.NoBody
	go func() {
		defer func() {
			stop()
			cancel()
			c.mu.Lock()
			delete(c.reval, key)
			c.mu.Unlock()
			c.bg.Done()
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				c.log.Error("cache: background revalidation panicked", "key", key, "panic", v)
			}
		}()
		e, _ := c.lookup(key, r2)
		c.fetch(discardWriter{h: http.Header{}}, r2, next, p, key, e, "stale", true)
	}()
}

// discardWriter is the client of a background revalidation.
type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}
