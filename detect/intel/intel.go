// Package intel holds threat-intelligence indicator sets — domains,
// addresses and prefixes, URLs and file hashes — shared by the proxy, the
// DNS resolver and the mail relay, with allocation-free lookups: domain
// suffix match, address longest-prefix match, exact hash match and URL
// match by host and path prefix.
//
// Sets are built from plain lists (one indicator per line, hosts-file lines
// accepted) and STIX 2.1 indicator bundles, and swapped atomically on
// reload with Live:
//
//	set, err := intel.Load(intel.Files{Domains: []string{"cc.txt"}, STIX: []string{"feed.json"}}, time.Now())
//	if err != nil { /* every bad line, with file and line */ }
//	live := intel.NewLive(set)
//	if ind, ok := live.Load().Domain("x.evil.example."); ok { ... ind.Source ... }
package intel

import (
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/jichitai/seccloud/internal/lpm"
)

// Kind is the type of an indicator.
type Kind uint8

// The indicator kinds.
const (
	KindDomain Kind = iota + 1 // a domain and all its subdomains
	KindAddr                   // an address or prefix
	KindURL                    // a URL: exact, or a path prefix when it ends in '/'
	KindHash                   // a file hash (SHA-256, SHA-1 or MD5, lower-case hex)
)

var kindNames = [...]string{"", "domain", "addr", "url", "hash"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Indicator is one entry of a set. Indicators held by a Set are immutable.
type Indicator struct {
	Kind Kind
	// Value is the normalised indicator: a lower-case A-label domain
	// without trailing dot, a prefix ("192.0.2.1/32"), a normalised URL
	// ("http://host/path"), or lower-case hex.
	Value string
	// Source says where it came from: "file:line" or "file#stix-id".
	Source string
	// Name is a human name (STIX name), may be empty.
	Name string
	// Labels are categories such as "c2", "malware", "phishing" (STIX
	// indicator_types or a list file's label).
	Labels []string
}

// Set is an immutable collection of indicators. Lookups are safe for
// concurrent use and do not allocate (URL lookups allocate only for URLs
// that need normalising). The zero Set is empty.
type Set struct {
	inds    []Indicator
	domains map[string]int32
	addrs   *lpm.Table
	urls    map[string]int32
	hashes  map[string]int32
	stats   Stats
}

// Stats counts what a Set holds and what building it skipped.
type Stats struct {
	Domains, Addrs, URLs, Hashes int
	// Skipped counts STIX indicators left out: revoked, expired, not yet
	// valid, or with patterns this package does not evaluate (AND,
	// operators other than '=').
	Skipped int
	// Duplicates counts indicators given more than once (the first wins).
	Duplicates int
}

// Stats returns the set's counts.
func (s *Set) Stats() Stats { return s.stats }

// Len returns the number of indicators.
func (s *Set) Len() int { return len(s.inds) }

// Build makes a Set from indicators, normalising each value. It returns an
// error naming every indicator whose value is malformed.
func Build(inds []Indicator) (*Set, error) {
	s := &Set{
		domains: map[string]int32{},
		urls:    map[string]int32{},
		hashes:  map[string]int32{},
	}
	var errs []string
	var prefixes []lpm.Entry
	seenAddr := map[netip.Prefix]bool{}
	for _, in := range inds {
		v, err := Normalize(in.Kind, in.Value)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", in.Source, err))
			continue
		}
		in.Value = v
		idx := int32(len(s.inds))
		dup := false
		switch in.Kind {
		case KindDomain:
			if _, dup = s.domains[v]; !dup {
				s.domains[v] = idx
				s.stats.Domains++
			}
		case KindURL:
			if _, dup = s.urls[v]; !dup {
				s.urls[v] = idx
				s.stats.URLs++
			}
		case KindHash:
			if _, dup = s.hashes[v]; !dup {
				s.hashes[v] = idx
				s.stats.Hashes++
			}
		case KindAddr:
			p := netip.MustParsePrefix(v)
			if dup = seenAddr[p]; !dup {
				seenAddr[p] = true
				prefixes = append(prefixes, lpm.Entry{Prefix: p, Owner: idx})
				s.stats.Addrs++
			}
		}
		if dup {
			s.stats.Duplicates++
			continue
		}
		s.inds = append(s.inds, in)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("intel: %d bad indicators: %s", len(errs), strings.Join(errs, "; "))
	}
	s.addrs, _ = lpm.Build(prefixes)
	return s, nil
}

// Domain returns the indicator for name or its nearest listed parent
// domain. Case and a trailing dot are ignored.
func (s *Set) Domain(name string) (*Indicator, bool) {
	if s == nil || len(s.domains) == 0 {
		return nil, false
	}
	var buf [256]byte
	if n := len(name); n > 0 && name[n-1] == '.' {
		name = name[:n-1]
	}
	if len(name) == 0 || len(name) > len(buf) {
		return nil, false
	}
	return s.DomainBytes(buf[:copy(buf[:], name)])
}

// DomainBytes is Domain for a name held in bytes, dot-separated, without a
// trailing dot. It lower-cases name in place (ASCII only) and does not
// allocate: for hot paths that already hold the name in a buffer, such as
// a DNS server converting a wire name.
func (s *Set) DomainBytes(name []byte) (*Indicator, bool) {
	if s == nil || len(s.domains) == 0 {
		return nil, false
	}
	for i, c := range name {
		if c >= 'A' && c <= 'Z' {
			name[i] = c + 'a' - 'A'
		}
	}
	b := name
	for {
		if i, ok := s.domains[string(b)]; ok {
			return &s.inds[i], true
		}
		dot := -1
		for k, c := range b {
			if c == '.' {
				dot = k
				break
			}
		}
		if dot < 0 {
			return nil, false
		}
		b = b[dot+1:]
	}
}

// FromDomains returns a set of the given domains (each covering its
// subdomains), with Source "arg:N": for tests, examples and small
// deployments configured in code.
func FromDomains(names ...string) (*Set, error) {
	inds := make([]Indicator, len(names))
	for i, n := range names {
		inds[i] = Indicator{Kind: KindDomain, Value: n, Source: fmt.Sprintf("arg:%d", i+1)}
	}
	return Build(inds)
}

// Addr returns the indicator of the most specific listed prefix holding a.
func (s *Set) Addr(a netip.Addr) (*Indicator, bool) {
	if s == nil || s.addrs == nil {
		return nil, false
	}
	if i := s.addrs.Lookup(a); i >= 0 {
		return &s.inds[i], true
	}
	return nil, false
}

// Hash returns the indicator for a hex file hash (any case).
func (s *Set) Hash(h string) (*Indicator, bool) {
	if s == nil || len(s.hashes) == 0 || len(h) > 128 {
		return nil, false
	}
	var buf [128]byte
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	if i, ok := s.hashes[string(buf[:len(h)])]; ok {
		return &s.inds[i], true
	}
	return nil, false
}

// URL returns the indicator matching rawURL: the exact normalised URL
// (without fragment), then the same URL without its query, then each
// listed path prefix ending in '/' ("http://host/a/" matches
// "http://host/a/b"), longest first.
func (s *Set) URL(rawURL string) (*Indicator, bool) {
	if s == nil || len(s.urls) == 0 {
		return nil, false
	}
	u, err := normalizeURL(rawURL)
	if err != nil {
		return nil, false
	}
	if i, ok := s.urls[u]; ok {
		return &s.inds[i], true
	}
	if q := strings.IndexByte(u, '?'); q >= 0 {
		u = u[:q]
		if i, ok := s.urls[u]; ok {
			return &s.inds[i], true
		}
	}
	// Path prefixes: cut after each '/' past "scheme://host/".
	hostEnd := strings.Index(u, "://")
	if hostEnd < 0 {
		return nil, false
	}
	root := hostEnd + 3 + strings.IndexByte(u[hostEnd+3:], '/')
	if root < hostEnd+3 {
		return nil, false
	}
	for end := len(u) - 1; end >= root; end-- {
		if u[end] == '/' {
			if i, ok := s.urls[u[:end+1]]; ok {
				return &s.inds[i], true
			}
		}
	}
	return nil, false
}

// Live holds the current Set and swaps it atomically on reload. The zero
// value holds an empty set. Safe for concurrent use.
type Live struct{ p atomic.Pointer[Set] }

// NewLive returns a Live holding s.
func NewLive(s *Set) *Live {
	l := &Live{}
	l.p.Store(s)
	return l
}

// Load returns the current set (never nil).
func (l *Live) Load() *Set {
	if s := l.p.Load(); s != nil {
		return s
	}
	return &Set{}
}

// Store makes s current and returns the previous set.
func (l *Live) Store(s *Set) *Set { return l.p.Swap(s) }
