// Package inspect is the decoding and extra-detection layer of the WAF
// engine: it takes a request apart (path, query, headers, cookies, form,
// multipart, JSON and XML bodies), decodes every value the ways attackers
// encode it (percent, HTML entities, JavaScript escapes, base64, Unicode
// compatibility forms, comment and concatenation tricks) and runs
// libinjection and attack-class detectors on every decoded form.
//
// It complements the OWASP CRS run by Coraza (see package waf): CRS sees
// the request as sent, this layer sees what the application will decode.
// All functions are safe for concurrent use; nothing is global but
// read-only tables.
package inspect

import (
	"bytes"
	"encoding/xml"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/tidwall/gjson"
)

// Request is the part of an HTTP request the layer inspects.
type Request struct {
	Method string
	// URI is the request target as received ("/a/b?c=d").
	URI    string
	Header http.Header
	Body   []byte
}

// skipHeaders are structured headers left to CRS's protocol rules.
var skipHeaders = map[string]bool{
	"Accept": true, "Accept-Encoding": true, "Accept-Language": true, "Accept-Charset": true,
	"Content-Type": true, "Content-Length": true, "Connection": true, "Cache-Control": true,
	"Pragma": true, "If-Modified-Since": true, "If-None-Match": true, "If-Match": true,
	"If-Unmodified-Since": true, "If-Range": true, "Range": true, "Upgrade-Insecure-Requests": true,
	"Dnt": true, "Te": true, "Priority": true, "Sec-Fetch-Dest": true, "Sec-Fetch-Mode": true,
	"Sec-Fetch-Site": true, "Sec-Fetch-User": true, "Sec-Ch-Ua": true, "Sec-Ch-Ua-Mobile": true,
	"Sec-Ch-Ua-Platform": true, "Authorization": true, "Cookie": true, "User-Agent": true,
	"Traceparent": true, "Tracestate": true, "X-Forwarded-For": true, "Forwarded": true,
	"Content-Encoding": true, "Transfer-Encoding": true, "Expect": true,
}

// Limits bound the work done on one request.
const (
	maxValues    = 512
	maxValueLen  = 256 << 10
	maxJSONDepth = 64
	// maxRequestScan bounds the value bytes one request feeds to the
	// detectors (CPU bound per request); CRS still sees everything.
	maxRequestScan = 512 << 10
)

// Scan inspects r and returns what the detectors found (nil when
// nothing). It keeps no state; see Scanner for a memo of clean values.
func Scan(r *Request) []Finding { return (*Scanner)(nil).Scan(r) }

// Scanner is Scan with a memo of values found clean (header values, paths
// and parameters repeat across requests). A nil *Scanner scans without a
// memo. Safe for concurrent use.
type Scanner struct {
	clean *lru.Cache[string, struct{}]
}

// maxMemoValue is the longest value remembered as clean.
const maxMemoValue = 512

// NewScanner returns a Scanner remembering up to size clean values (0
// means 65,536).
func NewScanner(size int) *Scanner {
	if size <= 0 {
		size = 1 << 16
	}
	c, _ := lru.New[string, struct{}](size)
	return &Scanner{clean: c}
}

// Scan inspects r like the package function Scan.
func (sc *Scanner) Scan(r *Request) []Finding {
	var out []Finding
	n, budget := 0, maxRequestScan
	val := func(w Where, name, v string) {
		if n >= maxValues || budget <= 0 {
			return
		}
		n++
		budget -= min(len(v), maxScan)
		if len(v) > maxValueLen {
			v = v[:maxValueLen]
		}
		if sc == nil || len(v) > maxMemoValue || len(v) < 8 && plain(v) {
			out = Value(w, name, v, out)
			return
		}
		key := string(rune('a'+w)) + name + "\x00" + v
		if _, ok := sc.clean.Get(key); ok {
			return
		}
		before := len(out)
		out = Value(w, name, v, out)
		if len(out) == before {
			sc.clean.Add(key, struct{}{})
		}
	}
	path, query, _ := strings.Cut(r.URI, "?")
	if i := strings.Index(path, "://"); i >= 0 && !strings.HasPrefix(path, "/") { // absolute-form
		if j := strings.IndexByte(path[i+3:], '/'); j >= 0 {
			path = path[i+3+j:]
		} else {
			path = "/"
		}
	}
	if path != "/" && path != "" {
		val(InPath, "", path)
		// A base64 payload can contain '/': try the whole path too.
		if b, ok := DecodeBase64(PercentDecode(strings.TrimPrefix(path, "/"))); ok {
			val(InPath, "", b)
		}
	}
	if split := formValues(query, InArg, val); split {
		// A payload split by '&' into several parameters is seen whole.
		val(InArg, "QUERY_STRING", formUnescape(query))
	}
	for name, vs := range r.Header {
		switch {
		case name == "User-Agent":
			for _, v := range vs {
				val(InUserAgent, name, v)
			}
		case name == "Cookie":
			for _, v := range vs {
				for _, c := range strings.Split(v, ";") {
					k, cv, _ := strings.Cut(strings.TrimSpace(c), "=")
					val(InCookie, k, cv)
				}
			}
		case name == "Referer":
			for _, v := range vs {
				if u, err := url.Parse(v); err == nil {
					formValues(u.RawQuery, InHeader, val)
					val(InHeader, name, u.Path)
				} else {
					val(InHeader, name, v)
				}
			}
		case !skipHeaders[name]:
			for _, v := range vs {
				val(InHeader, name, v)
			}
		}
	}
	if len(r.Body) > 0 {
		body(r, val)
	}
	return out
}

// formValues feeds the names and values of a urlencoded string. It
// reports whether there are several parameters of which one has syntax
// characters (then the whole string is worth a look: a payload may have
// been split by '&').
func formValues(q string, w Where, val func(Where, string, string)) (split bool) {
	if q == "" {
		return false
	}
	parts := strings.Split(q, "&")
	for _, kv := range parts {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if strings.IndexByte(v, '+') >= 0 {
			// '+' is a space in forms but also a base64 digit.
			if b, ok := DecodeBase64(PercentDecode(v)); ok {
				val(w, k, b)
			}
		}
		k = formUnescape(k)
		v = formUnescape(v)
		if k != "" {
			nw := InArgName
			if w != InArg {
				nw = w
			}
			val(nw, "", k)
		}
		val(w, k, v)
		if len(parts) > 1 && (!plain(k) || !plain(v)) {
			split = true
		}
	}
	return split
}

func formUnescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return PercentDecode(strings.ReplaceAll(s, "+", " "))
}

// body feeds the values of a request body by its content type. Binary
// types (application/octet-stream, images, ...) are not parsed as forms.
func body(r *Request, val func(Where, string, string)) {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(strings.Split(ct, ";")[0]))
	}
	b := r.Body
	switch {
	case mt == "application/x-www-form-urlencoded":
		if formValues(string(b), InArg, val) {
			val(InBody, "", formUnescape(string(b)))
		}
	case mt == "multipart/form-data" || mt == "multipart/mixed":
		multipartValues(b, params["boundary"], val)
	case mt == "application/json" || strings.HasSuffix(mt, "+json") || (mt == "" && looksJSON(b)):
		if !jsonValues(b, val) {
			val(InBody, "", string(b))
		}
	case strings.HasSuffix(mt, "/xml") || strings.HasSuffix(mt, "+xml") || (mt == "" && looksXML(b)):
		xmlValues(b, val)
	case mt == "application/octet-stream" || strings.HasPrefix(mt, "image/") || strings.HasPrefix(mt, "video/") ||
		strings.HasPrefix(mt, "audio/") || mt == "application/zip" || mt == "application/pdf" || mt == "application/grpc":
		// binary: not parsed, not scanned as text
	default:
		val(InBody, "", string(b))
		if mt == "" || mt == "text/plain" {
			formValues(string(b), InArg, val)
		}
	}
}

func looksJSON(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 1 && (b[0] == '{' || b[0] == '[')
}

func looksXML(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 1 && b[0] == '<'
}

func multipartValues(b []byte, boundary string, val func(Where, string, string)) {
	if boundary == "" {
		val(InBody, "", string(b))
		return
	}
	mr := multipart.NewReader(bytes.NewReader(b), boundary)
	for i := 0; i < maxValues; i++ {
		p, err := mr.NextPart()
		if err != nil {
			if err != io.EOF {
				val(InBody, "", string(b)) // malformed: scan the raw body
			}
			return
		}
		// Part names and file names are attacker-controlled too.
		_, dp, _ := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		name := dp["name"]
		if name == "" {
			name = rawParam(p.Header.Get("Content-Disposition"), "name")
		}
		val(InArgName, "", name)
		if fn := dp["filename"]; fn != "" {
			val(InArg, "filename", fn)
		}
		data, _ := io.ReadAll(io.LimitReader(p, maxValueLen))
		pct := p.Header.Get("Content-Type")
		if pct == "" || strings.HasPrefix(pct, "text/") {
			val(InArg, name, string(data))
		}
	}
}

// rawParam finds name="..." in a header value that mime could not parse.
func rawParam(h, name string) string {
	i := strings.Index(strings.ToLower(h), name+"=")
	if i < 0 {
		return ""
	}
	v := h[i+len(name)+1:]
	if strings.HasPrefix(v, `"`) {
		if j := strings.IndexByte(v[1:], '"'); j >= 0 {
			return v[1 : j+1]
		}
		return v[1:]
	}
	if j := strings.IndexAny(v, "; "); j >= 0 {
		return v[:j]
	}
	return v
}

// jsonValues feeds every key and string (and number) of a JSON document
// in document order, walking it in place (gjson: no tree is built, strings
// without escapes are not copied) and stopping after maxValues values;
// false when it is not JSON.
func jsonValues(b []byte, val func(Where, string, string)) bool {
	s := unsafe.String(unsafe.SliceData(b), len(b))
	if !gjson.Valid(s) {
		return false
	}
	fed := 0
	feed := func(w Where, name, v string) bool {
		val(w, name, v)
		fed++
		return fed < maxValues
	}
	var walk func(key string, v gjson.Result, depth int) bool
	walk = func(key string, v gjson.Result, depth int) bool {
		if depth > maxJSONDepth {
			return true
		}
		switch v.Type {
		case gjson.JSON:
			more := true
			obj := v.IsObject()
			v.ForEach(func(k, x gjson.Result) bool {
				name := key
				if obj {
					name = k.Str
					if !feed(InArgName, "", name) {
						more = false
						return false
					}
				}
				more = walk(name, x, depth+1)
				return more
			})
			return more
		case gjson.String:
			if !feed(InArg, key, v.Str) {
				return false
			}
			if looksJSON([]byte(v.Str)) { // JSON in a string (GraphQL variables, ...)
				jsonValues([]byte(v.Str), val)
			}
			return true
		case gjson.Number:
			return feed(InArg, key, v.Raw)
		}
		return true
	}
	walk("", gjson.Parse(s), 0)
	return true
}

// xmlValues feeds the raw document (for DOCTYPE/ENTITY checks), the
// element and attribute values.
func xmlValues(b []byte, val func(Where, string, string)) {
	val(InXML, "", string(b))
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = false
	d.Entity = xml.HTMLEntity
	for i := 0; i < maxValues*4; i++ {
		tok, err := d.RawToken()
		if err != nil {
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			for _, a := range t.Attr {
				val(InArg, a.Name.Local, a.Value)
			}
		case xml.CharData:
			if s := strings.TrimSpace(string(t)); s != "" {
				val(InArg, "", s)
			}
		}
	}
}
