package rules

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/jichitai/seccloud/detect"
)

// fieldKind is how a field's value is held in a detect.Event.
type fieldKind uint8

const (
	kindStr      fieldKind = iota // one string
	kindInt                       // one integer
	kindAddr                      // one address
	kindStrList                   // several strings
	kindAddrList                  // several addresses
)

// field describes one ECS field of detect.Event. Exactly one accessor is set,
// matching kind. Accessors read the Event directly: nothing is encoded.
type field struct {
	name  string
	kind  fieldKind
	str   func(*detect.Event) string
	num   func(*detect.Event) (int64, bool) // false: the field is absent
	addr  func(*detect.Event) netip.Addr
	list  func(*detect.Event) []string
	addrs func(*detect.Event) []netip.Addr
	// intel is the indicator kind looked up by the |intel modifier.
	intel intelKind
	// idx is the field's slot in the per-event string cache (string
	// fields only); -1 for labels.
	idx int
	// id is the field's slot in the per-event intel cache; -1 for labels.
	id int
}

type intelKind uint8

const (
	intelNone intelKind = iota
	intelDomain
	intelAddr
	intelURL
	intelHash
)

func strF(name string, f func(*detect.Event) string) *field {
	return &field{name: name, kind: kindStr, str: f}
}

func intF(name string, f func(*detect.Event) (int64, bool)) *field {
	return &field{name: name, kind: kindInt, num: f}
}

// nz reports a non-zero integer as present.
func nz(v int64) (int64, bool) { return v, v != 0 }

// fields is the table of ECS names a rule may use. It is built once and never
// modified (package-level read-only data, not registration).
var fields = func() map[string]*field {
	list := []*field{
		strF("event.id", func(e *detect.Event) string { return e.ID }),
		strF("event.module", func(e *detect.Event) string { return e.Module }),
		strF("event.dataset", func(e *detect.Event) string { return e.Dataset }),
		strF("event.kind", func(e *detect.Event) string {
			if e.Kind == "" {
				return "event"
			}
			return e.Kind
		}),
		strF("event.category", func(e *detect.Event) string { return e.Category }),
		strF("event.type", func(e *detect.Event) string { return e.Type }),
		strF("event.action", func(e *detect.Event) string { return e.Action }),
		strF("event.outcome", func(e *detect.Event) string { return e.Outcome }),
		strF("event.reason", func(e *detect.Event) string { return e.Verdict.Reason }),
		intF("event.severity", func(e *detect.Event) (int64, bool) { return int64(e.Severity), true }),
		intF("event.duration", func(e *detect.Event) (int64, bool) { return nz(int64(e.Duration)) }),
		intF("event.risk_score", func(e *detect.Event) (int64, bool) { return nz(int64(e.Verdict.Score)) }),
		strF("organization.id", func(e *detect.Event) string { return e.Tenant }),
		{name: "source.ip", kind: kindAddr, addr: func(e *detect.Event) netip.Addr { return e.Client.Addr() }, intel: intelAddr},
		intF("source.port", func(e *detect.Event) (int64, bool) { return nz(int64(e.Client.Port())) }),
		intF("source.bytes", func(e *detect.Event) (int64, bool) { return nz(e.BytesIn) }),
		{name: "destination.ip", kind: kindAddr, addr: func(e *detect.Event) netip.Addr { return e.Dest.Addr() }, intel: intelAddr},
		intF("destination.port", func(e *detect.Event) (int64, bool) { return nz(int64(e.Dest.Port())) }),
		intF("destination.bytes", func(e *detect.Event) (int64, bool) { return nz(e.BytesOut) }),
		{name: "destination.domain", kind: kindStr, str: func(e *detect.Event) string { return trimDot(e.DestDomain) }, intel: intelDomain},
		strF("host.name", func(e *detect.Event) string { return e.Terminal }),
		{name: "url.full", kind: kindStr, str: func(e *detect.Event) string { return e.URL }, intel: intelURL},
		{name: "url.domain", kind: kindStr, str: func(e *detect.Event) string { return urlHost(e.URL) }, intel: intelDomain},
		strF("url.path", func(e *detect.Event) string { return urlPath(e.URL) }),
		strF("http.request.method", func(e *detect.Event) string { return e.HTTP.Method }),
		strF("http.request.referrer", func(e *detect.Event) string { return e.HTTP.Referrer }),
		intF("http.response.status_code", func(e *detect.Event) (int64, bool) { return nz(int64(e.HTTP.Status)) }),
		strF("user_agent.original", func(e *detect.Event) string { return e.HTTP.UserAgent }),
		{name: "dns.question.name", kind: kindStr, str: func(e *detect.Event) string { return trimDot(e.DNS.QName) }, intel: intelDomain},
		strF("dns.question.type", func(e *detect.Event) string { return e.DNS.QType }),
		strF("dns.response_code", func(e *detect.Event) string { return e.DNS.RCode }),
		intF("dns.id", func(e *detect.Event) (int64, bool) { return int64(e.DNS.ID), e.DNS.QName != "" }),
		{name: "dns.answers.data", kind: kindStrList, list: func(e *detect.Event) []string { return e.DNS.Answers }},
		{name: "dns.resolved_ip", kind: kindAddrList, addrs: func(e *detect.Event) []netip.Addr { return e.DNS.Resolved }, intel: intelAddr},
		{name: "email.from.address", kind: kindStr, str: func(e *detect.Event) string { return e.Email.From }},
		{name: "email.to.address", kind: kindStrList, list: func(e *detect.Event) []string { return e.Email.To }},
		strF("email.subject", func(e *detect.Event) string { return e.Email.Subject }),
		strF("email.message_id", func(e *detect.Event) string { return e.Email.MessageID }),
		strF("email.direction", func(e *detect.Event) string { return e.Email.Direction }),
		strF("file.name", func(e *detect.Event) string { return e.File.Name }),
		intF("file.size", func(e *detect.Event) (int64, bool) { return nz(e.File.Size) }),
		{name: "file.hash.sha256", kind: kindStr, str: func(e *detect.Event) string { return e.File.SHA256 }, intel: intelHash},
		strF("file.mime_type", func(e *detect.Event) string { return e.File.Mime }),
		strF("rule.id", func(e *detect.Event) string { return e.Verdict.Rule }),
		strF("rule.name", func(e *detect.Event) string { return e.Verdict.RuleName }),
		strF("message", func(e *detect.Event) string { return e.Message }),
		strF("seccloud.verdict", func(e *detect.Event) string {
			if e.Verdict.Action == detect.ActionNone {
				return ""
			}
			return e.Verdict.Action.String()
		}),
		// seccloud.terminal is the terminal as the judge and incidents see it:
		// host.name when known, else source.ip.
		strF("seccloud.terminal", Terminal),
	}
	m := make(map[string]*field, len(list))
	n := 0
	for i, f := range list {
		if f.kind == kindStr {
			f.idx = n
			n++
		}
		f.id = i
		m[f.name] = f
	}
	return m
}()

// numFields is the number of fields in the table.
var numFields = len(fields)

// numStrFields is the number of cached string slots; labels use slots after.
var numStrFields = func() int {
	n := 0
	for _, f := range fields {
		if f.kind == kindStr {
			n++
		}
	}
	return n
}()

// Terminal returns the terminal an event is attributed to: the event's
// Terminal (host.name) when known, else its source address, else "". It is
// the value of the seccloud.terminal field.
func Terminal(e *detect.Event) string {
	if e.Terminal != "" {
		return e.Terminal
	}
	if a := e.Client.Addr(); a.IsValid() {
		return a.String()
	}
	return ""
}

// FieldNames returns the ECS field names rules may use, besides labels.<key>.
func FieldNames() []string {
	out := make([]string, 0, len(fields))
	for n := range fields {
		out = append(out, n)
	}
	return out
}

// lookupField resolves a field name; labels.<key> gives a label accessor.
func lookupField(name string) (*field, bool) {
	if f, ok := fields[name]; ok {
		return f, true
	}
	if key, ok := strings.CutPrefix(name, "labels."); ok && key != "" {
		return &field{name: name, kind: kindStr, idx: -1, id: -1, str: func(e *detect.Event) string {
			v, _ := e.Label(key)
			return v
		}}, true
	}
	return nil, false
}

// Values returns the values of the named field in e as strings, one per
// value (several for list fields), and whether the field name is known.
// Absent fields give no values. It allocates; the engine itself does not use
// it on the hot path.
func Values(e *detect.Event, name string) ([]string, bool) {
	f, ok := lookupField(name)
	if !ok {
		return nil, false
	}
	return f.values(e), true
}

func (f *field) values(e *detect.Event) []string {
	switch f.kind {
	case kindStr:
		if v := f.str(e); v != "" {
			return []string{v}
		}
	case kindInt:
		if v, ok := f.num(e); ok {
			return []string{strconv.FormatInt(v, 10)}
		}
	case kindAddr:
		if a := f.addr(e); a.IsValid() {
			return []string{a.String()}
		}
	case kindStrList:
		return append([]string(nil), f.list(e)...)
	case kindAddrList:
		as := f.addrs(e)
		out := make([]string, 0, len(as))
		for _, a := range as {
			out = append(out, a.String())
		}
		return out
	}
	return nil
}

func trimDot(s string) string {
	if n := len(s); n > 1 && s[n-1] == '.' {
		return s[:n-1]
	}
	return s
}

// urlHost returns the host of a URL without parsing it fully (no
// allocation): the text between "://" (or the start) and the first '/', '?',
// '#' or port colon, without userinfo. IPv6 literals keep their brackets.
func urlHost(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	} else {
		return ""
	}
	if i := strings.IndexAny(u, "/?#"); i >= 0 {
		u = u[:i]
	}
	if i := strings.LastIndexByte(u, '@'); i >= 0 {
		u = u[i+1:]
	}
	if strings.HasPrefix(u, "[") {
		if i := strings.IndexByte(u, ']'); i >= 0 {
			return u[:i+1]
		}
		return u
	}
	if i := strings.IndexByte(u, ':'); i >= 0 {
		u = u[:i]
	}
	return u
}

// urlPath returns the path of a URL (no query or fragment), "" when absent.
func urlPath(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
		j := strings.IndexByte(u, '/')
		if j < 0 {
			return ""
		}
		u = u[j:]
	}
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	return u
}
