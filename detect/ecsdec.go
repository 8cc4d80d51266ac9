package detect

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeFast decodes the ECS document b into e with a scanner specialised
// to the fields AppendECS writes; unknown members are validated and
// skipped. It matches encoding/json's results on every document both
// accept (see FuzzDecodeFast) and runs several times faster.
func decodeFast(b []byte, e *Event) error {
	d := decoder{b: b}
	*e = Event{}
	d.ws()
	if err := d.object(e, pathRoot); err != nil {
		return err
	}
	d.ws()
	if d.i != len(d.b) {
		return d.errf("trailing data after object")
	}
	if e.Kind == "event" {
		e.Kind = ""
	}
	if e.Severity > MaxSeverity {
		return fmt.Errorf("severity %d out of range 0-3", e.Severity)
	}
	return nil
}

// path ids of the objects we descend into.
type path uint8

const (
	pathSkip path = iota
	pathRoot
	pathEvent
	pathOrg
	pathSource
	pathDest
	pathHost
	pathURL
	pathHTTP
	pathHTTPReq
	pathHTTPResp
	pathUA
	pathDNS
	pathDNSQ
	pathEmail
	pathEmailFrom
	pathEmailTo
	pathFile
	pathFileHash
	pathRule
	pathLabels
	pathSeccloud
	pathDNSAnswer
)

var childPath = map[path]map[string]path{
	pathRoot: {"event": pathEvent, "organization": pathOrg, "source": pathSource, "destination": pathDest,
		"host": pathHost, "url": pathURL, "http": pathHTTP, "user_agent": pathUA, "dns": pathDNS,
		"email": pathEmail, "file": pathFile, "rule": pathRule, "labels": pathLabels, "seccloud": pathSeccloud},
	pathHTTP:  {"request": pathHTTPReq, "response": pathHTTPResp},
	pathDNS:   {"question": pathDNSQ},
	pathEmail: {"from": pathEmailFrom, "to": pathEmailTo},
	pathFile:  {"hash": pathFileHash},
}

type decoder struct {
	b []byte
	i int
	// endpoint scratch: ip and port arrive separately.
	srcIP, dstIP     netip.Addr
	srcPort, dstPort uint16
	srcSet, dstSet   bool
}

var errEOF = errors.New("unexpected end of JSON input")

func (d *decoder) errf(format string, a ...any) error {
	return fmt.Errorf("offset %d: "+format, append([]any{d.i}, a...)...)
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) expect(c byte) error {
	d.ws()
	if d.i >= len(d.b) {
		return errEOF
	}
	if d.b[d.i] != c {
		return d.errf("want %q, got %q", c, d.b[d.i])
	}
	d.i++
	return nil
}

func (d *decoder) peek() byte {
	d.ws()
	if d.i >= len(d.b) {
		return 0
	}
	return d.b[d.i]
}

// null consumes a literal null if present.
func (d *decoder) null() (bool, error) {
	if d.peek() != 'n' {
		return false, nil
	}
	return true, d.literal("null")
}

func (d *decoder) literal(s string) error {
	if len(d.b)-d.i < len(s) {
		return errEOF
	}
	if string(d.b[d.i:d.i+len(s)]) != s {
		return d.errf("invalid literal")
	}
	d.i += len(s)
	return nil
}

// object decodes an object at path p into e (after optional whitespace).
func (d *decoder) object(e *Event, p path) error {
	if isNull, err := d.null(); isNull || err != nil {
		return err
	}
	if err := d.expect('{'); err != nil {
		return err
	}
	if d.peek() == '}' {
		d.i++
		return d.endObject(e, p)
	}
	for {
		key, err := d.strBytes()
		if err != nil {
			return err
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		if err := d.member(e, p, key); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return d.endObject(e, p)
		case 0:
			return errEOF
		default:
			return d.errf("want ',' or '}'")
		}
	}
}

func (d *decoder) endObject(e *Event, p path) error {
	switch p {
	case pathSource:
		if d.srcSet {
			e.Client = netip.AddrPortFrom(d.srcIP, d.srcPort)
		}
	case pathDest:
		if d.dstSet {
			e.Dest = netip.AddrPortFrom(d.dstIP, d.dstPort)
		}
	}
	return nil
}

// member decodes the value of key within path p.
func (d *decoder) member(e *Event, p path, key []byte) error {
	if p == pathLabels {
		if isNull, err := d.null(); isNull || err != nil {
			e.Labels = append(e.Labels, Label{Key: string(key)})
			return err
		}
		v, err := d.str()
		if err != nil {
			return err
		}
		e.Labels = append(e.Labels, Label{Key: string(key), Value: v})
		return nil
	}
	if c, ok := childPath[p][string(key)]; ok {
		return d.object(e, c)
	}
	sp := d.strField(e, p, key)
	if sp != nil {
		if isNull, err := d.null(); isNull || err != nil {
			return err
		}
		v, err := d.str()
		*sp = v
		return err
	}
	switch p {
	case pathRoot:
		if string(key) == "@timestamp" {
			if isNull, err := d.null(); isNull || err != nil {
				return err
			}
			raw, err := d.str()
			if err != nil {
				return err
			}
			t, err := time.Parse(time.RFC3339, raw)
			if err != nil {
				return fmt.Errorf("@timestamp: %w", err)
			}
			e.Time = t
			return nil
		}
	case pathEvent:
		switch string(key) {
		case "category":
			return d.firstOfStrings(&e.Category)
		case "type":
			return d.firstOfStrings(&e.Type)
		case "severity":
			v, err := d.uint(8)
			e.Severity = Severity(v)
			return err
		case "duration":
			v, err := d.int(64)
			e.Duration = time.Duration(v)
			return err
		case "risk_score":
			v, err := d.int(strconv.IntSize)
			e.Verdict.Score = int(v)
			return err
		}
	case pathSource, pathDest:
		src := p == pathSource
		switch string(key) {
		case "ip":
			if isNull, err := d.null(); isNull || err != nil {
				return err
			}
			raw, err := d.str()
			if err != nil {
				return err
			}
			var a netip.Addr
			if raw != "" {
				if a, err = netip.ParseAddr(raw); err != nil {
					return err
				}
			}
			if src {
				d.srcIP, d.srcSet = a, true
			} else {
				d.dstIP, d.dstSet = a, true
			}
			return nil
		case "port":
			v, err := d.uint(16)
			if src {
				d.srcPort = uint16(v)
			} else {
				d.dstPort = uint16(v)
			}
			return err
		case "bytes":
			v, err := d.int(64)
			if src {
				e.BytesIn = v
			} else {
				e.BytesOut = v
			}
			return err
		}
	case pathHTTPResp:
		if string(key) == "status_code" {
			v, err := d.int(strconv.IntSize)
			e.HTTP.Status = int(v)
			return err
		}
	case pathDNS:
		switch string(key) {
		case "id":
			v, err := d.uint(16)
			e.DNS.ID = uint16(v)
			return err
		case "answers":
			return d.answers(e)
		case "resolved_ip":
			return d.addrs(&e.DNS.Resolved)
		}
	case pathEmailFrom:
		if string(key) == "address" {
			return d.firstOfStrings(&e.Email.From)
		}
	case pathEmailTo:
		if string(key) == "address" {
			return d.strings(&e.Email.To)
		}
	case pathFile:
		if string(key) == "size" {
			v, err := d.int(64)
			e.File.Size = v
			return err
		}
	case pathSeccloud:
		if string(key) == "verdict" {
			if isNull, err := d.null(); isNull || err != nil {
				return err
			}
			raw, err := d.str()
			if err != nil {
				return err
			}
			a, err := ParseAction(raw)
			if err != nil {
				return err
			}
			e.Verdict.Action = a
			return nil
		}
	}
	return d.skip(0)
}

// strField returns the string field for key at path p, or nil.
func (d *decoder) strField(e *Event, p path, key []byte) *string {
	switch p {
	case pathRoot:
		if string(key) == "message" {
			return &e.Message
		}
	case pathEvent:
		switch string(key) {
		case "id":
			return &e.ID
		case "module":
			return &e.Module
		case "dataset":
			return &e.Dataset
		case "kind":
			return &e.Kind
		case "action":
			return &e.Action
		case "outcome":
			return &e.Outcome
		case "reason":
			return &e.Verdict.Reason
		}
	case pathOrg:
		if string(key) == "id" {
			return &e.Tenant
		}
	case pathDest:
		if string(key) == "domain" {
			return &e.DestDomain
		}
	case pathHost:
		if string(key) == "name" {
			return &e.Terminal
		}
	case pathURL:
		if string(key) == "full" {
			return &e.URL
		}
	case pathHTTPReq:
		switch string(key) {
		case "method":
			return &e.HTTP.Method
		case "referrer":
			return &e.HTTP.Referrer
		}
	case pathUA:
		if string(key) == "original" {
			return &e.HTTP.UserAgent
		}
	case pathDNSQ:
		switch string(key) {
		case "name":
			return &e.DNS.QName
		case "type":
			return &e.DNS.QType
		}
	case pathDNS:
		if string(key) == "response_code" {
			return &e.DNS.RCode
		}
	case pathEmail:
		switch string(key) {
		case "direction":
			return &e.Email.Direction
		case "subject":
			return &e.Email.Subject
		case "message_id":
			return &e.Email.MessageID
		}
	case pathFile:
		switch string(key) {
		case "name":
			return &e.File.Name
		case "mime_type":
			return &e.File.Mime
		}
	case pathFileHash:
		if string(key) == "sha256" {
			return &e.File.SHA256
		}
	case pathRule:
		switch string(key) {
		case "id":
			return &e.Verdict.Rule
		case "name":
			return &e.Verdict.RuleName
		}
	}
	return nil
}

// arrayEach calls fn for each element of an array (or nothing for null).
func (d *decoder) arrayEach(fn func() error) error {
	if isNull, err := d.null(); isNull || err != nil {
		return err
	}
	if err := d.expect('['); err != nil {
		return err
	}
	if d.peek() == ']' {
		d.i++
		return nil
	}
	for {
		if err := fn(); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		case 0:
			return errEOF
		default:
			return d.errf("want ',' or ']'")
		}
	}
}

func (d *decoder) strings(dst *[]string) error {
	switch d.peek() {
	case '[':
		*dst = []string{}
	case 'n':
		*dst = nil
	}
	return d.arrayEach(func() error {
		if isNull, err := d.null(); isNull || err != nil {
			*dst = append(*dst, "")
			return err
		}
		s, err := d.str()
		*dst = append(*dst, s)
		return err
	})
}

func (d *decoder) firstOfStrings(dst *string) error {
	var all []string
	if err := d.strings(&all); err != nil {
		return err
	}
	*dst = ""
	if len(all) > 0 {
		*dst = all[0]
	}
	return nil
}

func (d *decoder) addrs(dst *[]netip.Addr) error {
	switch d.peek() {
	case '[':
		*dst = []netip.Addr{}
	case 'n':
		*dst = nil
	}
	return d.arrayEach(func() error {
		if isNull, err := d.null(); isNull || err != nil {
			*dst = append(*dst, netip.Addr{})
			return err
		}
		s, err := d.str()
		if err != nil {
			return err
		}
		var a netip.Addr
		if s != "" {
			if a, err = netip.ParseAddr(s); err != nil {
				return err
			}
		}
		*dst = append(*dst, a)
		return nil
	})
}

func (d *decoder) answers(e *Event) error {
	var out []string
	err := d.arrayEach(func() error {
		var data string
		if isNull, err := d.null(); isNull || err != nil {
			out = append(out, "")
			return err
		}
		if err := d.expect('{'); err != nil {
			return err
		}
		if d.peek() == '}' {
			d.i++
			out = append(out, data)
			return nil
		}
		for {
			k, err := d.strBytes()
			if err != nil {
				return err
			}
			if err := d.expect(':'); err != nil {
				return err
			}
			if string(k) == "data" {
				if isNull, err := d.null(); err != nil {
					return err
				} else if !isNull {
					if data, err = d.str(); err != nil {
						return err
					}
				}
			} else if err := d.skip(0); err != nil {
				return err
			}
			switch d.peek() {
			case ',':
				d.i++
			case '}':
				d.i++
				out = append(out, data)
				return nil
			case 0:
				return errEOF
			default:
				return d.errf("want ',' or '}'")
			}
		}
	})
	if err != nil {
		return err
	}
	e.DNS.Answers = out
	return nil
}

// number returns the raw bytes of a JSON number.
func (d *decoder) number() ([]byte, error) {
	d.ws()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	if d.i >= len(d.b) {
		return nil, errEOF
	}
	switch c := d.b[d.i]; {
	case c == '0':
		d.i++
	case c >= '1' && c <= '9':
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
		}
	default:
		return nil, d.errf("invalid number")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		n := d.i
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
		}
		if d.i == n {
			return nil, d.errf("invalid number")
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		n := d.i
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
		}
		if d.i == n {
			return nil, d.errf("invalid number")
		}
	}
	return d.b[start:d.i], nil
}

func (d *decoder) int(bits int) (int64, error) {
	if isNull, err := d.null(); isNull || err != nil {
		return 0, err
	}
	s, err := d.number()
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(s), 10, bits)
}

func (d *decoder) uint(bits int) (uint64, error) {
	if isNull, err := d.null(); isNull || err != nil {
		return 0, err
	}
	s, err := d.number()
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(s), 10, bits)
}

// str decodes a JSON string; invalid UTF-8 and unpaired surrogates become
// U+FFFD as in encoding/json.
func (d *decoder) str() (string, error) {
	b, err := d.strBytes()
	return string(b), err
}

// strBytes is str returning bytes that alias the input when the string has
// no escapes (no allocation); they must not be modified.
func (d *decoder) strBytes() ([]byte, error) {
	d.ws()
	if d.i >= len(d.b) {
		return nil, errEOF
	}
	if d.b[d.i] != '"' {
		return nil, d.errf("want string")
	}
	d.i++
	start := d.i
	// Fast path: no escapes, ASCII or valid UTF-8.
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c == '"' {
			s := d.b[start:d.i:d.i]
			d.i++
			return s, nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			d.i += size
			continue
		}
		d.i++
	}
	buf := make([]byte, 0, d.i-start+16)
	buf = append(buf, d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return buf, nil
		case c < 0x20:
			return nil, d.errf("control character in string")
		case c == '\\':
			d.i++
			if d.i >= len(d.b) {
				return nil, errEOF
			}
			switch e := d.b[d.i]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, err := d.hex4(d.i + 1)
				if err != nil {
					return nil, err
				}
				d.i += 4
				if utf16.IsSurrogate(r) {
					// A valid pair is \uD8xx\uDCxx.
					if d.i+6 < len(d.b) && d.b[d.i+1] == '\\' && d.b[d.i+2] == 'u' {
						if r2, err := d.hex4(d.i + 3); err == nil {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								d.i += 6
								buf = utf8.AppendRune(buf, dec)
								break
							}
						}
					}
					r = utf8.RuneError
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return nil, d.errf("invalid escape")
			}
			d.i++
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			d.i++
		default:
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				buf = append(buf, "\uFFFD"...)
			} else {
				buf = append(buf, d.b[d.i:d.i+size]...)
			}
			d.i += size
		}
	}
	return nil, errEOF
}

func (d *decoder) hex4(at int) (rune, error) {
	if at+4 > len(d.b) {
		return 0, errEOF
	}
	var r rune
	for _, c := range d.b[at : at+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, d.errf("invalid \\u escape")
		}
	}
	return r, nil
}

// skip validates and skips one value.
func (d *decoder) skip(depth int) error {
	if depth > 1000 {
		return d.errf("nesting too deep")
	}
	switch c := d.peek(); {
	case c == 0:
		return errEOF
	case c == '"':
		_, err := d.strBytes()
		return err
	case c == '{':
		d.i++
		if d.peek() == '}' {
			d.i++
			return nil
		}
		for {
			if _, err := d.strBytes(); err != nil {
				return err
			}
			if err := d.expect(':'); err != nil {
				return err
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			switch d.peek() {
			case ',':
				d.i++
			case '}':
				d.i++
				return nil
			case 0:
				return errEOF
			default:
				return d.errf("want ',' or '}'")
			}
		}
	case c == '[':
		d.i++
		if d.peek() == ']' {
			d.i++
			return nil
		}
		for {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			switch d.peek() {
			case ',':
				d.i++
			case ']':
				d.i++
				return nil
			case 0:
				return errEOF
			default:
				return d.errf("want ',' or ']'")
			}
		}
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	default:
		_, err := d.number()
		return err
	}
}
