package dnsres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/dnsres/internal/wire"
	"github.com/jichitai/seccloud/tenant"
)

// Question is what a Resolver is asked.
type Question struct {
	// Name is the lower-cased, fully qualified name ("www.example.jp.").
	Name string
	// Type and Class of the question.
	Type, Class uint16
	// DO and CD are the client's DNSSEC OK and checking-disabled bits.
	DO, CD bool
	// Tenant is the tenant of the client whose query started the
	// resolution (several clients may share its answer).
	Tenant *tenant.Tenant
}

// Resolver finds the answer to a question, from upstream forwarders
// ([Forwarder]) or by iterating from the root ([Recursor]). The response's
// Rcode, Answer, Ns and Extra sections are used; header bits and the
// question are the caller's. Resolve is called from its own goroutine and
// may block until ctx is done. Implementations must be safe for concurrent
// use.
type Resolver interface {
	Resolve(ctx context.Context, q Question) (*dns.Msg, error)
}

// ResolverFunc adapts a function to a Resolver.
type ResolverFunc func(ctx context.Context, q Question) (*dns.Msg, error)

// Resolve calls f(ctx, q).
func (f ResolverFunc) Resolve(ctx context.Context, q Question) (*dns.Msg, error) { return f(ctx, q) }

// Defaults of CacheConfig.
const (
	DefaultCacheBytes     = 64 << 20
	DefaultMaxTTL         = 24 * time.Hour
	DefaultNegativeMaxTTL = time.Hour
	DefaultStaleTTL       = 24 * time.Hour
	// DefaultStaleAnswerTimeout is RFC 8767's recommended client response
	// timer.
	DefaultStaleAnswerTimeout = 1800 * time.Millisecond
	DefaultStaleAnswerTTL     = 30 * time.Second
	DefaultResolveTimeout     = 5 * time.Second
	cacheShards               = 64
	minPrefetchTTL            = 10 * time.Second
	prefetchFraction          = 10 // prefetch in the last 1/10 of the TTL
	defaultCacheUDPSize       = DefaultUDPSize
	maxStoredMessage          = 65535
	staleRecheck              = 30 * time.Second // RFC 8767 failure recheck timer
	workerIdle                = 5 * time.Second
)

// CacheConfig configures a Cache. Resolver is required; every other zero
// value selects the documented default.
type CacheConfig struct {
	// Resolver answers cache misses. Required.
	Resolver Resolver
	// MaxBytes bounds the heap the entries hold, as accounted per entry:
	// its two allocations rounded up to Go's size classes, its share of
	// the map and, once the entry has been hit, its query-log data (about
	// 140 bytes for a one-record A answer, 280 once hit; see the README).
	// Zero means DefaultCacheBytes (64 MiB). When it is reached, entries
	// are evicted at random, expired ones first within the sample.
	MaxBytes int64
	// MinTTL and MaxTTL clamp the TTL of positive answers; zero MaxTTL
	// means DefaultMaxTTL (1 day). MinTTL zero means no floor.
	MinTTL, MaxTTL time.Duration
	// NegativeMaxTTL caps the TTL of NXDOMAIN and NODATA answers, which is
	// otherwise min(SOA TTL, SOA MINIMUM) per RFC 2308; zero means
	// DefaultNegativeMaxTTL (1 hour). Negative answers without an SOA are
	// not cached.
	NegativeMaxTTL time.Duration
	// StaleTTL is how long past expiry an entry is kept to answer when the
	// resolver fails (serve-stale, RFC 8767); zero means DefaultStaleTTL
	// (1 day), negative disables serve-stale.
	StaleTTL time.Duration
	// StaleAnswerTTL is the TTL of stale answers; zero means
	// DefaultStaleAnswerTTL (30 s, RFC 8767).
	StaleAnswerTTL time.Duration
	// StaleAnswerTimeout is RFC 8767's client response timer: a client
	// asking for an expired (still stale-usable) entry whose refresh has
	// not ended after this long gets the stale answer; the refresh goes on
	// and fills the cache. Zero means DefaultStaleAnswerTimeout (1.8 s);
	// negative waits for the refresh (stale only when it fails).
	StaleAnswerTimeout time.Duration
	// ResolveTimeout bounds one resolution; zero means
	// DefaultResolveTimeout (5 s).
	ResolveTimeout time.Duration
	// NoPrefetch turns off the refresh of entries used in the last tenth
	// of their TTL (for TTLs of at least 10 s).
	NoPrefetch bool
	// Now is the clock for expiry; nil means time.Now. Queries carry their
	// own receive time (Request.Start), which the cache uses for them.
	Now func() time.Time
}

// CacheStats are counters of a Cache.
type CacheStats struct {
	Hits, Misses, Stale, Coalesced, Prefetches, Evictions uint64
	// ResolveErrors counts resolutions that failed (error or SERVFAIL).
	ResolveErrors uint64
	// Entries and Bytes are the current size.
	Entries, Bytes int64
}

// Cache is the terminal handler of a resolver chain: it answers from a
// sharded in-memory cache of packed responses, and sends misses to its
// Resolver — one resolution per question however many clients ask at once
// (request coalescing), answering every waiting client when it ends.
//
// A hit does not unpack anything: the cached response's wire bytes are
// copied, the ID, flags, question case and TTLs patched, the OPT record
// appended when the query had one. Positive answers are cached for their
// smallest TTL, negative ones (NXDOMAIN, NODATA) per RFC 2308; expired
// entries are kept StaleTTL longer to answer with when the resolver
// fails (RFC 8767). Popular entries are refreshed shortly before they
// expire.
//
// Create it with NewCache; it is safe for concurrent use. Close stops the
// resolutions in flight.
type Cache struct {
	cfg    CacheConfig
	now    func() time.Time
	seed   maphash.Seed
	shards [cacheShards]cacheShard
	budget int64 // bytes per shard

	fmu     sync.Mutex
	flights map[string]*flight
	work    chan resolveJob // idle workers wait here

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	hits, misses, stale, coalesced, prefetches, evictions, resolveErrors atomic.Uint64
}

// cacheShard is one of the cache's shards: a map from the 64-bit hash of
// a question's key to its entry (the entry holds the key itself, see
// entry.matches; two keys of one hash share a slot, the later replacing
// the earlier).
type cacheShard struct {
	mu    sync.RWMutex
	m     map[uint64]*entry
	bytes atomic.Int64 // written under mu (read lock for query-log data)
	_     [32]byte     // keep shards' locks on separate cache lines
}

// flight is one resolution in progress and the queries waiting for it.
type flight struct {
	waiters     []waiter
	stale       *entry
	done        bool        // resolve has taken the waiters
	staleServed bool        // the client response timer fired: waiters get stale
	timer       *time.Timer // the client response timer, if any
}

type waiter struct {
	w ResponseWriter
	r *Request
}

var _ Handler = (*Cache)(nil)

// NewCache validates cfg and returns a Cache.
func NewCache(cfg CacheConfig) (*Cache, error) {
	if cfg.Resolver == nil {
		return nil, errors.New("dnsres: CacheConfig.Resolver is required")
	}
	if cfg.MaxBytes < 0 || cfg.MinTTL < 0 || cfg.MaxTTL < 0 || cfg.NegativeMaxTTL < 0 || cfg.StaleAnswerTTL < 0 || cfg.ResolveTimeout < 0 {
		return nil, errors.New("dnsres: CacheConfig: sizes and durations must not be negative (except StaleTTL)")
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultCacheBytes
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.MinTTL > cfg.MaxTTL {
		return nil, fmt.Errorf("dnsres: CacheConfig.MinTTL %v exceeds MaxTTL %v", cfg.MinTTL, cfg.MaxTTL)
	}
	if cfg.NegativeMaxTTL == 0 {
		cfg.NegativeMaxTTL = DefaultNegativeMaxTTL
	}
	if cfg.StaleTTL == 0 {
		cfg.StaleTTL = DefaultStaleTTL
	} else if cfg.StaleTTL < 0 {
		cfg.StaleTTL = 0
	}
	if cfg.StaleAnswerTTL == 0 {
		cfg.StaleAnswerTTL = DefaultStaleAnswerTTL
	}
	if cfg.StaleAnswerTimeout == 0 {
		cfg.StaleAnswerTimeout = DefaultStaleAnswerTimeout
	}
	if cfg.ResolveTimeout == 0 {
		cfg.ResolveTimeout = DefaultResolveTimeout
	}
	c := &Cache{cfg: cfg, now: cfg.Now, seed: maphash.MakeSeed(), flights: make(map[string]*flight), work: make(chan resolveJob)}
	if c.now == nil {
		c.now = time.Now
	}
	c.budget = cfg.MaxBytes / cacheShards
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*entry)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Close cancels the resolutions in flight and waits for them to end.
func (c *Cache) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	s := CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Stale: c.stale.Load(), Coalesced: c.coalesced.Load(),
		Prefetches: c.prefetches.Load(), Evictions: c.evictions.Load(), ResolveErrors: c.resolveErrors.Load()}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		s.Entries += int64(len(sh.m))
		s.Bytes += sh.bytes.Load()
		sh.mu.RUnlock()
	}
	return s
}

func (c *Cache) shard(h uint64) *cacheShard {
	return &c.shards[h%cacheShards]
}

// get returns the entry of key, or nil.
func (c *Cache) get(key []byte) *entry {
	e, _ := c.lookup(key, 0, false)
	return e
}

// lookup returns the entry of key, or nil. With hit, and when the entry
// has not expired at now, it also returns the entry's query-log data,
// building it on the entry's first hit (under the shard's read lock, so
// that the shard's byte count stays exact: evictions hold the write
// lock).
func (c *Cache) lookup(key []byte, now int64, hit bool) (*entry, *logData) {
	h := maphash.Bytes(c.seed, key)
	sh := c.shard(h)
	sh.mu.RLock()
	e := sh.m[h]
	var ld *logData
	if e != nil {
		if !e.matches(key) {
			e = nil // another key of the same hash
		} else if hit && now < e.expires() {
			if ld = e.logd.Load(); ld == nil {
				ld = e.buildLog()
				if e.logd.CompareAndSwap(nil, ld) {
					sh.bytes.Add(ld.size())
				} else {
					ld = e.logd.Load()
				}
			}
		}
	}
	sh.mu.RUnlock()
	return e, ld
}

// logFor returns e's query-log data without attaching it to e.
func logFor(e *entry) *logData {
	if ld := e.logd.Load(); ld != nil {
		return ld
	}
	return e.buildLog()
}

// staleEnd is when e can no longer be served stale, in unix nanoseconds.
func (c *Cache) staleEnd(e *entry) int64 { return e.expires() + int64(c.cfg.StaleTTL) }

// ServeDNS answers r from the cache, or joins or starts its resolution.
func (c *Cache) ServeDNS(ctx context.Context, w ResponseWriter, r *Request) (int, error) {
	now := r.Start.UnixNano()
	if r.Start.IsZero() {
		now = c.now().UnixNano()
	}
	e, ld := c.lookup(r.key, now, true)
	if e != nil {
		exp := e.expires()
		if now < exp {
			c.hits.Add(1)
			if ttl := e.ttl(); !c.cfg.NoPrefetch && ttl >= uint32(minPrefetchTTL/time.Second) &&
				now >= exp-int64(ttl)*int64(time.Second)/prefetchFraction && e.startPrefetch() {
				c.prefetches.Add(1)
				c.join(nil, r, e)
			}
			r.Source = "cache"
			return c.answer(w, r, e, ld, now, false)
		}
		if now >= c.staleEnd(e) {
			e = nil
		} else if c.cfg.StaleTTL > 0 && now < e.recheck() {
			// The last refresh failed recently: answer stale without
			// asking again (RFC 8767's failure recheck timer).
			c.stale.Add(1)
			r.Source = "stale"
			return c.answer(w, r, e, logFor(e), now, true)
		}
	}
	c.join(w, r, e)
	return dns.RcodeSuccess, nil
}

// join adds (w, r) to the resolution of r's question, starting it if
// needed; w nil starts a prefetch with no waiter. stale, if not nil, is
// the expired entry to answer with if the resolution fails.
func (c *Cache) join(w ResponseWriter, r *Request, stale *entry) {
	var wt waiter
	if w != nil {
		wt.r = r.Detach()
		wt.w = w.Detach(wt.r)
	}
	c.fmu.Lock()
	f, ok := c.flights[string(r.key)]
	if ok {
		if w != nil && f.staleServed {
			// The refresh is slow: answer stale at once.
			c.fmu.Unlock()
			c.stale.Add(1)
			wt.r.Source = "stale"
			_, _ = c.answer(wt.w, wt.r, f.stale, logFor(f.stale), c.now().UnixNano(), true)
			return
		}
		if w != nil {
			wt.r.Source = "coalesced"
			f.waiters = append(f.waiters, wt)
			c.coalesced.Add(1)
		}
		c.fmu.Unlock()
		return
	}
	f = &flight{stale: stale}
	if stale != nil && w != nil && c.cfg.StaleTTL > 0 && c.cfg.StaleAnswerTimeout > 0 {
		f.timer = time.AfterFunc(c.cfg.StaleAnswerTimeout, func() { c.staleTimer(f) })
	}
	if w != nil {
		wt.r.Source = "upstream"
		f.waiters = append(f.waiters, wt)
		c.misses.Add(1)
	}
	key := string(r.key)
	c.flights[key] = f
	c.wg.Add(1)
	c.fmu.Unlock()
	q := Question{Name: r.Name(), Type: r.Type, Class: r.Class, DO: r.DO, CD: r.CD, Tenant: r.Tenant}
	job := resolveJob{key: key, q: q}
	select {
	case c.work <- job: // an idle worker takes it
	default:
		go c.worker(job)
	}
}

// resolveJob is one resolution handed to a worker.
type resolveJob struct {
	key string
	q   Question
}

// worker runs job, then further jobs while they keep coming; it exits
// after workerIdle without work. Reusing goroutines keeps their grown
// stacks (packing and unpacking messages needs several KiB).
func (c *Cache) worker(job resolveJob) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		c.resolve(job.key, job.q)
		idle.Reset(workerIdle)
		select {
		case job = <-c.work:
		case <-idle.C:
			return
		case <-c.ctx.Done():
			return
		}
	}
}

// resolve runs one resolution and answers its waiters.
func (c *Cache) resolve(key string, q Question) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ResolveTimeout)
	var e *entry
	var eld *logData // e's log data, for its waiters
	failed, cacheable := true, false
	m, err := c.cfg.Resolver.Resolve(ctx, q)
	cancel()
	if err == nil && m != nil {
		failed = m.Rcode == dns.RcodeServerFailure
		if e, cacheable, err = c.newEntry(key, q, m, c.now().UnixNano()); err == nil {
			eld = newLogData(q.Name, m.Answer)
		}
	}
	now := c.now().UnixNano()
	if err != nil {
		failed, e = true, nil
	}
	if failed {
		c.resolveErrors.Add(1)
	}
	if e != nil && cacheable {
		c.insert(key, e)
	}
	c.fmu.Lock()
	f := c.flights[key]
	delete(c.flights, key)
	f.done = true
	waiters := f.waiters
	f.waiters = nil
	c.fmu.Unlock()
	if f.timer != nil {
		f.timer.Stop()
	}
	stale := f.stale
	if stale == nil && failed {
		// A prefetch or refresh may have found the old entry gone from the
		// map meanwhile; look once more.
		if old := c.get([]byte(key)); old != nil && now < c.staleEnd(old) {
			stale = old
		}
	}
	if failed && stale != nil {
		stale.setRecheck(now + int64(staleRecheck))
	}
	var ld *logData // shared by the waiters (never modified)
	for _, wt := range waiters {
		switch {
		case failed && stale != nil && c.cfg.StaleTTL > 0:
			c.stale.Add(1)
			wt.r.Source = "stale"
			if ld == nil {
				ld = logFor(stale)
			}
			_, _ = c.answer(wt.w, wt.r, stale, ld, now, true)
		case e != nil:
			_, _ = c.answer(wt.w, wt.r, e, eld, now, false)
		default:
			m := new(dns.Msg)
			m.Rcode = dns.RcodeServerFailure
			_ = wt.w.WriteMsg(m)
		}
	}
}

// staleTimer answers the waiters of a slow refresh with the stale entry
// (RFC 8767 client response timer); later joiners get it at once.
func (c *Cache) staleTimer(f *flight) {
	c.fmu.Lock()
	if f.done {
		c.fmu.Unlock()
		return
	}
	f.staleServed = true
	waiters := f.waiters
	f.waiters = nil
	c.fmu.Unlock()
	now := c.now().UnixNano()
	var ld *logData
	if len(waiters) > 0 {
		ld = logFor(f.stale)
	}
	for _, wt := range waiters {
		c.stale.Add(1)
		wt.r.Source = "stale"
		_, _ = c.answer(wt.w, wt.r, f.stale, ld, now, true)
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// answer writes entry e to w for r, patching ID, flags, question and
// TTLs; ld is the entry's query-log data.
func (c *Cache) answer(w ResponseWriter, r *Request, e *entry, ld *logData, now int64, stale bool) (int, error) {
	bp := bufPool.Get().(*[]byte)
	msg := e.msg()
	b := append((*bp)[:0], msg...)
	binary.BigEndian.PutUint16(b, r.ID)
	var rd, cd byte
	if r.RD {
		rd = 1 // FlagRD>>8
	}
	if r.CD {
		cd = wire.FlagCD
	}
	b[2] |= rd
	b[3] = b[3]&^wire.FlagCD | cd
	if r.qend <= len(r.Raw) && r.qend <= len(b) && r.qend > 12 && e.matches(r.key) {
		copy(b[12:r.qend], r.Raw[12:r.qend]) // the question as asked (same bytes but for case)
	}
	var age uint32
	if d := now - e.stored; d > 0 {
		age = uint32(min(d/int64(time.Second), 1<<32-1))
	}
	staleTTL := uint32(c.cfg.StaleAnswerTTL / time.Second)
	for i, n := 0, e.nTTL(); i < n; i++ {
		off := e.ttlOff(i)
		ttl := binary.BigEndian.Uint32(msg[off:])
		switch {
		case stale:
			ttl = min(ttl, staleTTL)
		case ttl > age:
			ttl -= age
		default:
			ttl = 0
		}
		binary.BigEndian.PutUint32(b[off:], ttl)
	}
	size := r.ourUDP
	if size == 0 {
		size = defaultCacheUDPSize
	}
	if r.EDNS {
		ar := binary.BigEndian.Uint16(b[10:])
		binary.BigEndian.PutUint16(b[10:], ar+1)
		var flags byte
		if r.DO {
			flags = 0x80
		}
		b = append(b, 0, 0, wire.TypeOPT, byte(size>>8), byte(size), 0, 0, flags, 0, 0, 0)
	}
	if ld != nil {
		r.Answers, r.Resolved = ld.answers, ld.resolved
		if r.name == "" && ld.name != "" {
			r.name = ld.name
		}
	}
	rcode := int(b[3] & 0xF)
	var err error
	if !r.TCP && len(b) > r.maxUDP(size) {
		// Too big for the client: unpack and let the writer truncate.
		m := new(dns.Msg)
		if err = m.Unpack(b); err == nil {
			err = w.WriteMsg(m)
		}
	} else {
		err = w.WriteWire(b)
	}
	*bp = b
	if cap(b) <= 64<<10 {
		bufPool.Put(bp)
	}
	return rcode, err
}

// newEntry builds the cache entry for response m to q, asked under key.
// cacheable says whether the TTL rules let it be cached.
func (c *Cache) newEntry(key string, q Question, m *dns.Msg, now int64) (e *entry, cacheable bool, err error) {
	m.Id = 0
	m.Response, m.Opcode = true, dns.OpcodeQuery
	m.Authoritative, m.Truncated, m.RecursionDesired, m.CheckingDisabled = false, false, false, false
	m.RecursionAvailable, m.Zero = true, false
	m.Question = []dns.Question{{Name: q.Name, Qtype: q.Type, Qclass: q.Class}}
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
	if m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0 && !q.DO {
		// Minimal responses (as Unbound's default): a positive answer
		// carries no authority or additional records, which the client
		// does not need (smaller answers, less to cache, nothing to
		// amplify with).
		m.Ns, m.Extra = nil, nil
	}
	if m.Rcode > 0xF {
		m.Rcode = dns.RcodeServerFailure
	}
	ttl, cacheable := c.entryTTL(m)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if h := rr.Header(); h.Ttl > ttl {
				h.Ttl = ttl
			}
		}
	}
	m.Compress = true
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	packed, err := m.PackBuffer((*bp)[:cap(*bp)])
	if err != nil {
		return nil, false, fmt.Errorf("dnsres: cache: pack: %w", err)
	}
	if cap(packed) <= 64<<10 {
		*bp = packed[:0]
	}
	var flag byte
	if len(key) > 0 {
		flag = key[len(key)-1]
	}
	b, err := buildEntry(packed, ttl, flag)
	if err != nil {
		return nil, false, err
	}
	e = &entry{b: b, stored: now}
	// Cached only under its own question (a name whose presentation form
	// does not pack back to the same bytes is answered, not cached).
	return e, cacheable && e.matches([]byte(key)), nil
}

// entryTTL returns the TTL to cache m for and whether to cache it.
func (c *Cache) entryTTL(m *dns.Msg) (uint32, bool) {
	secs := func(d time.Duration) uint32 { return uint32(d / time.Second) }
	switch {
	case m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0:
		ttl := ^uint32(0)
		for _, rr := range m.Answer {
			ttl = min(ttl, rr.Header().Ttl)
		}
		ttl = max(min(ttl, secs(c.cfg.MaxTTL)), secs(c.cfg.MinTTL))
		return ttl, ttl > 0
	case m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError:
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl := min(soa.Hdr.Ttl, soa.Minttl, secs(c.cfg.NegativeMaxTTL))
				return ttl, ttl > 0
			}
		}
	}
	return 0, false
}

// insert publishes e under key, evicting to stay within the budget.
func (c *Cache) insert(key string, e *entry) {
	h := maphash.String(c.seed, key)
	sh := c.shard(h)
	sh.mu.Lock()
	if old, ok := sh.m[h]; ok {
		sh.bytes.Add(-old.size())
	}
	sh.m[h] = e
	bytes := sh.bytes.Add(e.size())
	if bytes > c.budget {
		now := e.stored
		// Random eviction (map order), expired-past-stale entries first
		// within a small sample.
		var n uint64
		for pass := 0; pass < 2 && bytes > c.budget; pass++ {
			seen := 0
			for k, v := range sh.m {
				if bytes <= c.budget || (pass == 0 && seen >= 32) {
					break
				}
				seen++
				if v == e || (pass == 0 && now < c.staleEnd(v)) {
					continue
				}
				delete(sh.m, k)
				bytes = sh.bytes.Add(-v.size())
				n++
			}
		}
		c.evictions.Add(n)
	}
	sh.mu.Unlock()
}

// Flush removes every entry (for tests and operators).
func (c *Cache) Flush() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.bytes.Store(0)
		sh.mu.Unlock()
	}
}

// lowerFQDN returns name lower-cased and fully qualified.
func lowerFQDN(name string) string {
	return dns.Fqdn(strings.ToLower(name))
}
