package syslog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
)

// parsed is a frame taken apart by parseFrame.
type parsed struct {
	pri                                int
	ts, host, app, procID, msgID, sdID string
	params                             map[string]string
	msg                                []byte
}

// parseFrame is a strict parser of one octet-counted RFC 5424 frame with
// one SD element, written independently of the formatter.
func parseFrame(frame []byte) (*parsed, error) {
	sp := bytes.IndexByte(frame, ' ')
	if sp < 1 {
		return nil, fmt.Errorf("no length")
	}
	n, err := strconv.Atoi(string(frame[:sp]))
	if err != nil || n != len(frame)-sp-1 || frame[0] == '0' {
		return nil, fmt.Errorf("length %q, frame has %d", frame[:sp], len(frame)-sp-1)
	}
	b := frame[sp+1:]
	var p parsed
	if len(b) < 3 || b[0] != '<' {
		return nil, fmt.Errorf("no PRI")
	}
	end := bytes.IndexByte(b, '>')
	if end < 2 || end > 4 {
		return nil, fmt.Errorf("bad PRI")
	}
	if p.pri, err = strconv.Atoi(string(b[1:end])); err != nil || p.pri > 191 {
		return nil, fmt.Errorf("bad PRI %q", b[1:end])
	}
	b = b[end+1:]
	if !bytes.HasPrefix(b, []byte("1 ")) {
		return nil, fmt.Errorf("bad VERSION")
	}
	b = b[2:]
	field := func(max int) (string, error) {
		i := bytes.IndexByte(b, ' ')
		if i < 1 || i > max {
			return "", fmt.Errorf("header field length %d", i)
		}
		for _, c := range b[:i] {
			if c < 33 || c > 126 {
				return "", fmt.Errorf("header byte %#x", c)
			}
		}
		s := string(b[:i])
		b = b[i+1:]
		return s, nil
	}
	for _, f := range []struct {
		dst *string
		max int
	}{{&p.ts, 32}, {&p.host, 255}, {&p.app, 48}, {&p.procID, 128}, {&p.msgID, 32}} {
		if *f.dst, err = field(f.max); err != nil {
			return nil, err
		}
	}
	if p.ts != "-" {
		if _, err := time.Parse(time.RFC3339Nano, p.ts); err != nil {
			return nil, fmt.Errorf("timestamp: %w", err)
		}
	}
	if len(b) == 0 || b[0] != '[' {
		return nil, fmt.Errorf("no SD element")
	}
	b = b[1:]
	name := func() (string, error) {
		i := bytes.IndexAny(b, " =]\"")
		if i < 1 || i > 32 {
			return "", fmt.Errorf("SD-NAME length %d", i)
		}
		for _, c := range b[:i] {
			if c < 33 || c > 126 {
				return "", fmt.Errorf("SD-NAME byte %#x", c)
			}
		}
		s := string(b[:i])
		b = b[i:]
		return s, nil
	}
	if p.sdID, err = name(); err != nil {
		return nil, err
	}
	p.params = map[string]string{}
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
		k, err := name()
		if err != nil {
			return nil, err
		}
		if !bytes.HasPrefix(b, []byte(`="`)) {
			return nil, fmt.Errorf("param %s: no value", k)
		}
		b = b[2:]
		var v []byte
		for {
			if len(b) == 0 {
				return nil, fmt.Errorf("param %s: unterminated", k)
			}
			c := b[0]
			b = b[1:]
			if c == '"' {
				break
			}
			if c == ']' {
				return nil, fmt.Errorf("param %s: unescaped ]", k)
			}
			if c == '\\' {
				if len(b) == 0 {
					return nil, fmt.Errorf("param %s: dangling escape", k)
				}
				if b[0] == '"' || b[0] == '\\' || b[0] == ']' {
					c = b[0]
					b = b[1:]
				}
			}
			v = append(v, c)
		}
		if !utf8.Valid(v) {
			return nil, fmt.Errorf("param %s: invalid UTF-8", k)
		}
		p.params[k] = string(v)
	}
	if !bytes.HasPrefix(b, []byte("] ")) {
		return nil, fmt.Errorf("SD element not closed")
	}
	p.msg = b[2:]
	return &p, nil
}

func testFormatter() *formatter {
	return &formatter{pri: 16 * 8, hostname: "gw1", appName: "seccloud", procID: "42", sdID: SDID, severity: DefaultSeverity}
}

func TestAppendFrame(t *testing.T) {
	e := detect.Event{
		Time: time.Date(2025, 4, 1, 3, 4, 5, 999999999, time.FixedZone("JST", 9*3600)),
		ID:   "ev1", Module: "waf", Kind: "alert", Tenant: `a"b]c\d` + "\n\x00\xff\u0085",
		Severity: detect.SeverityReached,
		Verdict:  detect.Verdict{Action: detect.ActionBlock, Rule: "crs-942100"},
	}
	prefix := []byte("keep")
	b := testFormatter().appendFrame(prefix, &e)
	require.Equal(t, "keep", string(b[:4]))
	p, err := parseFrame(b[4:])
	require.NoError(t, err)
	assert.Equal(t, 16*8+int(SevError), p.pri)
	assert.Equal(t, "2025-03-31T18:04:05.999999Z", p.ts) // UTC, microseconds, truncated
	assert.Equal(t, "waf", p.msgID)
	assert.Equal(t, SDID, p.sdID)
	assert.Equal(t, map[string]string{
		"severity": "2", "tenant": "a\"b]c\\d\uFFFD\uFFFD\uFFFD\uFFFD", "verdict": "block",
		"rule": "crs-942100", "kind": "alert", "id": "ev1",
	}, p.params)
	assert.Equal(t, string(detect.AppendECS(nil, &e)), string(p.msg))

	// No time, no module: NILVALUE.
	b = testFormatter().appendFrame(nil, &detect.Event{})
	p, err = parseFrame(b)
	require.NoError(t, err)
	assert.Equal(t, "-", p.ts)
	assert.Equal(t, "-", p.msgID)
	assert.Equal(t, `146 <134>1 - gw1 seccloud 42 - [seccloud@32473 severity="0"] {"@timestamp":"0001-01-01T00:00:00Z","ecs":{"version":"8.11.0"},"event":{"kind":"event"}}`, string(b))

	// A module longer than MSGID allows is cut; odd bytes become '_'.
	b = testFormatter().appendFrame(nil, &detect.Event{Module: "a b\xffc" + strings.Repeat("x", 40)})
	p, err = parseFrame(b)
	require.NoError(t, err)
	assert.Equal(t, "a_b_c"+strings.Repeat("x", 27), p.msgID)
}

func FuzzAppendFrame(f *testing.F) {
	f.Add("dns", "tokyo-a", "rule-1", "hello", "alert", "id-1", uint8(2), uint8(3), int64(1700000000123456789))
	f.Add("w a\x00f", "大阪市\"]\\", "\xff\xfe", "line\nbreak\r\x00", "", "", uint8(9), uint8(200), int64(0))
	f.Add(strings.Repeat("m", 100), "\u2028\u0085", "]]]", "\x7f", "k\"", "\\", uint8(3), uint8(1), int64(-62135596800))
	f.Fuzz(func(t *testing.T, module, tenant, rule, message, kind, id string, sev, act uint8, ns int64) {
		e := detect.Event{
			Time: time.Unix(0, ns), ID: id, Module: module, Kind: kind, Tenant: tenant, Message: message,
			Severity: detect.Severity(sev % 4),
			Verdict:  detect.Verdict{Action: detect.Action(act % 11), Rule: rule},
		}
		b := testFormatter().appendFrame([]byte("x"), &e)
		require.Equal(t, byte('x'), b[0])
		frame := b[1:]
		assert.NotContains(t, string(frame), "\n", "a frame is one line")
		p, err := parseFrame(frame)
		require.NoError(t, err, "frame %q", frame)
		assert.Equal(t, 16*8+int(DefaultSeverity(&e)), p.pri)
		assert.True(t, utf8.Valid(p.msg))
		require.True(t, json.Valid(p.msg), "msg %q", p.msg)
		var got detect.Event
		require.NoError(t, detect.DecodeECS(p.msg, &got))
		if utf8.ValidString(tenant) && !strings.ContainsFunc(tenant, func(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }) {
			assert.Equal(t, tenant, p.params["tenant"])
			assert.Equal(t, tenant, got.Tenant)
		}
	})
}

func BenchmarkAppendFrame(b *testing.B) {
	f := testFormatter()
	e := detect.Event{
		Time: time.Unix(1700000000, 0), Module: "proxy", Action: "http_request", Tenant: "tokyo-a",
		URL: "http://example.jp/index.html", Severity: detect.SeverityStopped,
		Verdict: detect.Verdict{Action: detect.ActionBlock, Rule: "intel-domain"},
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, 1024)
		for pb.Next() {
			buf = f.appendFrame(buf[:0], &e)
		}
	})
}
