package waf

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The fast path skips Coraza for GET/HEAD requests without a body whose
// parts are each known to be clean. A request is split into
//
//   - its skeleton: method, protocol, Host, path and every header — a
//     Coraza run on the skeleton alone (no query) must match no rule;
//   - its query parameters: each name=value pair, run by Coraza inside a
//     canonical request (GET /?name=value with a browser User-Agent and
//     Accept: */*), must match no rule. A value made only of decimal
//     digits is memoised by its length ("shape"): no CRS rule tells one
//     digit string from another of the same length.
//
// Results are memoised (an LRU of MemoSize entries per engine), so a
// request whose skeleton and parameters were seen before costs a few map
// lookups. Our own detection layer (package inspect) still runs on every
// request; only Coraza is skipped.
//
// Why the parts compose: CRS rules that look at arguments evaluate each
// argument on its own (ARGS, ARGS_NAMES), and the fast path admits only
// queries whose names are [A-Za-z0-9_.-] and whose values, decoded, are
// letters, digits, '-', '.', '_', '~' or non-ASCII UTF-8 text — no
// spaces, quotes, slashes or operators — so that rules over the whole
// REQUEST_URI / QUERY_STRING cannot match across two parameters either,
// at most 32 parameters and 4 KiB of query, no repeated names. Rules
// that count arguments or their total size are not enabled in the default
// CRS setup. The claim is checked by TestFastPathDifferential (every
// corpus request gets the same verdict with and without the fast path) and
// FuzzFastPath (random eligible queries, both ways).

const (
	fastMaxParams = 32
	fastMaxQuery  = 4 << 10
)

// fastClean reports whether the fast path proves the request clean for
// Coraza.
func (e *CRSEngine) fastClean(pi int, req *Request, path, query string) bool {
	if req.Method != "GET" && req.Method != "HEAD" || len(req.Body) > 0 {
		return false
	}
	if len(req.Header["Content-Length"])+len(req.Header["Transfer-Encoding"])+len(req.Header["Content-Type"]) > 0 {
		return false
	}
	pairs, ok := fastQuery(query)
	if !ok {
		return false
	}
	// skeleton
	pfx := strconv.Itoa(pi) + "\x00"
	skel := e.skeletonKey(pfx, req, path)
	if !e.memoClean(skel, func() bool { return e.clean(pi, req.Method, path, req.Proto, req.Host, req.Header) }) {
		return false
	}
	return e.queryClean(pi, pfx, pairs)
}

// fastMemoKey bounds the memo's keys: a request part whose key is longer
// (a skeleton with long header values, e.g. a new 2 KiB header on every
// request) is judged every time rather than remembered, so the memo
// holds at most MemoSize × fastMemoKey bytes of keys (64 MiB by default).
const fastMemoKey = 1 << 10

func (e *CRSEngine) memoClean(key string, compute func() bool) bool {
	if len(key) > fastMemoKey {
		return compute()
	}
	if v, ok := e.memo.Get(key); ok {
		return v
	}
	v := compute()
	e.memo.Add(key, v)
	return v
}

func (e *CRSEngine) skeletonKey(pfx string, req *Request, path string) string {
	var b strings.Builder
	b.Grow(256)
	b.WriteString(pfx)
	b.WriteString("s\x00")
	b.WriteString(req.Method)
	b.WriteByte(0)
	b.WriteString(req.Proto)
	b.WriteByte(0)
	b.WriteString(req.Host)
	b.WriteByte(0)
	b.WriteString(path)
	names := make([]string, 0, len(req.Header))
	for k := range req.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range req.Header[k] {
			b.WriteByte(0)
			b.WriteString(k)
			b.WriteByte(':')
			if k == "Content-Length" && digits(v) {
				// no rule tells one length from another of as many digits
				b.WriteString("#" + strconv.Itoa(len(v)))
				continue
			}
			b.WriteString(v)
		}
	}
	return b.String()
}

func fastName(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(isAlnum(c) || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// fastValue accepts a raw (percent-encoded) value whose decoded form is
// letters, digits, "-._~" and valid non-ASCII UTF-8.
func fastValue(v string) bool {
	if len(v) > 1024 {
		return false
	}
	var dec [1024]byte
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~':
			dec[n] = c
		case c == '%' && i+2 < len(v):
			h, ok1 := unhexByte(v[i+1])
			l, ok2 := unhexByte(v[i+2])
			if !ok1 || !ok2 {
				return false
			}
			d := h<<4 | l
			if d < 0x80 && !(isAlnum(d) || d == '-' || d == '.' || d == '_' || d == '~') {
				return false
			}
			dec[n] = d
			i += 2
		default:
			return false
		}
		n++
	}
	s := dec[:n]
	if !utf8.Valid(s) {
		return false
	}
	// Non-ASCII characters that fold to ASCII syntax (full-width forms,
	// small forms, ...) are not admitted.
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		s = s[size:]
		if r >= 0x80 && (r < 0x3000 && r != 0xB7 || r >= 0xFE00 && r <= 0xFFFF || r == 0x3000) {
			return false
		}
	}
	return true
}

func digits(v string) bool {
	if v == "" || len(v) > 19 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func unhexByte(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// leakPatterns find data an origin should not return: database errors
// (the injection reached the database), system files and stack traces.
var leakPatterns = []struct {
	id  int
	msg string
	re  *regexp.Regexp
}{
	{990901, "database error in the response (injection reached the database)", regexp.MustCompile(`(?i)you have an error in your sql syntax|warning:\s+(?:mysql|mysqli|pg|sqlite|oci|mssql)_\w+|\bORA-\d{5}\b|PG::\w+Error|\bSQLSTATE\[|unclosed quotation mark after the character string|microsoft (?:ole db|odbc) (?:provider|driver)|sqlite3?\.OperationalError|psycopg2\.errors|syntax error at or near|com\.mysql\.jdbc|org\.postgresql\.util\.PSQLException|SQLiteException|quoted string not properly terminated`)},
	{990902, "system file content in the response", regexp.MustCompile(`root:[x*]?:0:0:|\[boot loader\]|\[extensions\]\s*\r?\n`)},
	{990903, "stack trace or interpreter error in the response", regexp.MustCompile(`Traceback \(most recent call last\)|(?:Fatal error|Parse error|Warning)</b>:\s.+ on line <b>\d+|\bat [\w$.]+\([\w]+\.java:\d+\)|uid=\d+\([\w-]+\) gid=\d+`)},
}

func inspectLeak(body []byte) []Match {
	var out []Match
	for _, p := range leakPatterns {
		if loc := p.re.FindIndex(body); loc != nil {
			m := string(body[loc[0]:min(loc[1], loc[0]+80)])
			out = append(out, Match{ID: p.id, Msg: p.msg, Data: strconv.Quote(m), Severity: 2})
		}
	}
	return out
}
