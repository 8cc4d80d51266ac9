package intel

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jichitai/seccloud/tenant"
)

// Normalize returns the canonical form of an indicator value of kind k, or
// an error saying why it is malformed.
func Normalize(k Kind, v string) (string, error) {
	v = strings.TrimSpace(v)
	switch k {
	case KindDomain:
		v = strings.TrimPrefix(v, "*.")
		return tenant.NormalizeDomain(v)
	case KindAddr:
		if p, err := netip.ParsePrefix(v); err == nil {
			if p.Addr().Zone() != "" {
				return "", fmt.Errorf("zoned address %q", v)
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			return p.Masked().String(), nil
		}
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return "", fmt.Errorf("not an address or prefix: %q", v)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()).String(), nil
	case KindURL:
		return normalizeURL(v)
	case KindHash:
		switch len(v) {
		case 32, 40, 64, 128:
		default:
			return "", fmt.Errorf("hash %q: want 32, 40, 64 or 128 hex digits", v)
		}
		for i := 0; i < len(v); i++ {
			c := v[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return "", fmt.Errorf("hash %q: not hex", v)
			}
		}
		return strings.ToLower(v), nil
	}
	return "", fmt.Errorf("unknown indicator kind %d", k)
}

// normalizeURL lower-cases scheme and host, drops the default port and the
// fragment, and makes an empty path "/".
func normalizeURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("bad URL: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" && scheme != "ftp" {
		return "", fmt.Errorf("URL %q: want http, https or ftp", raw)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", fmt.Errorf("URL %q: no host", raw)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" && !(scheme == "http" && p == "80" || scheme == "https" && p == "443" || scheme == "ftp" && p == "21") {
		host += ":" + p
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	out := scheme + "://" + host + path
	if u.RawQuery != "" || u.ForceQuery {
		out += "?" + u.RawQuery
	}
	return out, nil
}

// Guess returns the kind a plain-list value looks like: an address or
// prefix, a URL (has "://"), a hex hash of 32/40/64/128 digits, else a
// domain.
func Guess(v string) Kind {
	if _, err := netip.ParsePrefix(v); err == nil {
		return KindAddr
	}
	if _, err := netip.ParseAddr(v); err == nil {
		return KindAddr
	}
	if strings.Contains(v, "://") {
		return KindURL
	}
	if _, err := Normalize(KindHash, v); err == nil {
		return KindHash
	}
	return KindDomain
}

// LineError is a malformed line of a list file.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// ParseList reads a plain indicator list: one value per line; '#' starts a
// comment; blank lines are skipped; hosts-file lines ("0.0.0.0 evil.example")
// give their names as domains. When kind is 0 each value's kind is
// guessed (see Guess). label, if not empty, is attached to every indicator.
// It returns every malformed line as a *LineError joined with errors.Join,
// along with the good indicators.
func ParseList(r io.Reader, name string, kind Kind, label string) ([]Indicator, error) {
	var out []Indicator
	var errs []error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		values := fields[:1]
		if len(fields) > 1 {
			// hosts-file format: address followed by names.
			if a, err := netip.ParseAddr(fields[0]); err == nil && (a.IsUnspecified() || a.IsLoopback()) {
				values = fields[1:]
			} else {
				errs = append(errs, &LineError{name, n, fmt.Errorf("one indicator per line, got %d fields", len(fields))})
				continue
			}
		}
		for _, v := range values {
			k := kind
			if k == 0 {
				k = Guess(v)
			}
			if len(fields) > 1 {
				k = KindDomain
				if v == "localhost" || v == "localhost.localdomain" || v == "broadcasthost" {
					continue
				}
			}
			nv, err := Normalize(k, v)
			if err != nil {
				errs = append(errs, &LineError{name, n, err})
				continue
			}
			in := Indicator{Kind: k, Value: nv, Source: fmt.Sprintf("%s:%d", name, n)}
			if label != "" {
				in.Labels = []string{label}
			}
			out = append(out, in)
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, &LineError{name, n + 1, err})
	}
	return out, errors.Join(errs...)
}

// stixBundle is the part of a STIX 2.1 bundle we read.
type stixBundle struct {
	Type    string            `json:"type"`
	Objects []json.RawMessage `json:"objects"`
}

type stixIndicator struct {
	Type           string    `json:"type"`
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Pattern        string    `json:"pattern"`
	PatternType    string    `json:"pattern_type"`
	ValidFrom      time.Time `json:"valid_from"`
	ValidUntil     time.Time `json:"valid_until"`
	Revoked        bool      `json:"revoked"`
	IndicatorTypes []string  `json:"indicator_types"`
	Labels         []string  `json:"labels"`
}

// ParseSTIX reads a STIX 2.1 bundle and returns its indicators whose
// pattern is one or more comparisons joined by OR, each of the form
// `domain-name:value = '…'`, `ipv4-addr:value = '…'`, `ipv6-addr:value = '…'`,
// `url:value = '…'` or `file:hashes.'SHA-256' = '…'` (also SHA-1, MD5,
// SHA-512). Revoked indicators, those not valid at now, and patterns with
// other operators are skipped and counted in the second result.
func ParseSTIX(r io.Reader, name string, now time.Time) ([]Indicator, int, error) {
	var b stixBundle
	dec := json.NewDecoder(io.LimitReader(r, 1<<30))
	if err := dec.Decode(&b); err != nil {
		return nil, 0, fmt.Errorf("%s: not a STIX bundle: %w", name, err)
	}
	if b.Type != "bundle" {
		return nil, 0, fmt.Errorf("%s: type %q, want \"bundle\"", name, b.Type)
	}
	var out []Indicator
	skipped := 0
	var errs []error
	for i, raw := range b.Objects {
		var o stixIndicator
		if err := json.Unmarshal(raw, &o); err != nil {
			errs = append(errs, fmt.Errorf("%s: objects[%d]: %w", name, i, err))
			continue
		}
		if o.Type != "indicator" {
			continue
		}
		if o.PatternType != "" && o.PatternType != "stix" || o.Revoked ||
			!o.ValidUntil.IsZero() && !now.Before(o.ValidUntil) ||
			!o.ValidFrom.IsZero() && now.Before(o.ValidFrom) {
			skipped++
			continue
		}
		comps, ok := parsePattern(o.Pattern)
		if !ok {
			skipped++
			continue
		}
		labels := append(append([]string(nil), o.IndicatorTypes...), o.Labels...)
		for _, c := range comps {
			v, err := Normalize(c.kind, c.value)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s#%s: %w", name, o.ID, err))
				continue
			}
			out = append(out, Indicator{Kind: c.kind, Value: v, Source: name + "#" + o.ID, Name: o.Name, Labels: labels})
		}
	}
	return out, skipped, errors.Join(errs...)
}

type comparison struct {
	kind  Kind
	value string
}

// parsePattern parses "[a = 'x' OR b = 'y']" (one observation, OR-joined
// equality comparisons). ok is false for anything else.
func parsePattern(p string) ([]comparison, bool) {
	p = strings.TrimSpace(p)
	if len(p) < 2 || p[0] != '[' || p[len(p)-1] != ']' {
		return nil, false
	}
	rest := strings.TrimSpace(p[1 : len(p)-1])
	var out []comparison
	for {
		eq := strings.Index(rest, "=")
		if eq < 0 {
			return nil, false
		}
		path := strings.TrimSpace(rest[:eq])
		if strings.ContainsAny(path, "!<>") {
			return nil, false
		}
		rest = strings.TrimSpace(rest[eq+1:])
		val, after, ok := stixString(rest)
		if !ok {
			return nil, false
		}
		k, ok := pathKind(path)
		if !ok {
			return nil, false
		}
		out = append(out, comparison{k, val})
		after = strings.TrimSpace(after)
		if after == "" {
			return out, true
		}
		next, ok := strings.CutPrefix(after, "OR ")
		if !ok {
			return nil, false
		}
		rest = strings.TrimSpace(next)
	}
}

// stixString reads a single-quoted STIX string with \' and \\ escapes.
func stixString(s string) (val, rest string, ok bool) {
	if len(s) == 0 || s[0] != '\'' {
		return "", "", false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 >= len(s) {
				return "", "", false
			}
			i++
			b.WriteByte(s[i])
		case '\'':
			return b.String(), s[i+1:], true
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

func pathKind(path string) (Kind, bool) {
	switch path {
	case "domain-name:value":
		return KindDomain, true
	case "ipv4-addr:value", "ipv6-addr:value":
		return KindAddr, true
	case "url:value":
		return KindURL, true
	}
	if h, ok := strings.CutPrefix(path, "file:hashes."); ok {
		switch strings.Trim(h, "'") {
		case "SHA-256", "SHA256", "SHA-1", "SHA1", "MD5", "SHA-512", "SHA512":
			return KindHash, true
		}
	}
	return 0, false
}

// Files names the indicator files of a set. Plain lists in Domains, Addrs,
// URLs and Hashes are read as that kind; Mixed lists guess each line's kind.
type Files struct {
	Domains, Addrs, URLs, Hashes, Mixed []string
	// STIX are STIX 2.1 bundle files.
	STIX []string
}

// Load reads every file and builds a Set. It returns every problem found
// (file and line for lists) and no set if there is any, so a caller can
// keep the set in force.
func Load(f Files, now time.Time) (*Set, error) {
	var all []Indicator
	var errs []error
	skipped := 0
	read := func(paths []string, k Kind) {
		for _, p := range paths {
			fh, err := os.Open(p)
			if err != nil {
				errs = append(errs, fmt.Errorf("intel: %w", err))
				continue
			}
			inds, err := ParseList(fh, p, k, "")
			fh.Close()
			all = append(all, inds...)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	read(f.Domains, KindDomain)
	read(f.Addrs, KindAddr)
	read(f.URLs, KindURL)
	read(f.Hashes, KindHash)
	read(f.Mixed, 0)
	for _, p := range f.STIX {
		fh, err := os.Open(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("intel: %w", err))
			continue
		}
		inds, sk, err := ParseSTIX(fh, p, now)
		fh.Close()
		all = append(all, inds...)
		skipped += sk
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s, err := Build(all)
	if err != nil {
		return nil, err
	}
	s.stats.Skipped = skipped
	return s, nil
}
