package cache

import (
	"strings"
	"time"
)

// Directives is a parsed Cache-Control header (RFC 9111 §5.2 and the
// RFC 5861 extensions). Durations are whole seconds; a directive that is
// absent has the value -1. The zero value is not "no directives": use
// ParseCacheControl.
type Directives struct {
	MaxAge, SMaxAge, MaxStale, MinFresh       int64
	StaleWhileRevalidate, StaleIfError        int64
	NoStore, NoCache, Private, Public         bool
	MustRevalidate, ProxyRevalidate           bool
	NoTransform, OnlyIfCached, Immutable      bool
	MustUnderstand, MaxStaleAny, hasDirective bool
}

// maxDelta is the largest delta-seconds kept: RFC 9111 §1.2.2 says a
// recipient that cannot represent a larger number uses 2^31.
const maxDelta = 1 << 31

// ParseCacheControl parses the Cache-Control field lines of a request or
// response. Directive names are case-insensitive; unknown directives are
// ignored; the first occurrence of a repeated directive wins; an invalid
// delta-seconds value (not digits) counts as 0, which makes the response
// stale at once, the conservative reading of RFC 9111 §4.2.1. The
// qualified forms no-cache="field" and private="field" are treated as
// their unqualified forms (allowed by §5.2.2.4 and §5.2.2.7). It never
// fails and allocates nothing for well-formed input.
func ParseCacheControl(lines []string) Directives {
	d := Directives{MaxAge: -1, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}
	for _, line := range lines {
		for len(line) > 0 {
			var item string
			item, line = nextItem(line)
			name, val, hasVal := strings.Cut(item, "=")
			name = strings.TrimSpace(name)
			val = unquote(strings.TrimSpace(val))
			if name == "" {
				continue
			}
			d.hasDirective = true
			switch strings.ToLower(name) {
			case "max-age":
				setDelta(&d.MaxAge, val)
			case "s-maxage":
				setDelta(&d.SMaxAge, val)
			case "max-stale":
				if !hasVal {
					d.MaxStaleAny = true
				} else {
					setDelta(&d.MaxStale, val)
				}
			case "min-fresh":
				setDelta(&d.MinFresh, val)
			case "stale-while-revalidate":
				setDelta(&d.StaleWhileRevalidate, val)
			case "stale-if-error":
				setDelta(&d.StaleIfError, val)
			case "no-store":
				d.NoStore = true
			case "no-cache":
				d.NoCache = true
			case "private":
				d.Private = true
			case "public":
				d.Public = true
			case "must-revalidate":
				d.MustRevalidate = true
			case "proxy-revalidate":
				d.ProxyRevalidate = true
			case "no-transform":
				d.NoTransform = true
			case "only-if-cached":
				d.OnlyIfCached = true
			case "immutable":
				d.Immutable = true
			case "must-understand":
				d.MustUnderstand = true
			}
		}
	}
	return d
}

// nextItem returns the text up to the next comma that is not inside a
// quoted string, and the rest after it.
func nextItem(s string) (item, rest string) {
	inQ := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && inQ:
			i++
		case c == '"':
			inQ = !inQ
		case c == ',' && !inQ:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		if strings.IndexByte(v, '\\') < 0 {
			return v
		}
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) {
				i++
			}
			b.WriteByte(v[i])
		}
		return b.String()
	}
	return v
}

func setDelta(dst *int64, v string) {
	if *dst >= 0 {
		return // first occurrence wins
	}
	*dst = parseDelta(v)
}

// parseDelta parses delta-seconds: digits only, clamped at 2^31; anything
// else is 0.
func parseDelta(v string) int64 {
	if v == "" {
		return 0
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int64(c-'0')
		if n >= maxDelta {
			n = maxDelta
			// keep scanning to reject trailing garbage
		}
	}
	return n
}

func secs(n int64) time.Duration {
	if n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
