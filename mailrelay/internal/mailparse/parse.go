// Package mailparse walks an Internet message (RFC 5322 + MIME) the way a
// content filter needs it: decoded headers, every leaf part with its
// transfer encoding removed, text parts converted to UTF-8 (ISO-2022-JP,
// Shift_JIS, EUC-JP, UTF-8 and the other WHATWG charsets), HTML reduced to
// text, and the URLs found in text and HTML.
//
// It never fails: malformed input gives what could be read plus a list of
// defects. Limits (depth, parts, sizes) bound the work on hostile input.
// Functions are safe for concurrent use; a Message is not modified after
// Parse returns.
package mailparse

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/japanese"
)

// Limits bound the work Parse does. Zero fields take the defaults.
type Limits struct {
	// MaxDepth is the deepest multipart nesting walked (default 10).
	MaxDepth int
	// MaxParts is the most leaf parts returned (default 200).
	MaxParts int
	// MaxText is the most bytes of decoded text kept per text part
	// (default 256 KiB).
	MaxText int
}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = 10
	}
	if l.MaxParts <= 0 {
		l.MaxParts = 200
	}
	if l.MaxText <= 0 {
		l.MaxText = 256 << 10
	}
	return l
}

// Field is one header field, its value unfolded and MIME words decoded.
type Field struct {
	Name  string // as written
	Value string // decoded to UTF-8
	Raw   string // unfolded, not decoded
}

// Header is the ordered list of header fields of a message or part.
type Header []Field

// Get returns the decoded value of the first field named name
// (case-insensitive), or "".
func (h Header) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Has reports whether a field named name exists.
func (h Header) Has(name string) bool {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// Count returns how many fields are named name.
func (h Header) Count(name string) int {
	n := 0
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			n++
		}
	}
	return n
}

// Part is one leaf of the MIME tree.
type Part struct {
	Header Header
	// MediaType is the lower-case type/subtype ("text/plain" when absent).
	MediaType string
	// Charset is the declared charset, lower case ("" when none).
	Charset string
	// Filename comes from Content-Disposition filename= or Content-Type
	// name=, decoded.
	Filename string
	// Attachment is true for Content-Disposition: attachment or a part
	// with a file name that is not text.
	Attachment bool
	// Encoding is the lower-case Content-Transfer-Encoding.
	Encoding string
	// Body is the content with the transfer encoding removed.
	Body []byte
	// Text is Body converted to UTF-8 for text/* parts (HTML reduced to
	// text for text/html); "" for others.
	Text string
	// Depth is the multipart nesting level (0 for a single-part message).
	Depth int
}

// IsText reports whether the part is text/plain or text/html.
func (p *Part) IsText() bool {
	return p.MediaType == "text/plain" || p.MediaType == "text/html"
}

// Message is a parsed message.
type Message struct {
	Header Header
	// Parts are the leaves in order.
	Parts []Part
	// Subject is the decoded Subject.
	Subject string
	// URLs are the distinct http(s) URLs and bare www. names found in
	// text and HTML parts (href and src too), in order of appearance.
	URLs []string
	// HTMLOnly is true when there is an HTML part but no text/plain
	// alternative with content.
	HTMLOnly bool
	// Defects name the malformations met ("missing boundary", "bad
	// base64", ...).
	Defects []string
}

// Text returns the text of the message: the plain parts, or the HTML
// parts reduced to text where a multipart/alternative has no plain
// alternative, joined by newlines.
func (m *Message) Text() string {
	var b strings.Builder
	for i := range m.Parts {
		p := &m.Parts[i]
		if p.Text == "" || p.Attachment {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Text)
	}
	return b.String()
}

type parser struct {
	lim   Limits
	m     *Message
	urls  map[string]bool
	plain bool
	html  bool
}

// Parse parses raw (CRLF or LF line ends) within lim.
func Parse(raw []byte, lim Limits) *Message {
	p := &parser{lim: lim.withDefaults(), m: &Message{}, urls: map[string]bool{}}
	h, body := SplitHeader(raw)
	if !looksLikeHeader(raw) {
		// Bare text with no header (a body pasted alone): all body.
		h, body = nil, raw
		p.defect("no header")
	}
	p.m.Header = ParseHeader(h)
	p.m.Subject = p.m.Header.Get("Subject")
	p.walk(p.m.Header, body, 0)
	p.m.HTMLOnly = p.html && !p.plain
	return p.m
}

func (p *parser) defect(s string) {
	for _, d := range p.m.Defects {
		if d == s {
			return
		}
	}
	if len(p.m.Defects) < 32 {
		p.m.Defects = append(p.m.Defects, s)
	}
}

// looksLikeHeader reports whether raw starts with a header field (or an
// mbox "From " line, or an empty header).
func looksLikeHeader(raw []byte) bool {
	line := raw
	if i := bytes.IndexByte(raw, '\n'); i >= 0 {
		line = raw[:i]
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 || bytes.HasPrefix(line, []byte("From ")) {
		return true
	}
	name, _, ok := bytes.Cut(line, []byte(":"))
	return ok && IsFieldName(name)
}

// HasHeader reports whether raw starts with a header section (a field,
// an mbox "From " line or the empty line); Parse treats anything else as
// a body without header.
func HasHeader(raw []byte) bool { return looksLikeHeader(raw) }

// IsFieldName reports whether name is a valid header field name: 1–76
// printable ASCII characters other than space and colon.
func IsFieldName(name []byte) bool {
	if len(name) == 0 || len(name) > 76 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// SplitHeader splits raw at the first empty line into the header block
// and the body. A message without an empty line is all header.
func SplitHeader(raw []byte) (header, body []byte) {
	if bytes.HasPrefix(raw, []byte("\r\n")) {
		return nil, raw[2:]
	}
	if bytes.HasPrefix(raw, []byte("\n")) {
		return nil, raw[1:]
	}
	i := bytes.Index(raw, []byte("\n\r\n"))
	j := bytes.Index(raw, []byte("\n\n"))
	switch {
	case i >= 0 && (j < 0 || i < j):
		return raw[:i+1], raw[i+3:]
	case j >= 0:
		return raw[:j+1], raw[j+2:]
	}
	return raw, nil
}

// ParseHeader parses a header block: fields unfolded, values decoded.
// Lines that are neither fields nor continuations are skipped. At most
// 1000 fields are returned.
func ParseHeader(h []byte) Header {
	var out Header
	var name string
	var val []byte
	flush := func() {
		if name != "" && len(out) < 1000 {
			raw := strings.TrimSpace(string(val))
			out = append(out, Field{Name: name, Raw: raw, Value: DecodeHeader(raw)})
		}
		name, val = "", val[:0]
	}
	for len(h) > 0 {
		line := h
		if i := bytes.IndexByte(h, '\n'); i >= 0 {
			line, h = h[:i], h[i+1:]
		} else {
			h = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if name != "" && len(val) < 64<<10 {
				val = append(val, ' ')
				val = append(val, bytes.TrimLeft(line, " \t")...)
			}
			continue
		}
		flush()
		n, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(n) == 0 || bytes.ContainsAny(n, " \t") {
			continue
		}
		name = string(n)
		val = append(val[:0], v...)
	}
	flush()
	return out
}

// Charset returns a decoder for a charset label, or nil when the label
// is unknown. "utf-8", "us-ascii" and "" return nil too (no conversion).
func Charset(label string) *encoding.Decoder {
	label = strings.ToLower(strings.Trim(strings.TrimSpace(label), `"'`))
	switch label {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return nil
	case "iso-2022-jp", "iso-2022-jp-2", "iso-2022-jp-3", "iso-2022-jp-ms", "csiso2022jp":
		return japanese.ISO2022JP.NewDecoder()
	case "shift_jis", "shift-jis", "sjis", "x-sjis", "cp932", "windows-31j", "ms932", "ms_kanji", "csshiftjis":
		return japanese.ShiftJIS.NewDecoder()
	case "euc-jp", "x-euc-jp", "eucjp", "ujis", "cseucpkdfmtjapanese", "cp51932":
		return japanese.EUCJP.NewDecoder()
	}
	e, err := htmlindex.Get(label)
	if err != nil {
		return nil
	}
	return e.NewDecoder()
}

// ToUTF8 converts b from charset to valid UTF-8. Unknown or absent
// charsets: bytes that are already UTF-8 are kept, ISO-2022-JP escape
// sequences are recognised, anything else is read as Windows-1252.
func ToUTF8(b []byte, charset string) string {
	d := Charset(charset)
	if d == nil {
		if utf8.Valid(b) {
			if bytes.Contains(b, []byte("\x1b$B")) || bytes.Contains(b, []byte("\x1b$@")) {
				d = japanese.ISO2022JP.NewDecoder()
			} else {
				return string(b)
			}
		} else if guess := guessJapanese(b); guess != nil {
			d = guess
		} else {
			d = Charset("windows-1252")
		}
	}
	out, err := d.Bytes(b)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return strings.ToValidUTF8(string(out), "\uFFFD")
}

// guessJapanese picks Shift_JIS or EUC-JP for undeclared 8-bit text when
// one of them decodes it without errors (EUC-JP first: its byte ranges
// are narrower).
func guessJapanese(b []byte) *encoding.Decoder {
	if len(b) > 4096 {
		b = b[:4096]
	}
	for _, e := range []encoding.Encoding{japanese.EUCJP, japanese.ShiftJIS} {
		out, err := e.NewDecoder().Bytes(b)
		if err == nil && !bytes.Contains(out, []byte("\uFFFD")) {
			return e.NewDecoder()
		}
	}
	return nil
}

var wordDecoder = &mime.WordDecoder{CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
	d := Charset(charset)
	if d == nil {
		return r, nil
	}
	return d.Reader(r), nil
}}

// DecodeHeader decodes MIME encoded words (RFC 2047) in a header value;
// raw 8-bit or ISO-2022-JP values are converted to UTF-8 as ToUTF8 does.
// It never fails: undecodable words are kept as written.
func DecodeHeader(v string) string {
	if !utf8.ValidString(v) || strings.Contains(v, "\x1b") {
		v = ToUTF8([]byte(v), "")
	}
	if !strings.Contains(v, "=?") {
		return v
	}
	d, err := wordDecoder.DecodeHeader(v)
	if err != nil {
		return v
	}
	return strings.ToValidUTF8(d, "\uFFFD")
}

// DecodeTransfer removes a Content-Transfer-Encoding. Base64 is decoded
// leniently (characters outside the alphabet skipped, a broken tail
// dropped); quoted-printable likewise. ok is false when the input was
// malformed.
func DecodeTransfer(b []byte, enc string) (out []byte, ok bool) {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "base64":
		return decodeBase64(b)
	case "quoted-printable":
		r := quotedprintable.NewReader(bytes.NewReader(b))
		out, err := io.ReadAll(r)
		if err != nil {
			return out, false
		}
		return out, true
	}
	return b, true
}

func decodeBase64(b []byte) ([]byte, bool) {
	clean := make([]byte, 0, len(b))
	ok := true
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		case c == '=' || c == '\r' || c == '\n' || c == ' ' || c == '\t':
		default:
			ok = false
		}
	}
	if r := len(clean) % 4; r == 1 {
		clean, ok = clean[:len(clean)-1], false
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, err := base64.RawStdEncoding.Decode(out, clean)
	if err != nil {
		ok = false
	}
	return out[:n], ok
}

// params parses a Content-Type or Content-Disposition value leniently.
func params(v string) (string, map[string]string) {
	mt, ps, err := mime.ParseMediaType(v)
	if err == nil {
		return strings.ToLower(mt), ps
	}
	// Lenient fallback: type before ';', key=value pairs after.
	parts := strings.Split(v, ";")
	ps = map[string]string{}
	for _, kv := range parts[1:] {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		ps[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(val), `"`)
	}
	return strings.ToLower(strings.TrimSpace(parts[0])), ps
}

func (p *parser) walk(h Header, body []byte, depth int) {
	if len(p.m.Parts) >= p.lim.MaxParts {
		p.defect("too many parts")
		return
	}
	ct := h.Get("Content-Type")
	mt, ps := "text/plain", map[string]string(nil)
	if ct != "" {
		mt, ps = params(ct)
		if !strings.Contains(mt, "/") {
			p.defect("bad content-type")
			mt = "text/plain"
		}
	}
	if strings.HasPrefix(mt, "multipart/") {
		if depth >= p.lim.MaxDepth {
			p.defect("multipart too deep")
			return
		}
		b := ps["boundary"]
		if b == "" {
			p.defect("missing boundary")
			p.leaf(h, "text/plain", nil, body, depth)
			return
		}
		parts, closed := splitMultipart(body, b)
		if !closed {
			p.defect("unterminated multipart")
		}
		for _, part := range parts {
			ph, pb := SplitHeader(part)
			p.walk(ParseHeader(ph), pb, depth+1)
		}
		return
	}
	if mt == "message/rfc822" && depth < p.lim.MaxDepth {
		enc := strings.ToLower(h.Get("Content-Transfer-Encoding"))
		inner, _ := DecodeTransfer(body, enc)
		ih, ib := SplitHeader(inner)
		p.walk(ParseHeader(ih), ib, depth+1)
		return
	}
	p.leaf(h, mt, ps, body, depth)
}

func (p *parser) leaf(h Header, mt string, ps map[string]string, body []byte, depth int) {
	part := Part{Header: h, MediaType: mt, Depth: depth}
	part.Charset = strings.ToLower(ps["charset"])
	part.Encoding = strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	disp, dps := params(h.Get("Content-Disposition"))
	part.Filename = DecodeHeader(dps["filename"])
	if part.Filename == "" {
		part.Filename = DecodeHeader(ps["name"])
	}
	dec, ok := DecodeTransfer(body, part.Encoding)
	if !ok {
		p.defect("bad " + part.Encoding)
	}
	part.Body = dec
	part.Attachment = disp == "attachment" || (part.Filename != "" && !part.IsText())
	if part.IsText() && !part.Attachment {
		t := dec
		if len(t) > p.lim.MaxText {
			t = t[:p.lim.MaxText]
		}
		s := ToUTF8(t, part.Charset)
		if mt == "text/html" {
			var urls []string
			s, urls = HTMLText(s)
			for _, u := range urls {
				p.addURL(u)
			}
			if strings.TrimSpace(s) != "" {
				p.html = true
			}
		} else if strings.TrimSpace(s) != "" {
			p.plain = true
		}
		for _, u := range FindURLs(s) {
			p.addURL(u)
		}
		part.Text = s
	}
	p.m.Parts = append(p.m.Parts, part)
}

func (p *parser) addURL(u string) {
	if p.urls[u] || len(p.m.URLs) >= 500 {
		return
	}
	p.urls[u] = true
	p.m.URLs = append(p.m.URLs, u)
}

// splitMultipart returns the bodies between boundary delimiter lines;
// closed is false when the close delimiter is missing.
func splitMultipart(body []byte, boundary string) (parts [][]byte, closed bool) {
	delim := []byte("--" + boundary)
	var cur []byte
	started := false
	start := 0
	pos := 0
	for pos <= len(body) {
		end := bytes.IndexByte(body[pos:], '\n')
		var line []byte
		next := len(body) + 1
		if end < 0 {
			line = body[pos:]
		} else {
			line = body[pos : pos+end]
			next = pos + end + 1
		}
		tl := bytes.TrimRight(line, " \t\r")
		if bytes.HasPrefix(tl, delim) {
			rest := tl[len(delim):]
			if len(rest) == 0 || bytes.Equal(rest, []byte("--")) {
				if started {
					// The CRLF before the delimiter belongs to it.
					e := pos
					if e > start && body[e-1] == '\n' {
						e--
						if e > start && body[e-1] == '\r' {
							e--
						}
					}
					cur = body[start:e]
					parts = append(parts, cur)
				}
				if len(rest) == 2 {
					return parts, true
				}
				started = true
				start = min(next, len(body))
			}
		}
		pos = next
		if len(parts) > 1000 {
			break
		}
	}
	if started && start < len(body) {
		parts = append(parts, body[start:])
	}
	return parts, false
}
