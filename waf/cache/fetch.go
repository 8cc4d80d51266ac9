package cache

import (
	"net/http"
	"slices"
	"strconv"
	"time"
)

// fetch forwards r through next (conditionally when a stored entry e has
// validators), streams or captures the answer, stores what may be stored
// and falls back to e on origin errors when allowed.
func (c *Cache) fetch(w http.ResponseWriter, r *http.Request, next http.Handler, p Policy,
	key string, e *entry, fwd string, background bool) Result {
	reqTime := c.cfg.Now()
	out := r.Clone(r.Context())
	// The client's own validators are answered by us; the origin is asked
	// for a full response (or with our validators).
	out.Header.Del("If-None-Match")
	out.Header.Del("If-Modified-Since")
	if e != nil {
		if e.etag != "" {
			out.Header.Set("If-None-Match", e.etag)
		} else if e.lastMod != "" {
			out.Header.Set("If-Modified-Since", e.lastMod)
		}
	}
	tw := &teeWriter{c: c, w: w, r: r, p: p, e: e, fwd: fwd, hdr: http.Header{}, reqTime: reqTime}
	next.ServeHTTP(tw, out)
	if tw.mode == modeUndecided {
		tw.WriteHeader(http.StatusOK)
	}
	now := c.cfg.Now()
	res := Result{Status: Miss, Forwarded: true, FwdStatus: tw.code}
	switch tw.mode {
	case modeValidated:
		ne := c.refresh(e, tw.hdr, reqTime, now)
		c.insert(ne)
		if !background {
			c.writeEntry(w, r, ne, now, "fwd=stale; fwd-status=304; ttl="+ttl(-ne.staleness(now)))
		}
		res.Status, res.Stored = Revalidated, true
	case modeStaleOnError:
		st := e.staleness(now)
		if !background {
			c.writeEntry(w, r, e, now, "fwd=stale; fwd-status="+strconv.Itoa(tw.code)+"; ttl="+ttl(-st)+"; detail="+tw.detail)
		}
		res.Status, res.Detail = Stale, tw.detail
	case modeStream:
		if tw.storable && !tw.overflow && (tw.wantLen < 0 || tw.wantLen == int64(len(tw.buf))) {
			ne := tw.newEntry(key, now)
			c.insert(ne)
			c.stores.Add(1)
			res.Stored = true
		} else if !tw.storable && r.Method == http.MethodGet {
			c.markUncacheable(key, now)
		}
	}
	return res
}

const (
	modeUndecided = iota
	modeStream    // written through to the client (and buffered when storable)
	modeValidated // 304 to our conditional request: serve the stored body
	modeStaleOnError
)

// teeWriter is the ResponseWriter given to the origin path.
type teeWriter struct {
	c       *Cache
	w       http.ResponseWriter
	r       *http.Request
	p       Policy
	e       *entry
	fwd     string
	hdr     http.Header
	reqTime time.Time

	mode     int
	code     int
	detail   string
	storable bool
	cc       Directives
	lifetime time.Duration
	buf      []byte
	overflow bool
	wantLen  int64
}

func (t *teeWriter) Header() http.Header { return t.hdr }

func (t *teeWriter) WriteHeader(code int) {
	if t.mode != modeUndecided || code < 200 {
		return // 1xx are not relayed; a second WriteHeader is ignored
	}
	t.code = code
	now := t.c.cfg.Now()
	if t.e != nil {
		if code == http.StatusNotModified {
			t.mode = modeValidated
			return
		}
		if code == 500 || code == 502 || code == 503 || code == 504 {
			if d := t.c.staleOnError(t.e, now, t.p); d != "" {
				t.mode, t.detail = modeStaleOnError, d
				return
			}
		}
	}
	t.mode = modeStream
	t.cc, t.lifetime, t.storable = t.c.storable(t.r, code, t.hdr, t.p)
	t.wantLen = -1
	if cl := t.hdr.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			t.wantLen = n
			if n > t.c.cfg.MaxObjectBytes {
				t.storable = false
			}
		}
	}
	h := t.w.Header()
	for k, v := range t.hdr {
		h[k] = v
	}
	status := t.c.name + "; fwd=" + t.fwd + "; fwd-status=" + strconv.Itoa(code)
	if t.storable {
		status += "; stored"
	}
	h.Add("Cache-Status", status)
	t.hdr = h // trailers added later by the proxy reach the client
	t.w.WriteHeader(code)
}

func (t *teeWriter) Write(b []byte) (int, error) {
	if t.mode == modeUndecided {
		t.WriteHeader(http.StatusOK)
	}
	switch t.mode {
	case modeStream:
		if t.storable && !t.overflow {
			if int64(len(t.buf)+len(b)) > t.c.cfg.MaxObjectBytes {
				t.overflow, t.buf = true, nil
			} else {
				t.buf = append(t.buf, b...)
			}
		}
		return t.w.Write(b)
	default:
		return len(b), nil // 304 / error page replaced by the stored copy
	}
}

// Flush passes a flush through when streaming.
func (t *teeWriter) Flush() {
	if t.mode == modeStream {
		_ = http.NewResponseController(t.w).Flush()
	}
}

// staleOnError returns why e may be served in place of an origin error,
// or "" when it may not.
func (c *Cache) staleOnError(e *entry, now time.Time, p Policy) string {
	st := e.staleness(now)
	switch {
	case st < 0:
		return "stale-if-error" // still fresh (revalidation was forced)
	case !e.mustRevalidate() && e.cc.StaleIfError >= 0 && st < secs(e.cc.StaleIfError):
		return "stale-if-error"
	case st < p.Grace:
		return "grace"
	}
	return ""
}

// storable decides whether a response may be stored (RFC 9111 §3) and
// its freshness lifetime (§4.2.1, §4.2.2).
func (c *Cache) storable(r *http.Request, code int, h http.Header, p Policy) (Directives, time.Duration, bool) {
	cc := ParseCacheControl(h["Cache-Control"])
	if r.Method != http.MethodGet || !understoodStatus(code) || cc.NoStore || cc.Private {
		return cc, 0, false
	}
	if ParseCacheControl(r.Header["Cache-Control"]).NoStore {
		return cc, 0, false
	}
	if _, ok := h["Set-Cookie"]; ok {
		return cc, 0, false // never share a response that sets a cookie
	}
	if _, ok := h["Trailer"]; ok {
		return cc, 0, false
	}
	if _, ok := varyNames(h); !ok {
		return cc, 0, false
	}
	personal := r.Header.Get("Cookie") != "" || r.Header.Get("Authorization") != ""
	date := responseDate(h, c.cfg.Now())
	var life time.Duration
	explicit := true
	switch {
	case cc.SMaxAge >= 0:
		life = secs(cc.SMaxAge)
	case cc.MaxAge >= 0:
		life = secs(cc.MaxAge)
	case h.Get("Expires") != "":
		if t, err := http.ParseTime(h.Get("Expires")); err == nil {
			life = max(t.Sub(date), 0)
		}
	default:
		explicit = false
	}
	if !explicit && !cc.NoCache {
		if !heuristicStatus(code) && !cc.Public {
			return cc, 0, false
		}
		switch {
		case p.DefaultTTL > 0 && !personal:
			life = p.DefaultTTL
		case h.Get("Last-Modified") != "":
			if lm, err := http.ParseTime(h.Get("Last-Modified")); err == nil && date.After(lm) {
				life = min(date.Sub(lm)/10, c.cfg.MaxHeuristic)
			}
		}
	}
	useful := life > 0 || h.Get("ETag") != "" || h.Get("Last-Modified") != "" ||
		cc.StaleIfError > 0 || cc.StaleWhileRevalidate > 0 || (p.Grace > 0 && !personal)
	return cc, life, useful
}

func responseDate(h http.Header, now time.Time) time.Time {
	if t, err := http.ParseTime(h.Get("Date")); err == nil {
		return t
	}
	return now
}

func (t *teeWriter) newEntry(key string, now time.Time) *entry {
	names, _ := varyNames(t.hdr)
	vals := make([]string, len(names))
	for i, n := range names {
		vals[i] = normVary(t.r.Header.Values(n))
	}
	age := parseAge(t.hdr.Get("Age"))
	// Age is recomputed on every answer; ours was added to the client's
	// copy of Cache-Status.
	hdr := copyHeader(t.hdr, "Age", "Cache-Status")
	if up := t.hdr.Values("Cache-Status"); len(up) > 1 {
		hdr["Cache-Status"] = slices.Clone(up[:len(up)-1]) // keep the upstream caches' entries
	}
	body := t.buf
	if cap(body)-len(body) > len(body)/8+64 { // append doubled it: do not keep the slack
		body = slices.Clone(body)
	}
	e := &entry{
		primary: key, varyNames: names, varyVals: vals,
		status: t.code, header: hdr, body: body,
		reqTime: t.reqTime, respTime: now, date: responseDate(hdr, now), ageValue: age,
		lifetime: t.lifetime, cc: t.cc, etag: hdr.Get("ETag"), lastMod: hdr.Get("Last-Modified"),
	}
	e.size = entrySize(e)
	return e
}

// refresh returns a copy of e updated by a 304 response's header fields
// (RFC 9111 §4.3.4) received at now.
func (c *Cache) refresh(e *entry, h http.Header, reqTime, now time.Time) *entry {
	ne := *e
	ne.prev, ne.next, ne.onDisk = nil, nil, ""
	ne.header = copyHeader(e.header)
	for k, v := range h {
		switch k {
		case "Content-Length", "Content-Encoding", "Content-Type", "Content-Range", "Transfer-Encoding", "Age", "Cache-Status":
			continue
		}
		ne.header[k] = v
	}
	ne.reqTime, ne.respTime = reqTime, now
	ne.ageValue = parseAge(h.Get("Age"))
	ne.date = responseDate(ne.header, now)
	if h.Get("Date") == "" {
		ne.date = now
	}
	r := &http.Request{Method: http.MethodGet, Header: http.Header{}}
	cc, life, _ := c.storable(r, e.status, ne.header, Policy{})
	if cc.hasDirective || ne.header.Get("Expires") != "" {
		ne.cc, ne.lifetime = cc, life
	}
	ne.etag, ne.lastMod = ne.header.Get("ETag"), ne.header.Get("Last-Modified")
	ne.size = entrySize(&ne)
	return &ne
}
