package spam_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"mime"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/encoding/japanese"

	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
	"github.com/jichitai/seccloud/mailrelay/spam"
)

func iso2022(t testing.TB, s string) string {
	b, err := japanese.ISO2022JP.NewEncoder().String(s)
	require.NoError(t, err)
	return b
}

func jaMail(t testing.TB, subj, body string) []byte {
	return []byte("From: =?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte("差出人")) + "?= <x@example.net>\r\n" +
		"Subject: " + mime.BEncoding.Encode("ISO-2022-JP", iso2022(t, subj)) + "\r\nDate: Mon, 2 Nov 2026 10:00:00 +0900\r\nMessage-ID: <1@example.net>\r\n" +
		"Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" + iso2022(t, body) + "\r\n")
}

func TestTokensJapanese(t *testing.T) {
	toks := spam.Tokens(jaMail(t, "当選のお知らせ", "おめでとうございます。アマゾンギフト券が当たりました。FREE money!!"))
	for _, want := range []string{"s:当選", "s:選の", "おめ", "当た", "k:アマゾンギフト", "free", "money", "!"} {
		assert.Contains(t, toks, want)
	}
}

// The default model on messages written for this test (not in the
// corpus): the Japanese spam themes and ordinary office mail.
func TestDefaultModelJapanese(t *testing.T) {
	m, err := spam.DefaultModel()
	require.NoError(t, err)
	spams := [][2]string{
		{"【重要】アカウント確認のお願い", "お客様のアカウントに不正なアクセスがありました。24時間以内に下記のリンクからログインし、カード情報を更新してください。更新されない場合、アカウントは停止されます。 http://account-check.example.top/"},
		{"高収入のお仕事紹介", "在宅で毎日簡単に稼げます！初期費用なし、スマホだけで月収50万円も可能です。今すぐ無料登録してください。"},
		{"当選おめでとうございます", "厳正な抽選の結果、あなたが賞金100万円に当選しました。受け取りには手数料のお振込みが必要です。受取期限は本日中です。"},
		{"あなたの動画について", "私はあなたのパソコンをハッキングし、カメラで録画しました。48時間以内にビットコインで支払わなければ、動画を友人全員に送ります。"},
	}
	hams := [][2]string{
		{"来週の打合せについて", "お疲れ様です。来週火曜日の打合せですが、会議室が変更になりました。資料は共有フォルダに置いてあります。よろしくお願いいたします。"},
		{"予算資料の修正", "財政課の田中です。先日お送りした予算資料に誤りがありましたので、修正版を添付いたします。ご確認のほどよろしくお願いいたします。"},
		{"パスワード変更のお願い", "情報政策課です。来月から庁内システムのパスワードの桁数が12桁以上になります。庁内ポータルから各自変更をお願いします。"},
		{"納品のご連絡", "いつもお世話になっております。ご注文いただいたノートパソコン10台を、来週水曜日に納品いたします。よろしくお願い申し上げます。"},
	}
	for _, s := range spams {
		r := m.ClassifyMessage(jaMail(t, s[0], s[1]))
		assert.Greater(t, r.Prob, 0.5, "spam %q: %+v", s[0], r)
	}
	for _, h := range hams {
		r := m.ClassifyMessage(jaMail(t, h[0], h[1]))
		assert.Less(t, r.Prob, 0.5, "ham %q: %+v", h[0], r)
	}
}

func TestModelRoundTrip(t *testing.T) {
	ex := []spam.Example{
		{Tokens: []string{"cheap", "pills", "buy"}, Spam: true},
		{Tokens: []string{"cheap", "viagra", "buy"}, Spam: true},
		{Tokens: []string{"meeting", "agenda", "buy"}, Spam: false},
		{Tokens: []string{"meeting", "minutes", "agenda"}, Spam: false},
	}
	m := spam.Train(ex, spam.TrainOptions{MinDocs: 1, Epochs: 50})
	var buf bytes.Buffer
	_, err := m.WriteTo(&buf)
	require.NoError(t, err)
	m2, err := spam.ReadModel(&buf)
	require.NoError(t, err)
	assert.Equal(t, m.Len(), m2.Len())
	assert.Greater(t, m2.Classify([]string{"cheap", "pills"}).Prob, 0.5)
	assert.Less(t, m2.Classify([]string{"meeting", "agenda"}).Prob, 0.5)
	_, err = spam.ReadModel(strings.NewReader("not gzip"))
	assert.Error(t, err)
}

func TestScorerRulesDNSBLIntel(t *testing.T) {
	bl := mailrelaytest.NewDNSBL(t)
	bl.List("5.113.0.192.bl.test", "")
	bl.List("evil-shop.test.dbl.test", "127.0.1.2")
	set, err := intel.FromDomains("phish.example")
	require.NoError(t, err)
	sc, err := spam.New(spam.Config{
		Zones:    []spam.Zone{{Name: "bl.test"}, {Name: "dbl.test", Domains: true, Points: 4}},
		Resolver: bl.Resolver(),
		Intel:    intel.NewLive(set),
		Now:      func() time.Time { return time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) },
	})
	require.NoError(t, err)
	raw := []byte("From: \"service@bank.example\" <x@gmail.com>\r\nReply-To: y@other.example\r\nSubject: hello\r\n" +
		"Content-Type: text/html\r\n\r\n<a href=\"http://bit.ly/abc\">a</a> <a href=\"https://login.phish.example/x\">b</a> http://www.evil-shop.test/buy\r\n")
	r := sc.Score(context.Background(), spam.Input{Raw: raw, Client: netip.MustParseAddr("192.0.113.5"), EnvelopeFrom: "bounce@mailer.example", SPF: "fail"})
	rules := r.Rules()
	for _, want := range []string{"BAYES", "DNSBL", "URIBL", "INTEL_URL", "URL_SHORTENER", "HTML_ONLY", "REPLYTO_MISMATCH",
		"FROM_NAME_ADDR_MISMATCH", "FORGED_FREEMAIL", "MISSING_DATE", "MISSING_MID", "SPF_FAIL"} {
		assert.Contains(t, rules, want)
	}
	assert.GreaterOrEqual(t, r.Score, 20.0)
	// A clean client: no DNSBL hit.
	r = sc.Score(context.Background(), spam.Input{Raw: raw, Client: netip.MustParseAddr("192.0.113.6")})
	assert.NotContains(t, r.Rules(), "DNSBL")
}

func TestBulk(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		ad   bool
		mark string
	}{
		{"subject 広告", "Subject: " + mime.BEncoding.Encode("UTF-8", "【広告】秋の大セール") + "\r\n\r\nbody", true, "subject:【広告】"},
		{"subject PR fullwidth", "Subject: " + mime.BEncoding.Encode("UTF-8", "［ＰＲ］新商品") + "\r\n\r\nbody", true, "subject:［pr］"},
		{"esp + unsubscribe", "Subject: news\r\nList-Unsubscribe: <mailto:u@x>\r\nX-SG-EID: abc\r\n\r\nbody", true, "esp:sendgrid"},
		{"precedence only", "Subject: x\r\nPrecedence: bulk\r\n\r\nbody", false, "precedence:bulk"},
		{"personal", "Subject: lunch?\r\n\r\nsee you", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := spam.BulkOf([]byte(tc.raw))
			assert.Equal(t, tc.ad, b.Ad, "%+v", b)
			if tc.mark != "" {
				assert.True(t, slices.Contains(b.Marks, tc.mark), "%+v", b)
			}
		})
	}
}

// FuzzTokens: tokenising and scoring never panic, and no token holds a
// line break or tab (the model file is one token per line).
func FuzzTokens(f *testing.F) {
	f.Add([]byte("Subject: =?ISO-2022-JP?B?GyRCJE8kOCRhJF4kNxsoQg==?=\r\n\r\nカタカナ漢字ひらがな mixed 123 $$$ http://a.example/x\r\n"))
	f.Add([]byte("Content-Type: text/html\r\n\r\n<a href=\"http://a\nb\">x</a>"))
	m, err := spam.DefaultModel()
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, raw []byte) {
		toks := spam.Tokens(raw)
		for _, tk := range toks {
			if strings.ContainsAny(tk, "\t\r\n") {
				t.Fatalf("token %q has a line break", tk)
			}
		}
		r := m.Classify(toks)
		if r.Prob < 0 || r.Prob > 1 {
			t.Fatalf("prob %v", r.Prob)
		}
	})
}
