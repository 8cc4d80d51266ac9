// Package cache is a shared HTTP cache (RFC 9111) for a reverse proxy or
// CDN node: it stores cacheable responses (Cache-Control, Expires, Vary,
// Age, validators), answers from storage while fresh, revalidates with
// ETag / Last-Modified (304), serves stale copies under
// stale-while-revalidate and stale-if-error (RFC 5861) and under an
// operator "grace" when the origin is down, coalesces identical misses
// into one origin fetch, bounds memory (least recently used out, to an
// optional disk tier), purges by URL and prefix (PurgeHandler), and adds a
// Cache-Status header (RFC 9211).
//
// It imports nothing else of seccloud. Use it alone in front of any
// handler that reaches the origin:
//
//	c, err := cache.New(cache.Config{MaxBytes: 512 << 20})
//	if err != nil { ... }
//	defer c.Close()
//	proxy := httputil.NewSingleHostReverseProxy(origin)
//	http.Handle("/", c.Handler(proxy, cache.Policy{Grace: 24 * time.Hour}))
//	admin.Handle("/purge", c.PurgeHandler()) // loopback / admin only
//
// Serve is the same with the Result returned (for access logs), and
// ServeStored answers only from storage (to keep serving cached pages to
// throttled clients).
package cache
