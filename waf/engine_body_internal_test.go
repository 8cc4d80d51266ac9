package waf

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/waf/internal/corpus"
)

var bodyEngine struct {
	once sync.Once
	e    *CRSEngine
	err  error
}

func fastEngine(t testing.TB) *CRSEngine {
	bodyEngine.once.Do(func() { bodyEngine.e, bodyEngine.err = NewCRSEngine(CRSConfig{}) })
	require.NoError(t, bodyEngine.err)
	return bodyEngine.e
}

func bodyRequest(ct string, body []byte) *Request {
	return &Request{Site: "www.aoba.example.jp", Method: "POST", URI: "/contact/send", Proto: "HTTP/1.1", Host: "www.aoba.example.jp",
		Header: http.Header{"User-Agent": {"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}, "Accept": {"*/*"},
			"Content-Type": {ct}, "Content-Length": {fmt.Sprint(len(body))}},
		Body: body}
}

// rotateDigits turns every digit d into d+1 mod 10: a sibling of the same
// memo shape (when the digits stand alone) that warms the memo.
func rotateDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return '0' + (r-'0'+1)%10
		}
		return r
	}, s)
}

// formSibling rotates the digits of every decoded form value.
func formSibling(body string) string {
	var parts []string
	for _, seg := range strings.Split(body, "&") {
		k, v, _ := strings.Cut(seg, "=")
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return body
		}
		parts = append(parts, k+"="+url.QueryEscape(rotateDigits(dv)))
	}
	return strings.Join(parts, "&")
}

// checkSound asserts the body fast path's claim on one request: when it
// finds the request clean, the full Coraza run matches no rule. The memo
// is first warmed with a digit-rotated sibling of the body, so that the
// shape keys are exercised. It returns the fast path's answer.
func checkSound(t testing.TB, e *CRSEngine, ct string, body []byte) bool {
	t.Helper()
	sib := rotateDigits(string(body))
	if strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		sib = formSibling(string(body))
	}
	_ = e.fastCleanBody(0, bodyRequest(ct, []byte(sib)), "/contact/send", "")
	req := bodyRequest(ct, body)
	fast := e.fastCleanBody(0, req, "/contact/send", "")
	if fast {
		ms, score, _, in, err := e.run(0, req.Method, req.URI, req.Proto, req.Host, req.Header, req.Body, nil, false)
		require.NoError(t, err)
		// 209001 refuses a body with more values than one Coraza run reads:
		// a limit of the full run, not an attack the fast path missed (it
		// inspects every value)
		if in != nil && in.RuleID == argLimitRule {
			in = nil
			ms = slices.DeleteFunc(ms, func(m Match) bool { return m.ID == argLimitRule })
		}
		require.Truef(t, len(ms) == 0 && score == 0 && in == nil,
			"fast path found clean, Coraza matched %v (score %d, %v): %.300q", ms, score, in, body)
	}
	return fast
}

// bodyAttacks are payloads CRS catches in an argument, of every class,
// including ones our own layer is not written for.
var bodyAttacks = []string{
	"1' OR '1'='1", "1 union select password from users", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
	"; cat /etc/passwd", "$(id)", "../../../../etc/shadow", "http://169.254.169.254/latest/meta-data/",
	"java.lang.Runtime.getRuntime().exec(\"id\")", "${jndi:ldap://x.example/a}", "<?php system($_GET['c']); ?>",
	"<svg/onload=alert(1)>", "<!--#exec cmd=\"ls\" -->", "*)(uid=*))(|(uid=*", "GET / HTTP/1.1", "\x00", "%uff1cscript",
	"file:///etc/passwd", "/bin/bash -c id", "sleep(5)#", "';drop table users--", "1;waitfor delay '0:0:5'--",
}

func TestBodyFastPathSound(t *testing.T) {
	e := fastEngine(t)
	n, stride := 24, 1
	if testing.Short() || raceInternal {
		n, stride = 6, 8 // a sample (Coraza is ~10× slower under -race)
	}
	t.Run("benign forms pass the fast path", func(t *testing.T) {
		taken := 0
		for i := 1; i <= n; i++ {
			if checkSound(t, e, "application/x-www-form-urlencoded", testFormBody(i)) {
				taken++
			}
		}
		assert.Greater(t, taken, n/2, "the fast path should take most benign forms")
	})
	t.Run("benign JSON passes the fast path", func(t *testing.T) {
		taken := 0
		for i := 1; i <= n/4+1; i++ {
			if checkSound(t, e, "application/json", testJSONBody(i, 32<<10/stride)) {
				taken++
			}
		}
		assert.Positive(t, taken)
	})
	t.Run("attacks in a form field", func(t *testing.T) {
		for i, a := range bodyAttacks {
			if i%stride != 0 && i%3 != 0 {
				continue
			}
			body := string(testFormBody(i+100)) + "&comment=" + url.QueryEscape(a)
			assert.False(t, checkSound(t, e, "application/x-www-form-urlencoded", []byte(body)), a)
			body = string(testFormBody(i+200)) + "&" + url.QueryEscape(a) + "=1"
			checkSound(t, e, "application/x-www-form-urlencoded", []byte(body))
		}
	})
	t.Run("attacks in a JSON leaf", func(t *testing.T) {
		for i, a := range bodyAttacks {
			if i%stride != 0 && i%3 != 0 {
				continue
			}
			j := testJSONBody(i+300, 4<<10)
			q := strings.ReplaceAll(strings.ReplaceAll(a, `\`, `\\`), `"`, `\"`)
			q = strings.ReplaceAll(q, "\x00", `\u0000`)
			body := strings.Replace(string(j), `"notes":"`, `"notes":"`+q+` `, 1)
			assert.False(t, checkSound(t, e, "application/json", []byte(body)), a)
		}
	})
	t.Run("a rule over the whole form body", func(t *testing.T) {
		// 944110 looks at REQUEST_BODY: "runtime" in one field and
		// "java." in another only match together.
		body := string(testFormBody(7)) + "&a=runtime&b=java.io"
		assert.False(t, checkSound(t, e, "application/x-www-form-urlencoded", []byte(body)))
	})
	t.Run("corpus bodies", func(t *testing.T) {
		td := ""
		for _, d := range []string{"../../shared/testdata", "/work/shared/testdata"} {
			if st, err := os.Stat(filepath.Join(d, "gotestwaf")); err == nil && st.IsDir() {
				td = d
			}
		}
		if td == "" {
			t.Skip("shared testdata not found")
		}
		rnd := rand.New(rand.NewPCG(7, 7))
		cs, err := corpus.GoTestWAF(filepath.Join(td, "gotestwaf", "testcases"), func() string { return fmt.Sprintf("%08x", rnd.Uint32()) })
		require.NoError(t, err)
		checked := 0
		for i, c := range cs {
			if i%stride != 0 {
				continue
			}
			ct := ""
			for _, kv := range c.Header {
				if strings.EqualFold(kv[0], "Content-Type") {
					ct = kv[1]
				}
			}
			if len(c.Body) == 0 || fastBodyKind(http.Header{"Content-Type": {ct}}) == bodyOther {
				continue
			}
			checkSound(t, e, ct, c.Body)
			checked++
		}
		t.Logf("%d corpus bodies checked", checked)
	})
}

// FuzzBodyFastPath checks the fast path's claim on fuzzed form fields and
// JSON values (and names) inside realistic bodies.
func FuzzBodyFastPath(f *testing.F) {
	f.Add("comment", "いつもお世話になっております。2026-11-26 15:30", false)
	f.Add("tel", "090-1234-5678", false)
	f.Add("notes", "S-004711 38.268200", true)
	f.Add("q", "1 union select 2", false)
	f.Add("notes", "169.254.169.254", true)
	f.Add("x", "java.lang.Runtime", true)
	f.Fuzz(func(t *testing.T, name, value string, isJSON bool) {
		e := fastEngine(t)
		if len(name)+len(value) > 2048 {
			return
		}
		if isJSON {
			nb, _ := jsonQuote(name)
			vb, _ := jsonQuote(value)
			body := `{"report":{"city":"青葉市","items":[{"id":12,` + nb + `:` + vb + `,"ok":true}]}}`
			checkSound(t, e, "application/json", []byte(body))
			return
		}
		body := "name=" + url.QueryEscape("山田 太郎") + "&" + url.QueryEscape(name) + "=" + url.QueryEscape(value) + "&agree=on"
		checkSound(t, e, "application/x-www-form-urlencoded", []byte(body))
	})
}

func jsonQuote(s string) (string, bool) {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), true
}

// testFormBody and testJSONBody are small copies of the bench workload
// shapes (body_workload_test.go is in package waf_test).
func testFormBody(i int) []byte {
	v := url.Values{}
	v.Set("name", []string{"佐藤 太郎", "鈴木 花子", "Ken Smith"}[i%3])
	v.Set("email", fmt.Sprintf("user%d@example.jp", i*7919%100003))
	v.Set("tel", fmt.Sprintf("090-%04d-%04d", i%10000, i*31%10000))
	v.Set("zip", fmt.Sprintf("980-%04d", i*17%10000))
	v.Set("address", fmt.Sprintf("宮城県仙台市青葉区本町%d丁目%d番%d号", i%5+1, i%20+1, i%9+1))
	v.Set("birth", fmt.Sprintf("19%02d-%02d-%02d", 40+i%60, i%12+1, i%28+1))
	v.Set("subject", []string{"避難所の開設について", "給水所の場所", "Question about the shelter"}[i%3])
	v.Set("message", []string{"昨日の大雨で自宅前の道路が冠水し、車が通れない状態です。", "避難所（青葉小学校体育館）は何時から開設されますか？",
		"Please let me know if English support is available at the shelter.", "給水車は15時30分ごろ、市民センター前に来ると聞きました。"}[i%4])
	v.Set("agree", "on")
	return []byte(v.Encode())
}

func testJSONBody(i, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"report":{"municipality":"青葉市","generated":"2026-11-%02dT%02d:00:00+09:00"},"shelters":[`, i%28+1, i%24)
	for k := 0; b.Len() < size; k++ {
		if k > 0 {
			b.WriteByte(',')
		}
		n := i*1000 + k
		fmt.Fprintf(&b, `{"id":"S-%06d","name":"青葉小学校 体育館","location":{"lat":%.6f,"lon":%.6f},"capacity":%d,"open":%t,"facilities":["水","毛布"],"notes":"毛布が不足しています。","updated":"2026-11-%02dT%02d:%02d:00+09:00"}`,
			n, 38.0+float64(n%9973)/10000, 140.5+float64(n*7%9973)/10000, 100+n%900, n%3 != 0, n%28+1, n%24, n%60)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// Request parts with long keys are judged, not remembered: a new 2 KiB
// header value on every request does not grow the memo.
func TestMemoKeysBounded(t *testing.T) {
	e, err := NewCRSEngine(CRSConfig{})
	require.NoError(t, err)
	inspect := func(i int, pad int) {
		h := http.Header{"User-Agent": {"Mozilla/5.0"}, "Accept": {"*/*"}, "X-Pad": {fmt.Sprintf("%0*d", pad, i)}}
		d, err := e.Inspect(context.Background(), &Request{Site: "x", Method: "GET", URI: "/?id=1", Proto: "HTTP/1.1", Host: "x", Header: h})
		require.NoError(t, err)
		require.Equal(t, Pass, d.Action)
	}
	before := e.memo.Len()
	for i := 0; i < 20; i++ {
		inspect(i, 2048)
	}
	assert.LessOrEqual(t, e.memo.Len()-before, 2, "long skeletons are not remembered")
	for i := 0; i < 20; i++ {
		inspect(i, 16)
	}
	assert.GreaterOrEqual(t, e.memo.Len()-before, 20, "short skeletons are")
}
