package mailparse

import (
	"encoding/base64"
	"mime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/japanese"
)

func enc(t testing.TB, e encoding.Encoding, s string) string {
	t.Helper()
	b, err := e.NewEncoder().String(s)
	require.NoError(t, err)
	return b
}

func TestJapaneseCharsets(t *testing.T) {
	const body = "お世話になっております。会議資料を送付します。"
	const subj = "【重要】会議のご案内"
	cases := []struct {
		name, charset, cte, body string
	}{
		{"iso-2022-jp 7bit", "ISO-2022-JP", "7bit", enc(t, japanese.ISO2022JP, body)},
		{"shift_jis base64", "Shift_JIS", "base64", base64.StdEncoding.EncodeToString([]byte(enc(t, japanese.ShiftJIS, body)))},
		{"euc-jp 8bit", "EUC-JP", "8bit", enc(t, japanese.EUCJP, body)},
		{"utf-8 quoted-printable", "UTF-8", "quoted-printable", qp(body)},
		{"undeclared shift_jis", "", "8bit", enc(t, japanese.ShiftJIS, body)},
		{"undeclared iso-2022-jp", "", "7bit", enc(t, japanese.ISO2022JP, body)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ct := "text/plain"
			if tc.charset != "" {
				ct += "; charset=" + tc.charset
			}
			hs := mime.BEncoding.Encode("ISO-2022-JP", enc(t, japanese.ISO2022JP, subj))
			if tc.charset == "UTF-8" {
				hs = mime.BEncoding.Encode("UTF-8", subj)
			}
			raw := "From: a@example.jp\r\nSubject: " + hs + "\r\nContent-Type: " + ct +
				"\r\nContent-Transfer-Encoding: " + tc.cte + "\r\n\r\n" + tc.body + "\r\n"
			m := Parse([]byte(raw), Limits{})
			require.Len(t, m.Parts, 1)
			assert.Contains(t, m.Text(), body)
			if tc.charset != "UTF-8" {
				// ISO-2022-JP encoded words need the charset decoder.
				assert.Equal(t, subj, m.Subject)
			}
		})
	}
}

func qp(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		b.WriteString("=")
		b.WriteString(strings.ToUpper(string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15])))
	}
	return b.String()
}

func TestMultipartHTMLAttachments(t *testing.T) {
	raw := "Subject: hi\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\n" +
		"Content-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		"<html><head><style>p{}</style></head><body><p>Click <a href=\"http://bit.ly/x&amp;y\">here</a>&nbsp;now</p><script>var x=1</script></body></html>\r\n" +
		"--b2--\r\n--b1\r\nContent-Type: application/octet-stream; name=\"a.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAA==\r\n--b1--\r\n"
	m := Parse([]byte(raw), Limits{})
	require.Len(t, m.Parts, 2)
	assert.True(t, m.HTMLOnly)
	assert.Equal(t, []string{"http://bit.ly/x&y"}, m.URLs)
	assert.Contains(t, m.Text(), "Click here now")
	assert.NotContains(t, m.Text(), "var x")
	assert.Equal(t, "a.exe", m.Parts[1].Filename)
	assert.True(t, m.Parts[1].Attachment)
	assert.Equal(t, []byte("MZ\x90\x00"), m.Parts[1].Body)
	assert.Empty(t, m.Defects)
}

func TestMalformed(t *testing.T) {
	for name, raw := range map[string]string{
		"no boundary":   "Content-Type: multipart/mixed\r\n\r\nhello",
		"unterminated":  "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nhello",
		"bad base64":    "Content-Transfer-Encoding: base64\r\n\r\n!!!!aGVsbG8=",
		"no body":       "Subject: x",
		"empty":         "",
		"nul":           "Subject: \x00\r\n\r\n\x00\x00",
		"deep":          strings.Repeat("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n", 50),
		"bad word":      "Subject: =?x-unknown?B?!!!?=\r\n\r\n",
		"bare lf":       "Subject: lf\n\nbody\n",
		"unclosed html": "Content-Type: text/html\r\n\r\n<a href=\"http://x",
	} {
		t.Run(name, func(t *testing.T) {
			m := Parse([]byte(raw), Limits{})
			assert.NotNil(t, m)
		})
	}
	m := Parse([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nhello"), Limits{})
	assert.Contains(t, m.Defects, "unterminated multipart")
	assert.Equal(t, "hello", m.Text())
}

func TestDefang(t *testing.T) {
	assert.Equal(t, "see hxxps://evil[.]example[.]com/login?a=b.", Defang("see https://evil.example.com/login?a=b."))
	assert.Equal(t, "www[.]example[.]jp", Defang("www.example.jp"))
	assert.Equal(t, "evil.example.com", URLHost("https://user@Evil.Example.com:8443/x"))
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("Subject: =?ISO-2022-JP?B?GyRCJEskWyRzJDQbKEI=?=\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html; charset=shift_jis\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<a href=3D\"http://x.test\">=82=A0</a>\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody"))
	f.Add([]byte("Content-Transfer-Encoding: base64\r\nContent-Type: text/plain; charset=euc-jp\r\n\r\npKKkpA=="))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := Parse(raw, Limits{MaxParts: 50})
		if len(m.Parts) > 50 {
			t.Fatalf("%d parts > limit", len(m.Parts))
		}
		_ = m.Text()
		for _, u := range m.URLs {
			_ = URLHost(u)
		}
		_ = Defang(m.Text())
	})
}

func TestBareText(t *testing.T) {
	m := Parse([]byte("Congratulations! You have won a prize.\nClick http://win.example/ now"), Limits{})
	assert.Contains(t, m.Text(), "Congratulations")
	assert.Equal(t, []string{"http://win.example/"}, m.URLs)
	m = Parse([]byte("From someone@example  Mon Jan 1\nSubject: x\n\nbody"), Limits{})
	assert.Equal(t, "x", m.Subject)
}
