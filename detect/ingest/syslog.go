package ingest

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jichitai/seccloud/detect"
)

// SyslogOptions are the parameters of ParseSyslog besides the limits.
type SyslogOptions struct {
	Limits
	// Location is the time zone of RFC 3164 timestamps, which carry none;
	// nil means JST (UTC+9), the zone of a Japanese municipality's
	// firewalls.
	Location *time.Location
	// Module is the event.module of the events; "" means "firewall".
	Module string
}

var jst = time.FixedZone("JST", 9*3600)

// maxLabels caps the structured-data and key=value labels kept per message.
const maxLabels = 24

// ParseSyslog turns one syslog message (RFC 5424, or the BSD format of
// RFC 3164), without its transport framing, into an event of module
// "firewall" (opts.Module): time from the header, message text in Message,
// host/app/facility/severity in labels (syslog_host, syslog_app,
// syslog_facility, syslog_severity), RFC 5424 structured-data parameters
// as labels, and the usual firewall key=value pairs of the message read into
// the event: src/srcip/SRC, dst/dstip/DST, spt/sport/srcport, dpt/dport/
// dstport, action (deny, drop, block, reject → block; accept, allow, permit,
// pass → allow) and policyid/rule (the verdict's rule: a firewall event with
// a rule and a stopping action counts as a detection in the reports).
// The syslog severity is never the seccloud level. Errors are *DropError.
func ParseSyslog(msg []byte, now time.Time, opts SyslogOptions) (detect.Event, error) {
	lim := opts.Limits.withDefaults()
	msg = bytes.TrimRight(msg, "\r\n\x00")
	if len(msg) == 0 {
		return detect.Event{}, drop(DropMalformed, "empty message")
	}
	if !utf8.Valid(msg) {
		return detect.Event{}, drop(DropUTF8, "syslog message is not valid UTF-8")
	}
	if msg[0] != '<' {
		return detect.Event{}, drop(DropMalformed, "no <PRI>")
	}
	end := bytes.IndexByte(msg, '>')
	if end < 2 || end > 4 {
		return detect.Event{}, drop(DropMalformed, "bad <PRI>")
	}
	pri, err := strconv.Atoi(string(msg[1:end]))
	if err != nil || pri < 0 || pri > 191 || (end > 2 && msg[1] == '0') {
		return detect.Event{}, drop(DropMalformed, "bad <PRI>")
	}
	rest := string(msg[end+1:])
	module := opts.Module
	if module == "" {
		module = "firewall"
	}
	ev := detect.Event{Module: module, Dataset: "syslog", Category: "network", Type: "info"}
	var host, app, text string
	var sd []detect.Label
	if strings.HasPrefix(rest, "1 ") {
		var t time.Time
		t, host, app, text, sd, err = parse5424(rest[2:])
		if err != nil {
			return detect.Event{}, err
		}
		if t.IsZero() {
			t = now
		}
		ev.Time = t
	} else {
		loc := opts.Location
		if loc == nil {
			loc = jst
		}
		ev.Time, host, app, text, err = parse3164(rest, now, loc)
		if err != nil {
			return detect.Event{}, err
		}
	}
	if err := lim.checkTime(ev.Time, now); err != nil {
		return detect.Event{}, err
	}
	ev.Time = ev.Time.UTC()
	ev.Message = text
	ev.Labels = append(ev.Labels,
		detect.Label{Key: "syslog_facility", Value: strconv.Itoa(pri / 8)},
		detect.Label{Key: "syslog_severity", Value: strconv.Itoa(pri % 8)})
	if host != "" {
		ev.Labels = append(ev.Labels, detect.Label{Key: "syslog_host", Value: host})
	}
	if app != "" {
		ev.Labels = append(ev.Labels, detect.Label{Key: "syslog_app", Value: app})
	}
	ev.Labels = append(ev.Labels, sd...)
	firewallFields(&ev, text)
	if err := lim.checkFields(ev.Message, ev.Verdict.Rule); err != nil {
		return detect.Event{}, err
	}
	for _, l := range ev.Labels {
		if err := lim.checkFields(l.Key, l.Value); err != nil {
			return detect.Event{}, err
		}
	}
	return ev, nil
}

// field cuts the next space-separated token of s.
func field(s string) (string, string, bool) {
	i := strings.IndexByte(s, ' ')
	if i < 0 {
		return s, "", s != ""
	}
	return s[:i], s[i+1:], i > 0
}

func parse5424(s string) (t time.Time, host, app, text string, sd []detect.Label, err error) {
	var ts, procid, msgid string
	var ok bool
	for _, p := range []*string{&ts, &host, &app, &procid, &msgid} {
		if *p, s, ok = field(s); !ok {
			return t, "", "", "", nil, drop(DropMalformed, "RFC 5424 header too short")
		}
	}
	if ts != "-" {
		if t, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return t, "", "", "", nil, drop(DropMalformed, "RFC 5424 timestamp %q", truncate(ts, 40))
		}
	}
	for _, p := range []*string{&host, &app} {
		if *p == "-" {
			*p = ""
		}
	}
	if s == "" {
		return t, host, app, "", nil, drop(DropMalformed, "RFC 5424 message without structured data")
	}
	if s[0] == '-' {
		s = s[1:]
	} else {
		if sd, s, err = parseSD(s); err != nil {
			return t, "", "", "", nil, err
		}
	}
	if s != "" {
		if s[0] != ' ' {
			return t, "", "", "", nil, drop(DropMalformed, "RFC 5424: no space before MSG")
		}
		s = strings.TrimPrefix(s[1:], "\ufeff")
	}
	return t, host, app, s, sd, nil
}

// parseSD reads SD-ELEMENTs: [id name="value" ...]...
func parseSD(s string) ([]detect.Label, string, error) {
	var out []detect.Label
	bad := func(why string) ([]detect.Label, string, error) {
		return nil, "", drop(DropMalformed, "RFC 5424 structured data: %s", why)
	}
	for len(s) > 0 && s[0] == '[' {
		s = s[1:]
		i := strings.IndexAny(s, " ]")
		if i <= 0 {
			return bad("no SD-ID")
		}
		s = s[i:]
		for len(s) > 0 && s[0] == ' ' {
			s = s[1:]
			eq := strings.IndexByte(s, '=')
			if eq <= 0 || eq+1 >= len(s) || s[eq+1] != '"' {
				return bad("bad parameter")
			}
			name := s[:eq]
			s = s[eq+2:]
			var v strings.Builder
			closed := false
			for j := 0; j < len(s); j++ {
				c := s[j]
				if c == '\\' && j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\' || s[j+1] == ']') {
					v.WriteByte(s[j+1])
					j++
					continue
				}
				if c == '"' {
					s = s[j+1:]
					closed = true
					break
				}
				v.WriteByte(c)
			}
			if !closed {
				return bad("unterminated value")
			}
			if len(out) < maxLabels {
				out = append(out, detect.Label{Key: "sd_" + name, Value: v.String()})
			}
		}
		if len(s) == 0 || s[0] != ']' {
			return bad("unterminated element")
		}
		s = s[1:]
	}
	return out, s, nil
}

var months = map[string]time.Month{"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6,
	"Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12}

// parse3164 reads "Mmm dd hh:mm:ss HOST TAG[pid]: MSG" (also an RFC 3339
// timestamp in place of the BSD one, as rsyslog sends it).
func parse3164(s string, now time.Time, loc *time.Location) (time.Time, string, string, string, error) {
	var t time.Time
	if len(s) >= 16 && s[3] == ' ' && s[6] == ' ' && s[9] == ':' && s[12] == ':' && s[15] == ' ' {
		mon, ok := months[s[:3]]
		day, err1 := strconv.Atoi(strings.TrimSpace(s[4:6]))
		hh, err2 := strconv.Atoi(s[7:9])
		mm, err3 := strconv.Atoi(s[10:12])
		ss, err4 := strconv.Atoi(s[13:15])
		if !ok || err1 != nil || err2 != nil || err3 != nil || err4 != nil || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 {
			return t, "", "", "", drop(DropMalformed, "RFC 3164 timestamp %q", s[:15])
		}
		y := now.In(loc).Year()
		t = time.Date(y, mon, day, hh, mm, ss, 0, loc)
		if t.After(now.Add(24 * time.Hour)) {
			t = time.Date(y-1, mon, day, hh, mm, ss, 0, loc) // December's log read in January
		}
		s = s[16:]
	} else if ts, rest, ok := field(s); ok {
		var err error
		if t, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return t, "", "", "", drop(DropMalformed, "RFC 3164 message without timestamp")
		}
		s = rest
	}
	host, rest, ok := field(s)
	if !ok {
		return t, "", "", "", drop(DropMalformed, "RFC 3164 message without host")
	}
	s = rest
	var app string
	if i := strings.IndexByte(s, ':'); i > 0 && i <= 48 && !strings.ContainsAny(s[:i], " =") {
		app = s[:i]
		if b := strings.IndexByte(app, '['); b > 0 {
			app = app[:b]
		}
		s = strings.TrimPrefix(s[i+1:], " ")
	}
	return t, host, app, s, nil
}

// firewallFields reads the common key=value pairs of firewall messages.
func firewallFields(ev *detect.Event, text string) {
	var src, dst netip.Addr
	var sport, dport int
	n := 0
	for s := text; s != ""; {
		var tok string
		tok, s, _ = field(s)
		eq := strings.IndexByte(tok, '=')
		if eq <= 0 {
			continue
		}
		k, v := strings.ToLower(tok[:eq]), tok[eq+1:]
		if strings.HasPrefix(v, `"`) {
			// A quoted value may hold spaces.
			v = v[1:]
			if j := strings.IndexByte(v, '"'); j >= 0 {
				v = v[:j]
			} else if j := strings.IndexByte(s, '"'); j >= 0 {
				v = v + " " + s[:j]
				s = strings.TrimPrefix(s[j+1:], " ")
			}
		}
		if n++; n > 64 {
			break
		}
		switch k {
		case "src", "srcip", "src_ip", "source":
			src, _ = netip.ParseAddr(v)
		case "dst", "dstip", "dst_ip", "destination":
			dst, _ = netip.ParseAddr(v)
		case "spt", "sport", "srcport", "src_port":
			sport, _ = strconv.Atoi(v)
		case "dpt", "dport", "dstport", "dst_port":
			dport, _ = strconv.Atoi(v)
		case "action", "act":
			switch strings.ToLower(v) {
			case "deny", "denied", "drop", "dropped", "block", "blocked", "reject", "rejected":
				ev.Verdict.Action = detect.ActionBlock
				ev.Type = "denied"
			case "accept", "accepted", "allow", "allowed", "permit", "permitted", "pass", "passed":
				ev.Verdict.Action = detect.ActionAllow
				ev.Type = "allowed"
			}
		case "policyid", "policy", "rule", "rule_id", "ruleid":
			ev.Verdict.Rule = v
		}
	}
	if src.IsValid() && sport >= 0 && sport <= 65535 {
		ev.Client = netip.AddrPortFrom(src.Unmap(), uint16(sport))
	}
	if dst.IsValid() && dport >= 0 && dport <= 65535 {
		ev.Dest = netip.AddrPortFrom(dst.Unmap(), uint16(dport))
	}
	if ev.Verdict.Rule != "" {
		ev.Verdict.Rule = "fw-" + ev.Verdict.Rule
	}
}
