package syslog

import (
	"strconv"
	"unicode/utf8"

	"github.com/jichitai/seccloud/detect"
)

// Facility is a syslog facility (RFC 5424 section 6.2.1). The zero value
// (kern) cannot be chosen: in a [Config] it means the default, Local0.
type Facility uint8

// Facilities a seccloud appliance may use.
const (
	FacilityUser     Facility = 1
	FacilityDaemon   Facility = 3
	FacilityAuth     Facility = 4
	FacilityAuthPriv Facility = 10
	FacilitySecurity Facility = 13 // "log audit"
	FacilityAlert    Facility = 14 // "log alert"
	FacilityLocal0   Facility = 16
	FacilityLocal1   Facility = 17
	FacilityLocal2   Facility = 18
	FacilityLocal3   Facility = 19
	FacilityLocal4   Facility = 20
	FacilityLocal5   Facility = 21
	FacilityLocal6   Facility = 22
	FacilityLocal7   Facility = 23
)

// Severity is a syslog severity (RFC 5424 section 6.2.1), 0 (emergency) to
// 7 (debug).
type Severity uint8

// The syslog severities.
const (
	SevEmergency Severity = iota
	SevAlert
	SevCritical
	SevError
	SevWarning
	SevNotice
	SevInfo
	SevDebug
)

// DefaultSeverity maps an event to a syslog severity so that every seccloud
// level stays distinct (levels 2 and 3 must always be told apart):
//
//	detect.SeveritySucceeded (3)            -> SevAlert (1)
//	detect.SeverityReached (2)              -> SevError (3)
//	detect.SeverityStopped (1)              -> SevWarning (4)
//	level 0, verdict stopped or report-only -> SevNotice (5)
//	level 0, event kind "alert"             -> SevNotice (5)
//	anything else                           -> SevInfo (6)
func DefaultSeverity(e *detect.Event) Severity {
	switch {
	case e.Severity >= detect.SeveritySucceeded:
		return SevAlert
	case e.Severity == detect.SeverityReached:
		return SevError
	case e.Severity == detect.SeverityStopped:
		return SevWarning
	case e.Verdict.Action.Stopped(), e.Verdict.Action == detect.ActionReport, e.Kind == "alert":
		return SevNotice
	}
	return SevInfo
}

// SDID is the structured-data element id of the seccloud parameters. The
// enterprise number 32473 is the one RFC 5612 reserves for documentation
// and examples; set [Config].SDID to your own "name@PEN" in production if
// your SIEM requires it.
const SDID = "seccloud@32473"

// formatter writes RFC 5424 messages with octet-counting framing.
type formatter struct {
	pri      int // facility * 8
	hostname string
	appName  string
	procID   string
	sdID     string
	severity func(*detect.Event) Severity
}

// appendFrame appends "LEN SP SYSLOG-MSG" (RFC 6587 3.4.1, RFC 5425 4.3).
func (f *formatter) appendFrame(dst []byte, e *detect.Event) []byte {
	// Reserve room for the length: frames are at most 10 digits long.
	const room = 11
	start := len(dst)
	dst = append(dst, "           "...)
	dst = f.appendMessage(dst, e)
	n := len(dst) - start - room
	var num [room]byte
	l := strconv.AppendInt(num[:0], int64(n), 10)
	l = append(l, ' ')
	// Move the message left over the unused part of the reservation.
	copy(dst[start:], l)
	copy(dst[start+len(l):], dst[start+room:])
	return dst[:start+len(l)+n]
}

// appendMessage appends one SYSLOG-MSG (RFC 5424 section 6):
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] ECS-JSON
func (f *formatter) appendMessage(dst []byte, e *detect.Event) []byte {
	sev := f.severity(e) & 7
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(f.pri+int(sev)), 10)
	dst = append(dst, ">1 "...)
	if e.Time.IsZero() {
		dst = append(dst, '-')
	} else {
		dst = e.Time.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z")
	}
	dst = append(dst, ' ')
	dst = append(dst, f.hostname...)
	dst = append(dst, ' ')
	dst = append(dst, f.appName...)
	dst = append(dst, ' ')
	dst = append(dst, f.procID...)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, e.Module, 32)
	dst = append(dst, " ["...)
	dst = append(dst, f.sdID...)
	dst = append(dst, ` severity="`...)
	dst = strconv.AppendUint(dst, uint64(e.Severity), 10)
	dst = append(dst, '"')
	dst = appendParam(dst, "tenant", e.Tenant)
	if e.Verdict.Action != detect.ActionNone {
		dst = appendParam(dst, "verdict", e.Verdict.Action.String())
	}
	dst = appendParam(dst, "rule", e.Verdict.Rule)
	dst = appendParam(dst, "kind", e.Kind)
	dst = appendParam(dst, "id", e.ID)
	dst = append(dst, "] "...)
	return detect.AppendECS(dst, e)
}

// appendHeaderField appends s as a header field: 1 to max PRINTUSASCII
// characters (33-126); other bytes become '_'; empty gives "-".
func appendHeaderField(dst []byte, s string, max int) []byte {
	if s == "" {
		return append(dst, '-')
	}
	if len(s) > max {
		s = s[:max]
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// headerField returns appendHeaderField(nil, s, max) as a string.
func headerField(s string, max int) string { return string(appendHeaderField(nil, s, max)) }

// appendParam appends ` name="value"` when value is non-empty. Per RFC 5424
// section 6.3.3, '"', '\' and ']' are escaped with '\'; invalid UTF-8 bytes
// become U+FFFD and control characters are replaced by U+FFFD too so the
// frame stays one line for receivers that split on newlines.
func appendParam(dst []byte, name, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, '=', '"')
	for i := 0; i < len(value); {
		c := value[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == ']':
				dst = append(dst, '\\', c)
			case c < 0x20 || c == 0x7f:
				dst = append(dst, "\uFFFD"...)
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(value[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "\uFFFD"...)
		} else if r >= 0x80 && r < 0xa0 { // C1 controls
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, value[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
