package detect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// ECSVersion is the Elastic Common Schema version the encoding follows.
const ECSVersion = "8.11.0"

// AppendECS appends the Elastic Common Schema JSON encoding of e to dst
// (one object, no trailing newline) and returns the extended buffer. Fields
// at their zero value are omitted. Invalid UTF-8 in strings is replaced by
// U+FFFD, as encoding/json does. It does not allocate when dst has room.
//
// The field mapping: @timestamp; event.{id,module,dataset,kind,category,
// type,action,outcome,severity,duration,reason,risk_score};
// organization.id (tenant); source.{ip,port,bytes};
// destination.{ip,port,domain,bytes}; host.name (terminal); url.full;
// http.request.{method,referrer}; http.response.status_code;
// user_agent.original; dns.{id,question.name,question.type,response_code,
// answers[].data,resolved_ip}; email.{from.address,to.address,subject,
// message_id,direction}; file.{name,size,hash.sha256,mime_type};
// rule.{id,name}; message; labels; seccloud.verdict (the Verdict's action).
func AppendECS(dst []byte, e *Event) []byte {
	dst = append(dst, `{"@timestamp":"`...)
	dst = e.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","ecs":{"version":"`+ECSVersion+`"},"event":{"kind":`...)
	if e.Kind == "" {
		dst = append(dst, `"event"`...)
	} else {
		dst = appendString(dst, e.Kind)
	}
	dst = appendStrField(dst, "id", e.ID)
	dst = appendStrField(dst, "module", e.Module)
	dst = appendStrField(dst, "dataset", e.Dataset)
	if e.Category != "" {
		dst = append(dst, `,"category":[`...)
		dst = appendString(dst, e.Category)
		dst = append(dst, ']')
	}
	if e.Type != "" {
		dst = append(dst, `,"type":[`...)
		dst = appendString(dst, e.Type)
		dst = append(dst, ']')
	}
	dst = appendStrField(dst, "action", e.Action)
	dst = appendStrField(dst, "outcome", e.Outcome)
	if e.Severity != 0 {
		dst = append(dst, `,"severity":`...)
		dst = strconv.AppendUint(dst, uint64(e.Severity), 10)
	}
	if e.Duration != 0 {
		dst = append(dst, `,"duration":`...)
		dst = strconv.AppendInt(dst, int64(e.Duration), 10)
	}
	dst = appendStrField(dst, "reason", e.Verdict.Reason)
	if e.Verdict.Score != 0 {
		dst = append(dst, `,"risk_score":`...)
		dst = strconv.AppendInt(dst, int64(e.Verdict.Score), 10)
	}
	dst = append(dst, '}')

	if e.Tenant != "" {
		dst = append(dst, `,"organization":{"id":`...)
		dst = appendString(dst, e.Tenant)
		dst = append(dst, '}')
	}
	dst = appendEndpoint(dst, "source", e.Client, "", e.BytesIn)
	dst = appendEndpoint(dst, "destination", e.Dest, e.DestDomain, e.BytesOut)
	if e.Terminal != "" {
		dst = append(dst, `,"host":{"name":`...)
		dst = appendString(dst, e.Terminal)
		dst = append(dst, '}')
	}
	if e.URL != "" {
		dst = append(dst, `,"url":{"full":`...)
		dst = appendString(dst, e.URL)
		dst = append(dst, '}')
	}
	h := &e.HTTP
	if h.Method != "" || h.Status != 0 || h.Referrer != "" {
		dst = append(dst, `,"http":{`...)
		first := true
		if h.Method != "" || h.Referrer != "" {
			dst = append(dst, `"request":{`...)
			dst = appendFirstStr(dst, "method", h.Method, h.Referrer == "")
			if h.Referrer != "" {
				if h.Method != "" {
					dst = append(dst, ',')
				}
				dst = append(dst, `"referrer":`...)
				dst = appendString(dst, h.Referrer)
			}
			dst = append(dst, '}')
			first = false
		}
		if h.Status != 0 {
			if !first {
				dst = append(dst, ',')
			}
			dst = append(dst, `"response":{"status_code":`...)
			dst = strconv.AppendInt(dst, int64(h.Status), 10)
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	if h.UserAgent != "" {
		dst = append(dst, `,"user_agent":{"original":`...)
		dst = appendString(dst, h.UserAgent)
		dst = append(dst, '}')
	}
	d := &e.DNS
	if d.QName != "" || d.QType != "" || d.RCode != "" || d.ID != 0 || len(d.Answers) > 0 || len(d.Resolved) > 0 {
		dst = append(dst, `,"dns":{"id":`...)
		dst = strconv.AppendUint(dst, uint64(d.ID), 10)
		if d.QName != "" || d.QType != "" {
			dst = append(dst, `,"question":{`...)
			dst = appendFirstStr(dst, "name", d.QName, true)
			if d.QType != "" {
				if d.QName != "" {
					dst = append(dst, ',')
				}
				dst = append(dst, `"type":`...)
				dst = appendString(dst, d.QType)
			}
			dst = append(dst, '}')
		}
		dst = appendStrField(dst, "response_code", d.RCode)
		if len(d.Answers) > 0 {
			dst = append(dst, `,"answers":[`...)
			for i, a := range d.Answers {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, `{"data":`...)
				dst = appendString(dst, a)
				dst = append(dst, '}')
			}
			dst = append(dst, ']')
		}
		if len(d.Resolved) > 0 {
			dst = append(dst, `,"resolved_ip":[`...)
			for i, a := range d.Resolved {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, '"')
				dst = a.AppendTo(dst)
				dst = append(dst, '"')
			}
			dst = append(dst, ']')
		}
		dst = append(dst, '}')
	}
	m := &e.Email
	if m.From != "" || len(m.To) > 0 || m.Subject != "" || m.MessageID != "" || m.Direction != "" {
		dst = append(dst, `,"email":{"direction":`...)
		dst = appendString(dst, m.Direction)
		if m.From != "" {
			dst = append(dst, `,"from":{"address":[`...)
			dst = appendString(dst, m.From)
			dst = append(dst, "]}"...)
		}
		if len(m.To) > 0 {
			dst = append(dst, `,"to":{"address":[`...)
			for i, a := range m.To {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendString(dst, a)
			}
			dst = append(dst, "]}"...)
		}
		dst = appendStrField(dst, "subject", m.Subject)
		dst = appendStrField(dst, "message_id", m.MessageID)
		dst = append(dst, '}')
	}
	f := &e.File
	if f.Name != "" || f.Size != 0 || f.SHA256 != "" || f.Mime != "" {
		dst = append(dst, `,"file":{"size":`...)
		dst = strconv.AppendInt(dst, f.Size, 10)
		dst = appendStrField(dst, "name", f.Name)
		dst = appendStrField(dst, "mime_type", f.Mime)
		if f.SHA256 != "" {
			dst = append(dst, `,"hash":{"sha256":`...)
			dst = appendString(dst, f.SHA256)
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	v := &e.Verdict
	if v.Rule != "" || v.RuleName != "" {
		dst = append(dst, `,"rule":{`...)
		dst = appendFirstStr(dst, "id", v.Rule, true)
		if v.RuleName != "" {
			if v.Rule != "" {
				dst = append(dst, ',')
			}
			dst = append(dst, `"name":`...)
			dst = appendString(dst, v.RuleName)
		}
		dst = append(dst, '}')
	}
	dst = appendStrField(dst, "message", e.Message)
	if len(e.Labels) > 0 {
		dst = append(dst, `,"labels":{`...)
		n := 0
		for i, l := range e.Labels {
			if labelShadowed(e.Labels, i) {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = appendString(dst, l.Key)
			dst = append(dst, ':')
			dst = appendString(dst, l.Value)
		}
		dst = append(dst, '}')
	}
	if v.Action != ActionNone {
		dst = append(dst, `,"seccloud":{"verdict":"`...)
		dst = append(dst, v.Action.String()...)
		dst = append(dst, `"}`...)
	}
	return append(dst, '}')
}

// labelShadowed reports whether a later label has the same key as ls[i].
func labelShadowed(ls []Label, i int) bool {
	for j := i + 1; j < len(ls); j++ {
		if ls[j].Key == ls[i].Key {
			return true
		}
	}
	return false
}

func appendEndpoint(dst []byte, name string, ap netip.AddrPort, domain string, n int64) []byte {
	if !ap.Addr().IsValid() && domain == "" && n == 0 {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, `":{`...)
	sep := false
	if ap.Addr().IsValid() {
		dst = append(dst, `"ip":"`...)
		dst = ap.Addr().AppendTo(dst)
		dst = append(dst, '"')
		if ap.Port() != 0 {
			dst = append(dst, `,"port":`...)
			dst = strconv.AppendUint(dst, uint64(ap.Port()), 10)
		}
		sep = true
	}
	if domain != "" {
		if sep {
			dst = append(dst, ',')
		}
		dst = append(dst, `"domain":`...)
		dst = appendString(dst, domain)
		sep = true
	}
	if n != 0 {
		if sep {
			dst = append(dst, ',')
		}
		dst = append(dst, `"bytes":`...)
		dst = strconv.AppendInt(dst, n, 10)
	}
	return append(dst, '}')
}

// appendFirstStr writes "key":value as the first member of an object when
// value is non-empty.
func appendFirstStr(dst []byte, key, value string, _ bool) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return appendString(dst, value)
}

// appendStrField writes ,"key":value when value is non-empty.
func appendStrField(dst []byte, key, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return appendString(dst, value)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Control characters, quote and
// backslash are escaped; invalid UTF-8 bytes become U+FFFD; U+2028 and
// U+2029 are escaped so the output is safe to embed in JavaScript.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// MarshalJSON implements json.Marshaler with the ECS encoding.
func (e Event) MarshalJSON() ([]byte, error) {
	return AppendECS(make([]byte, 0, 512), &e), nil
}

// ecsDoc mirrors the ECS encoding for decoding.
type ecsDoc struct {
	Timestamp time.Time `json:"@timestamp"`
	Event     struct {
		ID        string   `json:"id"`
		Module    string   `json:"module"`
		Dataset   string   `json:"dataset"`
		Kind      string   `json:"kind"`
		Category  []string `json:"category"`
		Type      []string `json:"type"`
		Action    string   `json:"action"`
		Outcome   string   `json:"outcome"`
		Severity  uint8    `json:"severity"`
		Duration  int64    `json:"duration"`
		Reason    string   `json:"reason"`
		RiskScore int      `json:"risk_score"`
	} `json:"event"`
	Organization struct {
		ID string `json:"id"`
	} `json:"organization"`
	Source      ecsEndpoint `json:"source"`
	Destination ecsEndpoint `json:"destination"`
	Host        struct {
		Name string `json:"name"`
	} `json:"host"`
	URL struct {
		Full string `json:"full"`
	} `json:"url"`
	HTTP struct {
		Request struct {
			Method   string `json:"method"`
			Referrer string `json:"referrer"`
		} `json:"request"`
		Response struct {
			StatusCode int `json:"status_code"`
		} `json:"response"`
	} `json:"http"`
	UserAgent struct {
		Original string `json:"original"`
	} `json:"user_agent"`
	DNS struct {
		ID       uint16 `json:"id"`
		Question struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"question"`
		ResponseCode string `json:"response_code"`
		Answers      []struct {
			Data string `json:"data"`
		} `json:"answers"`
		ResolvedIP []netip.Addr `json:"resolved_ip"`
	} `json:"dns"`
	Email struct {
		Direction string `json:"direction"`
		From      struct {
			Address []string `json:"address"`
		} `json:"from"`
		To struct {
			Address []string `json:"address"`
		} `json:"to"`
		Subject   string `json:"subject"`
		MessageID string `json:"message_id"`
	} `json:"email"`
	File struct {
		Name string `json:"name"`
		Size int64  `json:"size"`
		Mime string `json:"mime_type"`
		Hash struct {
			SHA256 string `json:"sha256"`
		} `json:"hash"`
	} `json:"file"`
	Rule struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"rule"`
	Message  string    `json:"message"`
	Labels   ecsLabels `json:"labels"`
	Seccloud struct {
		Verdict string `json:"verdict"`
	} `json:"seccloud"`
}

type ecsEndpoint struct {
	IP     *netip.Addr `json:"ip"`
	Port   uint16      `json:"port"`
	Domain string      `json:"domain"`
	Bytes  int64       `json:"bytes"`
}

func (p ecsEndpoint) addrPort() netip.AddrPort {
	if p.IP == nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(*p.IP, p.Port)
}

// ecsLabels decodes a JSON object keeping member order.
type ecsLabels []Label

func (l *ecsLabels) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t == nil {
		return nil
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("labels: want object")
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		var v string
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("labels: %w", err)
		}
		*l = append(*l, Label{Key: kt.(string), Value: v})
	}
	return nil
}

// UnmarshalJSON decodes the ECS encoding written by AppendECS (and ECS
// documents of the same shape written by others; unknown fields are
// ignored). Severity above 3 is refused.
func (e *Event) UnmarshalJSON(b []byte) error {
	return DecodeECS(b, e)
}

// DecodeECS decodes one ECS JSON object into e, replacing its contents.
// Member names are matched exactly (ECS is case-sensitive); unknown members
// are skipped. Invalid UTF-8 and unpaired surrogates in strings become
// U+FFFD, as with encoding/json.
func DecodeECS(b []byte, e *Event) error {
	if err := decodeFast(b, e); err != nil {
		*e = Event{}
		return fmt.Errorf("detect: decode ecs: %w", err)
	}
	return nil
}

// decodeStd is DecodeECS written with encoding/json: the reference the fast
// decoder is fuzzed against.
func decodeStd(b []byte, e *Event) error {
	var d ecsDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("detect: decode ecs: %w", err)
	}
	if d.Event.Severity > uint8(MaxSeverity) {
		return fmt.Errorf("detect: decode ecs: severity %d out of range 0-3", d.Event.Severity)
	}
	var act Action
	if d.Seccloud.Verdict != "" {
		a, err := ParseAction(d.Seccloud.Verdict)
		if err != nil {
			return fmt.Errorf("detect: decode ecs: %w", err)
		}
		act = a
	}
	*e = Event{
		Time:       d.Timestamp,
		ID:         d.Event.ID,
		Module:     d.Event.Module,
		Dataset:    d.Event.Dataset,
		Kind:       d.Event.Kind,
		Action:     d.Event.Action,
		Outcome:    d.Event.Outcome,
		Severity:   Severity(d.Event.Severity),
		Duration:   time.Duration(d.Event.Duration),
		Tenant:     d.Organization.ID,
		Client:     d.Source.addrPort(),
		Terminal:   d.Host.Name,
		Dest:       d.Destination.addrPort(),
		DestDomain: d.Destination.Domain,
		BytesIn:    d.Source.Bytes,
		BytesOut:   d.Destination.Bytes,
		URL:        d.URL.Full,
		HTTP: HTTPInfo{
			Method:    d.HTTP.Request.Method,
			Status:    d.HTTP.Response.StatusCode,
			UserAgent: d.UserAgent.Original,
			Referrer:  d.HTTP.Request.Referrer,
		},
		DNS: DNSInfo{
			QName:    d.DNS.Question.Name,
			QType:    d.DNS.Question.Type,
			RCode:    d.DNS.ResponseCode,
			ID:       d.DNS.ID,
			Resolved: d.DNS.ResolvedIP,
		},
		Email: EmailInfo{
			To:        d.Email.To.Address,
			Subject:   d.Email.Subject,
			MessageID: d.Email.MessageID,
			Direction: d.Email.Direction,
		},
		File: FileInfo{
			Name:   d.File.Name,
			Size:   d.File.Size,
			SHA256: d.File.Hash.SHA256,
			Mime:   d.File.Mime,
		},
		Verdict: Verdict{
			Action:   act,
			Rule:     d.Rule.ID,
			RuleName: d.Rule.Name,
			Reason:   d.Event.Reason,
			Score:    d.Event.RiskScore,
		},
		Message: d.Message,
		Labels:  []Label(d.Labels),
	}
	if e.Kind == "event" {
		e.Kind = ""
	}
	if len(d.Event.Category) > 0 {
		e.Category = d.Event.Category[0]
	}
	if len(d.Event.Type) > 0 {
		e.Type = d.Event.Type[0]
	}
	if len(d.Email.From.Address) > 0 {
		e.Email.From = d.Email.From.Address[0]
	}
	for _, a := range d.DNS.Answers {
		e.DNS.Answers = append(e.DNS.Answers, a.Data)
	}
	return nil
}
