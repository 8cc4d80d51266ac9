package cache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// entry is one stored response (one variant of a URL).
type entry struct {
	primary   string   // method-less key: scheme://host/path?query
	varyNames []string // canonical request header names from Vary
	varyVals  []string // the request's values of those headers, normalised

	status int
	header http.Header // without Age; hop-by-hop already removed
	body   []byte

	reqTime, respTime time.Time // when the request was sent / the response received
	date              time.Time // Date header, or respTime
	ageValue          time.Duration
	lifetime          time.Duration // freshness lifetime
	cc                Directives
	etag, lastMod     string

	size int64
	// LRU list (most recent at head).
	prev, next *entry
	onDisk     string // file name in the disk tier, "" when not written
}

// currentAge is RFC 9111 §4.2.3.
func (e *entry) currentAge(now time.Time) time.Duration {
	apparent := max(e.respTime.Sub(e.date), 0)
	corrected := e.ageValue + e.respTime.Sub(e.reqTime)
	initial := max(apparent, corrected)
	return initial + now.Sub(e.respTime)
}

// staleness is how far past its freshness lifetime the entry is at now
// (negative while fresh).
func (e *entry) staleness(now time.Time) time.Duration {
	return e.currentAge(now) - e.lifetime
}

// mustRevalidate reports whether a stale entry may not be served without
// validation (must-revalidate, proxy-revalidate, s-maxage, no-cache).
func (e *entry) mustRevalidate() bool {
	return e.cc.MustRevalidate || e.cc.ProxyRevalidate || e.cc.SMaxAge >= 0 || e.cc.NoCache
}

// matches reports whether the stored variant fits request r (RFC 9111 §4.1).
func (e *entry) matches(r *http.Request) bool {
	for i, n := range e.varyNames {
		if normVary(r.Header.Values(n)) != e.varyVals[i] {
			return false
		}
	}
	return true
}

// normVary normalises a request header's values for Vary matching:
// lines joined by ", ", whitespace around list members trimmed.
func normVary(vs []string) string {
	switch len(vs) {
	case 0:
		return "\x00" // absent differs from empty
	case 1:
		if !strings.ContainsAny(vs[0], ", \t") {
			return vs[0]
		}
	}
	var b strings.Builder
	first := true
	for _, v := range vs {
		for p := range strings.SplitSeq(v, ",") {
			if !first {
				b.WriteString(", ")
			}
			first = false
			b.WriteString(strings.TrimSpace(p))
		}
	}
	return b.String()
}

// varyNames returns the canonical header names listed in Vary, and false
// for "Vary: *" (never matches: not storable).
func varyNames(h http.Header) ([]string, bool) {
	var names []string
	for _, v := range h.Values("Vary") {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if p == "*" {
				return nil, false
			}
			names = append(names, http.CanonicalHeaderKey(p))
		}
	}
	return names, true
}

// heuristicStatus reports whether a status code is heuristically
// cacheable (RFC 9110 §15.1).
func heuristicStatus(code int) bool {
	switch code {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// understoodStatus is the set of final status codes this cache stores.
func understoodStatus(code int) bool {
	return heuristicStatus(code) || code == 302 || code == 303 || code == 307 || code == 403
}

// parseAge parses an Age header value (delta-seconds); invalid is 0.
func parseAge(v string) time.Duration {
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return secs(min(n, maxDelta))
}

// etagMatch reports whether the If-None-Match list matches etag with the
// weak comparison of RFC 9110 §8.8.3.2.
func etagMatch(list, etag string) bool {
	if etag == "" {
		return false
	}
	if strings.TrimSpace(list) == "*" {
		return true
	}
	want := strings.TrimPrefix(etag, "W/")
	for p := range strings.SplitSeq(list, ",") {
		if strings.TrimPrefix(strings.TrimSpace(p), "W/") == want {
			return true
		}
	}
	return false
}

// notModified evaluates the client's conditional headers against e
// (RFC 9110 §13.2.2): If-None-Match when present, else If-Modified-Since.
func notModified(r *http.Request, e *entry) bool {
	if e.status != http.StatusOK {
		return false
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		return etagMatch(inm, e.etag)
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" && e.lastMod != "" {
		t, err := http.ParseTime(ims)
		lm, err2 := http.ParseTime(e.lastMod)
		return err == nil && err2 == nil && !lm.After(t)
	}
	return false
}
