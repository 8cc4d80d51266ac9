package detect_test

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
)

func sampleEvent() detect.Event {
	return detect.Event{
		Time:       time.Date(2026, 11, 25, 12, 34, 56, 789000000, time.FixedZone("JST", 9*3600)),
		ID:         "ev-1",
		Module:     "proxy",
		Dataset:    "proxy.access",
		Category:   "web",
		Type:       "denied",
		Action:     "http_request",
		Outcome:    "success",
		Severity:   detect.SeverityStopped,
		Duration:   1500 * time.Microsecond,
		Tenant:     "tsu",
		Client:     netip.MustParseAddrPort("127.0.1.5:51234"),
		Terminal:   "pc-0042",
		Dest:       netip.MustParseAddrPort("[2001:db8::1]:443"),
		DestDomain: "evil.example",
		BytesIn:    512,
		BytesOut:   2048,
		URL:        "https://evil.example/a?b=\"c\"&d=<e>",
		HTTP:       detect.HTTPInfo{Method: "GET", Status: 403, UserAgent: "Mozilla/5.0", Referrer: "https://x.example/"},
		DNS: detect.DNSInfo{QName: "evil.example.", QType: "A", RCode: "NOERROR", ID: 4242,
			Answers: []string{"evil.example. 60 IN A 192.0.2.1"}, Resolved: []netip.Addr{netip.MustParseAddr("192.0.2.1")}},
		Email:   detect.EmailInfo{From: "a@example.jp", To: []string{"b@city.tsu.example.jp", "c@x"}, Subject: "件名\tテスト", MessageID: "<1@x>", Direction: "inbound"},
		File:    detect.FileInfo{Name: "invoice.exe", Size: 1234, SHA256: "ab", Mime: "application/x-msdownload"},
		Verdict: detect.Verdict{Action: detect.ActionBlock, Rule: "intel-domain", RuleName: "C&C domain", Reason: "listed in intel", Score: 90},
		Message: "blocked\nC&C",
		Labels:  []detect.Label{{Key: "line", Value: "main"}, {Key: "x", Value: "1"}, {Key: "line", Value: "breakout"}},
	}
}

func TestECSRoundTrip(t *testing.T) {
	e := sampleEvent()
	b := detect.AppendECS(nil, &e)
	require.True(t, json.Valid(b), "%s", b)

	var got detect.Event
	require.NoError(t, json.Unmarshal(b, &got))
	want := e
	want.Time = e.Time.UTC()
	want.Labels = []detect.Label{{Key: "x", Value: "1"}, {Key: "line", Value: "breakout"}} // last duplicate wins
	assert.Equal(t, want, got)
}

func TestECSFieldNames(t *testing.T) {
	e := sampleEvent()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(detect.AppendECS(nil, &e), &doc))
	get := func(path ...string) any {
		var cur any = doc
		for _, p := range path {
			m, ok := cur.(map[string]any)
			require.True(t, ok, "%v at %s", path, p)
			cur = m[p]
		}
		return cur
	}
	assert.Equal(t, "2026-11-25T03:34:56.789Z", get("@timestamp"))
	assert.Equal(t, "proxy", get("event", "module"))
	assert.Equal(t, []any{"web"}, get("event", "category"))
	assert.Equal(t, float64(1), get("event", "severity"))
	assert.Equal(t, "tsu", get("organization", "id"))
	assert.Equal(t, "127.0.1.5", get("source", "ip"))
	assert.Equal(t, float64(51234), get("source", "port"))
	assert.Equal(t, "2001:db8::1", get("destination", "ip"))
	assert.Equal(t, "evil.example", get("destination", "domain"))
	assert.Equal(t, "pc-0042", get("host", "name"))
	assert.Equal(t, float64(403), get("http", "response", "status_code"))
	assert.Equal(t, "GET", get("http", "request", "method"))
	assert.Equal(t, "evil.example.", get("dns", "question", "name"))
	assert.Equal(t, []any{"b@city.tsu.example.jp", "c@x"}, get("email", "to", "address"))
	assert.Equal(t, "intel-domain", get("rule", "id"))
	assert.Equal(t, "block", get("seccloud", "verdict"))
	assert.Equal(t, "breakout", get("labels", "line"))
}

func TestECSZeroEventIsMinimal(t *testing.T) {
	var e detect.Event
	assert.Equal(t, `{"@timestamp":"0001-01-01T00:00:00Z","ecs":{"version":"8.11.0"},"event":{"kind":"event"}}`, string(detect.AppendECS(nil, &e)))
}

func TestECSDecodeErrors(t *testing.T) {
	var e detect.Event
	assert.ErrorContains(t, detect.DecodeECS([]byte(`{"event":{"severity":7}}`), &e), "severity 7 out of range")
	assert.ErrorContains(t, detect.DecodeECS([]byte(`{"seccloud":{"verdict":"explode"}}`), &e), "unknown action")
	assert.Error(t, detect.DecodeECS([]byte(`{"@timestamp":`), &e))
	assert.Error(t, detect.DecodeECS([]byte(`{"labels":{"a":1}}`), &e))
}

// jsonString returns what encoding/json makes of s after a round trip:
// invalid UTF-8 bytes become U+FFFD.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}

func FuzzECSRoundTrip(f *testing.F) {
	f.Add("proxy", "tsu", "https://a/\u2028", "件名", "k", "v\x00\xff", int64(1700000000123456789), uint16(53), uint8(2))
	f.Add("", "", "", "", "", "", int64(0), uint16(0), uint8(0))
	f.Add("\"\\", "\n", "\x7f", "\xed\xa0\x80", "<>&", "\u2029", int64(-1), uint16(65535), uint8(3))
	f.Fuzz(func(t *testing.T, module, ten, url, subj, key, val string, ns int64, port uint16, sev uint8) {
		e := detect.Event{
			Time:     time.Unix(0, ns).UTC(),
			Module:   module,
			Tenant:   ten,
			URL:      url,
			Severity: detect.Severity(sev % 4),
			Client:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 1, byte(port)}), port),
			Email:    detect.EmailInfo{Subject: subj, To: []string{val}},
			DNS:      detect.DNSInfo{QName: key},
			Labels:   []detect.Label{{Key: key, Value: val}},
			Verdict:  detect.Verdict{Action: detect.Action(sev % 11), Rule: val},
		}
		b := detect.AppendECS(nil, &e)
		if !json.Valid(b) {
			t.Fatalf("invalid JSON: %q", b)
		}
		// encoding/json must read back what we wrote.
		var got detect.Event
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("decode: %v\n%s", err, b)
		}
		want := e
		want.Module, want.Tenant, want.URL = jsonString(module), jsonString(ten), jsonString(url)
		want.Email.Subject, want.Email.To = jsonString(subj), []string{jsonString(val)}
		want.DNS.QName = jsonString(key)
		want.Labels = []detect.Label{{Key: jsonString(key), Value: jsonString(val)}}
		want.Verdict.Rule = jsonString(val)
		if !got.Time.Equal(want.Time) {
			t.Fatalf("time %v != %v", got.Time, want.Time)
		}
		got.Time = want.Time
		assert.Equal(t, want, got)
	})
}

func BenchmarkAppendECS(b *testing.B) {
	e := sampleEvent()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = detect.AppendECS(buf[:0], &e)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkEncodingJSON encodes the same ECS document with encoding/json
// from a map, for comparison with the hand-written encoder.
func BenchmarkEncodingJSON(b *testing.B) {
	e := sampleEvent()
	var doc map[string]any
	if err := json.Unmarshal(detect.AppendECS(nil, &e), &doc); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		out, err := json.Marshal(doc)
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.SetBytes(int64(n))
}

func BenchmarkDecodeECS(b *testing.B) {
	e := sampleEvent()
	buf := detect.AppendECS(nil, &e)
	b.ReportAllocs()
	var got detect.Event
	for b.Loop() {
		if err := detect.DecodeECS(buf, &got); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

// FuzzDecodeECS checks the fast decoder against the encoding/json reference
// on arbitrary input: never a panic, and the same event whenever both
// accept a document whose member names are lower-case (encoding/json also
// matches names case-insensitively; ECS does not).
func FuzzDecodeECS(f *testing.F) {
	e := sampleEvent()
	f.Add(detect.AppendECS(nil, &e))
	f.Add([]byte(`{"source":{"ip":"127.0.0.1"},"source":{"port":5},"labels":{"a":null},"labels":{"b":"c"}}`))
	f.Add([]byte(`{"email":{"to":{"address":["a"]}},"email":{"to":{"address":null}},"event":{"category":["x"]},"event":{"category":[]}}`))
	f.Add([]byte(`{"url":{"full":"\ud83d\ude00\ud800x\u00e9\\\/"},"x":[1,2.5e3,{"y":[true,false,null]}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, std detect.Event
		errFast := detect.DecodeECS(b, &fast)
		errStd := detect.DecodeStd(b, &std)
		if errFast == nil && !json.Valid(b) {
			t.Fatalf("fast decoder accepted invalid JSON %q", b)
		}
		if errFast != nil || errStd != nil || !plainKeys(b) {
			return
		}
		if !fast.Time.Equal(std.Time) {
			t.Fatalf("time %v != %v", fast.Time, std.Time)
		}
		fast.Time = std.Time
		require.Equal(t, std, fast, "input %q", b)
	})
}

// plainKeys reports whether every member name in the document is made of
// [a-z0-9_@.] only, so case-insensitive matching cannot differ.
func plainKeys(b []byte) bool {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return false
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				for i := 0; i < len(k); i++ {
					ch := k[i]
					if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '@' || ch == '.') {
						return false
					}
				}
				if !walk(c) {
					return false
				}
			}
		case []any:
			for _, c := range x {
				if !walk(c) {
					return false
				}
			}
		}
		return true
	}
	return walk(v)
}

// BenchmarkDecodeStd decodes the same document with the encoding/json
// reference decoder, for comparison with DecodeECS.
func BenchmarkDecodeStd(b *testing.B) {
	e := sampleEvent()
	buf := detect.AppendECS(nil, &e)
	b.ReportAllocs()
	var got detect.Event
	for b.Loop() {
		if err := detect.DecodeStd(buf, &got); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}
