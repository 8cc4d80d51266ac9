package mailrelay

import (
	"bytes"
	"context"
	"mime"
	"net"
	"net/netip"
	"strings"

	"github.com/jichitai/seccloud/detect"
)

// Direction tells where a message goes.
type Direction string

// The directions.
const (
	Inbound  Direction = "inbound"  // from the internet to a tenant
	Outbound Direction = "outbound" // from a tenant to the internet
	Internal Direction = "internal" // from a tenant to a tenant
)

// Message is what a Filter sees: the envelope, the headers the relay read
// and the whole message as it will be delivered. A Filter must not modify
// it.
type Message struct {
	// ID is the queue id the message will have if accepted.
	ID string
	// Tenant is the tenant responsible: the sender's for outbound and
	// internal mail, the recipients' for inbound. Inbound mail for
	// several tenants is checked once per tenant: each check sees that
	// tenant's id, its recipients in To and its own ID (split delivery).
	Tenant    string
	Direction Direction
	Client    netip.AddrPort
	Helo      string
	// From is the envelope sender ("" for the null sender); To the
	// accepted recipients.
	From string
	To   []string
	// HeaderFrom, Subject (MIME words decoded when possible) and
	// MessageID come from the header.
	HeaderFrom string
	Subject    string
	MessageID  string
	// Auth holds the sender authentication results (inbound only).
	Auth AuthResults
	// Data is the message: header and body, CRLF line ends, as it will be
	// delivered (with the relay's Received: and Authentication-Results:).
	Data []byte
}

// A Filter inspects a message and returns a verdict: ActionAllow or
// ActionNone to pass, ActionBlock to reject (5xx), ActionTempFail to defer
// (4xx), ActionQuarantine or ActionDelete to keep the message from its
// recipients. An error defers the message (4xx): a scanner that is down
// never lets mail through unchecked. Filters must be safe for concurrent
// use.
type Filter interface {
	Check(ctx context.Context, m *Message) (detect.Verdict, error)
}

// FilterFunc adapts a function to a Filter.
type FilterFunc func(ctx context.Context, m *Message) (detect.Verdict, error)

// Check calls f(ctx, m).
func (f FilterFunc) Check(ctx context.Context, m *Message) (detect.Verdict, error) {
	return f(ctx, m)
}

// headerInfo extracts From, Subject and Message-ID from the header section
// of data. It reads at most the first 64 KiB.
func headerInfo(data []byte) (from, subject, msgid string) {
	if len(data) > 64<<10 {
		data = data[:64<<10]
	}
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		data = data[:i+2]
	}
	var cur string
	var val []byte
	flush := func() {
		v := strings.TrimSpace(string(val))
		switch {
		case strings.EqualFold(cur, "from") && from == "":
			from = v
		case strings.EqualFold(cur, "subject") && subject == "":
			subject = v
		case strings.EqualFold(cur, "message-id") && msgid == "":
			msgid = v
		}
		cur, val = "", val[:0]
	}
	for len(data) > 0 {
		line := data
		if i := bytes.Index(data, []byte("\r\n")); i >= 0 {
			line, data = data[:i], data[i+2:]
		} else {
			data = nil
		}
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if cur != "" {
				val = append(val, line...)
			}
			continue
		}
		if cur != "" {
			flush()
		}
		name, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		n := string(name)
		if strings.EqualFold(n, "from") || strings.EqualFold(n, "subject") || strings.EqualFold(n, "message-id") {
			cur = n
			val = append(val[:0], v...)
		}
	}
	if cur != "" {
		flush()
	}
	if subject != "" {
		if d, err := new(mime.WordDecoder).DecodeHeader(subject); err == nil {
			subject = d
		}
	}
	return from, subject, msgid
}

var (
	_ Filter     = FilterFunc(nil)
	_ Resolver   = (*net.Resolver)(nil)
	_ MXResolver = (*net.Resolver)(nil)
)
