package waf

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// The body fast path extends the GET fast path (engine_fast.go) to
// requests with an application/x-www-form-urlencoded or application/json
// body. Coraza is skipped when every part is known clean:
//
//   - the skeleton: method, protocol, Host, path and every header (the
//     Content-Length value keyed by its digit count), run by Coraza
//     without the body — memoised as for GET;
//   - the query parameters, as for GET;
//   - every argument the body gives Coraza (ARGS_POST): for a form each
//     name=value pair, for JSON each flattened leaf "json.a.0.b" = value
//     and each array-length entry, exactly as Coraza's JSON body processor
//     flattens it (same parser, gjson). Pairs not in the memo are run by
//     Coraza together, as the urlencoded body of a canonical POST request
//     (at most fastBatchPairs per run); when that run matches nothing,
//     each of its pairs is clean (CRS rules over ARGS / ARGS_NAMES
//     evaluate each argument on its own; the rules that count arguments
//     or add up their sizes are not enabled in the default CRS setup) and
//     is remembered;
//   - for a form, the rules over the raw REQUEST_BODY (920240 URL
//     encoding, 920260, 920270, 921110, 931110, 944xxx, ...) run on the
//     whole body in a canonical request whose body processor is RAW (so
//     no ARGS); this part is not memoised. A JSON body has no
//     REQUEST_BODY in Coraza.
//
// Memo keys: a pair is keyed by its decoded name and value. In JSON
// names, array indexes (all-digit segments) are keyed by their length; in
// values, a run of ASCII digits that touches no letter, digit or '_' is
// keyed by its length when the value holds only letters, digits, space,
// "-.:+,_" and non-ASCII text (no quotes, slashes, brackets, operators):
// "S-004711", "2026-11-26", "38.268200" and "本町3-4-5" share their
// keys with the same shapes. The claim (no CRS rule tells such digit
// runs apart) extends the GET fast path's digit-only values; it is
// checked by TestBodyFastPathDifferential and FuzzBodyFastPath, which
// warm the memo with a digit-rotated sibling before comparing verdicts.
//
// Bounds: a body whose unknown pairs exceed fastBodyMissPairs pairs or
// fastBodyMissBytes bytes goes to the full Coraza run (one such body in
// four first teaches the memo the pairs collected, at most
// fastBodyMissPairs, so a site's varied JSON becomes known while a flood
// of new values costs at most about a quarter more); values longer than
// fastMemoValue bytes, and pairs whose key exceeds fastMemoKey bytes,
// are checked but not remembered.

const (
	fastBatchPairs    = 256
	fastBatchBytes    = 128 << 10
	fastBodyMissPairs = 1024
	fastBodyMissBytes = 256 << 10
	fastMemoValue     = 4 << 10
	fastJSONDepth     = 64
	// coraza's JSON body processor: the flattened form may not exceed 8×
	// the body (at least 4096 bytes), else it is a body error (400).
	corazaFlattenFactor = 8
	corazaFlattenFloor  = 4096
)

// canonFormHeader are the headers of the canonical POST request in which
// unknown body pairs are evaluated.
var canonFormHeader = http.Header{"User-Agent": {"Mozilla/5.0"}, "Accept": {"*/*"},
	"Content-Type": {"application/x-www-form-urlencoded"}, "Content-Length": {"0"}}

// canonPost returns the headers of a canonical POST with this content
// type and length.
func canonPost(ct []string, n int) http.Header {
	return http.Header{"User-Agent": canonHeader["User-Agent"], "Accept": canonHeader["Accept"],
		"Content-Type": ct, "Content-Length": {strconv.Itoa(n)}}
}

type bodyKind uint8

const (
	bodyOther bodyKind = iota
	bodyForm
	bodyJSON
)

// fastBodyKind accepts only the exact content types whose body processor
// the fast path mirrors.
func fastBodyKind(h http.Header) bodyKind {
	cts := h["Content-Type"]
	if len(cts) != 1 {
		return bodyOther
	}
	switch strings.ToLower(cts[0]) {
	case "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8":
		return bodyForm
	case "application/json", "application/json; charset=utf-8":
		return bodyJSON
	}
	return bodyOther
}

// bodyPairs collects the arguments of a body for the fast path.
type bodyPairs struct {
	e      *CRSEngine
	pfx    string
	misses []string // batch text of each unknown pair ("name=value", encoded)
	keys   []string // memo key of each unknown pair ("" = do not remember)
	seen   map[string]struct{}
	bytes  int
	dirty  bool // a pair is known to match a rule
	over   bool // too many unknown pairs
	keyBuf []byte
}

// add looks one decoded pair up; batch is its urlencoded form.
func (p *bodyPairs) add(name, value string, batch func() string) {
	if p.dirty || p.over {
		return
	}
	b := append(p.keyBuf[:0], p.pfx...)
	b = append(b, "b\x00"...)
	b = append(b, name...)
	b = append(b, 0)
	b = appendShape(b, value)
	p.keyBuf = b
	key := unsafe.String(unsafe.SliceData(b), len(b))
	if v, ok := p.e.memo.Get(key); ok {
		if !v {
			p.dirty = true
		}
		return
	}
	if _, ok := p.seen[key]; ok {
		return
	}
	k := strings.Clone(key)
	p.seen[k] = struct{}{}
	if len(value) > fastMemoValue || len(k) > fastMemoKey {
		k = ""
	}
	text := batch()
	p.misses = append(p.misses, text)
	p.keys = append(p.keys, k)
	p.bytes += len(text)
	if len(p.misses) > fastBodyMissPairs || p.bytes > fastBodyMissBytes {
		p.over = true
	}
}

// fastCleanBody reports whether the fast path proves a request with a
// form or JSON body clean for Coraza.
func (e *CRSEngine) fastCleanBody(pi int, req *Request, path, query string) bool {
	if len(req.Body) == 0 || req.Method == "GET" || req.Method == "HEAD" {
		return false
	}
	kind := fastBodyKind(req.Header)
	if kind == bodyOther {
		return false
	}
	for _, cl := range req.Header["Content-Length"] {
		if !digits(cl) {
			return false
		}
	}
	qpairs, ok := fastQuery(query)
	if !ok {
		return false
	}
	pfx := strconv.Itoa(pi) + "\x00"
	p := &bodyPairs{e: e, pfx: pfx, seen: map[string]struct{}{}}
	body := unsafe.String(unsafe.SliceData(req.Body), len(req.Body))
	switch kind {
	case bodyForm:
		if !formPairs(body, p) {
			return false
		}
	case bodyJSON:
		if !jsonPairs(body, p) {
			return false
		}
	}
	if p.dirty {
		return false
	}
	if p.over {
		// Too much is new for this request to be worth it, but learn
		// what was collected on one such request in four, so that a
		// site's varied JSON becomes known (the extra cost is bounded by
		// fastBodyMissPairs pairs, a quarter of the time).
		if e.overCount.Add(1)%4 == 1 {
			e.learn(pi, p)
		}
		return false
	}
	skel := e.skeletonKey(pfx, req, path)
	if !e.memoClean(skel, func() bool { return e.clean(pi, req.Method, path, req.Proto, req.Host, req.Header) }) {
		return false
	}
	if !e.queryClean(pi, pfx, qpairs) {
		return false
	}
	if !e.learn(pi, p) {
		return false
	}
	if kind == bodyForm {
		// the raw REQUEST_BODY rules, on the whole body
		ms, score, _, in, err := e.run(pi, "POST", "/", "HTTP/1.1", "localhost", canonPost(req.Header["Content-Type"], len(req.Body)), req.Body, nil, true)
		if err != nil || len(ms) > 0 || score > 0 || in != nil {
			return false
		}
	}
	return true
}

// learn runs Coraza on p's unknown pairs in batches and remembers the
// pairs of every batch that matches nothing; false when a batch matched.
func (e *CRSEngine) learn(pi int, p *bodyPairs) bool {
	for start := 0; start < len(p.misses); {
		end, n := start, 0
		for end < len(p.misses) && end-start < fastBatchPairs && (n == 0 || n+len(p.misses[end]) <= fastBatchBytes) {
			n += len(p.misses[end]) + 1
			end++
		}
		batch := strings.Join(p.misses[start:end], "&")
		ms, score, _, in, err := e.run(pi, "POST", "/", "HTTP/1.1", "localhost", canonPost(canonFormHeader["Content-Type"], len(batch)), []byte(batch), nil, false)
		if err != nil || len(ms) > 0 || score > 0 || in != nil {
			return false
		}
		for _, k := range p.keys[start:end] {
			if k != "" {
				e.memo.Add(k, true)
			}
		}
		start = end
	}
	return true
}

// formPairs feeds the pairs of a urlencoded body; false when a pair is
// not well-formed (Coraza's lenient decoding would then differ from
// ours).
func formPairs(body string, p *bodyPairs) bool {
	for rest := body; rest != ""; {
		var seg string
		seg, rest, _ = strings.Cut(rest, "&")
		if seg == "" {
			continue
		}
		k, v, _ := strings.Cut(seg, "=")
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return false
		}
		p.add(dk, dv, func() string { return seg })
		if p.dirty || p.over {
			return true
		}
	}
	return true
}

// jsonPairs feeds the arguments Coraza's JSON body processor makes of
// body: "json" + ".key" / ".index" per level, strings unescaped, null
// as "", other scalars raw, and one "array length" entry per array.
// false when the body is not valid JSON, nests deeper than
// fastJSONDepth or would exceed Coraza's flattening budget.
func jsonPairs(body string, p *bodyPairs) bool {
	if !gjson.Valid(body) || jsonTooDeep(body, fastJSONDepth) {
		return false
	}
	budget := max(len(body)*corazaFlattenFactor, corazaFlattenFloor)
	used := 0
	key := make([]byte, 0, 128)
	shape := make([]byte, 0, 128)
	key = append(key, "json"...)
	shape = append(shape, "json"...)
	ok := true
	var walk func(v gjson.Result)
	walk = func(v gjson.Result) {
		n := 0
		v.ForEach(func(k, x gjson.Result) bool {
			kl, sl := len(key), len(shape)
			key = append(key, '.')
			shape = append(shape, '.')
			if k.Type == gjson.String {
				key = append(key, k.Str...)
				shape = append(shape, k.Str...)
			} else {
				key = strconv.AppendInt(key, int64(k.Num), 10)
				// an array index is keyed by its length
				for i := kl + 1; i < len(key); i++ {
					shape = append(shape, '0')
				}
				n++
			}
			switch x.Type {
			case gjson.JSON:
				walk(x)
			default:
				val := ""
				switch x.Type {
				case gjson.String:
					val = x.Str
				case gjson.Null:
				default:
					val = x.Raw
				}
				used += len(key) + len(val)
				if used > budget {
					ok = false
				}
				name := unsafe.String(unsafe.SliceData(key), len(key))
				p.add(unsafe.String(unsafe.SliceData(shape), len(shape)), val, func() string {
					return pctPair(name, val)
				})
			}
			key, shape = key[:kl], shape[:sl]
			return ok && !p.dirty && !p.over
		})
		if n > 0 && ok && !p.dirty && !p.over {
			// the array's length, under the array's own name
			l := strconv.Itoa(n)
			used += len(key) + len(l)
			if used > budget {
				ok = false
				return
			}
			name := unsafe.String(unsafe.SliceData(key), len(key))
			p.add(unsafe.String(unsafe.SliceData(shape), len(shape)), l, func() string {
				return pctPair(name, l)
			})
		}
	}
	walk(gjson.Parse(body))
	return ok
}

// jsonTooDeep reports whether objects/arrays nest deeper than limit
// (outside strings).
func jsonTooDeep(s string, limit int) bool {
	depth, inStr := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
			if depth > limit {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}

// pctPair returns "name=value" with both percent-encoded (every byte but
// [A-Za-z0-9-._~]), so that Coraza's query decoding gives them back
// exactly. The result never aliases its arguments.
func pctPair(name, value string) string {
	b := make([]byte, 0, len(name)+len(value)+16)
	b = appendPct(b, name)
	b = append(b, '=')
	b = appendPct(b, value)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func appendPct(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return b
}

func unreserved(c byte) bool {
	return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~'
}

// appendShape appends v's memo key: v itself, or, when v holds only
// letters, digits, space, "-.:+,_" and non-ASCII text, v with every
// ASCII digit run that touches no letter, digit or '_' turned into as
// many '0's.
func appendShape(b []byte, v string) []byte {
	if !shapeable(v) {
		return append(b, v...)
	}
	for i := 0; i < len(v); {
		c := v[i]
		if c < '0' || c > '9' {
			b = append(b, c)
			i++
			continue
		}
		j := i
		for j < len(v) && v[j] >= '0' && v[j] <= '9' {
			j++
		}
		standalone := (i == 0 || !wordByte(v[i-1])) && (j == len(v) || !wordByte(v[j]))
		for k := i; k < j; k++ {
			if standalone {
				b = append(b, '0')
			} else {
				b = append(b, v[k])
			}
		}
		i = j
	}
	return b
}

func wordByte(c byte) bool { return isAlnum(c) || c == '_' }

func shapeable(v string) bool {
	if len(v) > fastMemoValue {
		return false
	}
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			if !(isAlnum(c) || strings.IndexByte(" -.:+,_", c) >= 0) {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError || r < 0x3000 && r != 0xB7 || r >= 0xFE00 && r <= 0xFFFF || r == 0x3000 {
			return false // invalid, or forms that fold to ASCII syntax
		}
		i += size
	}
	return true
}

// fastQuery splits a query for the fast path; false when it does not
// qualify (see engine_fast.go).
func fastQuery(query string) ([]string, bool) {
	if len(query) > fastMaxQuery {
		return nil, false
	}
	var pairs []string
	for q := query; q != ""; {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		if len(pairs) == fastMaxParams {
			return nil, false
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !fastName(k) || !fastValue(v) {
			return nil, false
		}
		for _, prev := range pairs {
			if pk, _, _ := strings.Cut(prev, "="); pk == k {
				return nil, false
			}
		}
		pairs = append(pairs, kv)
	}
	return pairs, true
}

// queryClean checks query pairs as the GET fast path does.
func (e *CRSEngine) queryClean(pi int, pfx string, pairs []string) bool {
	for _, kv := range pairs {
		k, v, _ := strings.Cut(kv, "=")
		key := pfx + "q\x00" + k + "=" + v
		if digits(v) {
			key = pfx + "q\x00" + k + "=#" + strconv.Itoa(len(v))
		}
		if !e.memoClean(key, func() bool { return e.clean(pi, "GET", "/?"+kv, "HTTP/1.1", "localhost", canonHeader) }) {
			return false
		}
	}
	return true
}
