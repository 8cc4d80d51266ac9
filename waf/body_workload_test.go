package waf_test

import (
	"fmt"
	"net/url"
	"strings"
)

// The POST workloads of bench/waf/run.sh (BENCH.md "WAF", issue 7): a
// 10 KiB urlencoded inquiry form and a 1 MiB nested JSON report, both
// benign, with values that change on every request (ids, dates, numbers,
// and which sentences and records are used). The wrk Lua scripts in
// bench/waf/run.sh generate the same shapes.

var (
	wlSurnames = []string{"佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田"}
	wlGiven    = []string{"太郎", "花子", "翔太", "美咲", "健一", "陽菜", "大輔", "さくら", "Ken", "Emily"}
	wlKana     = []string{"サトウ タロウ", "スズキ ハナコ", "タカハシ ショウタ", "タナカ ミサキ", "イトウ ケンイチ", "ワタナベ ヒナ"}
	wlCities   = []string{"青葉区", "宮城野区", "若林区", "太白区", "泉区", "石巻市", "塩竈市", "名取市"}
	wlSubjects = []string{"避難所の開設について", "ごみ収集日の変更", "防災無線が聞こえにくい", "給水所の場所", "道路の冠水", "Question about the shelter"}
	// wlSentences are the message text: ordinary Japanese (and some
	// English) prose with punctuation, numbers, times and brackets.
	wlSentences = []string{
		"いつもお世話になっております。",
		"昨日の大雨で自宅前の道路が冠水し、車が通れない状態です。",
		"避難所（青葉小学校体育館）は何時から開設されますか？",
		"高齢の母（85歳）と同居しており、車いすでの移動が必要です。",
		"「防災メール」の登録方法を教えてください。",
		"給水車は15時30分ごろ、市民センター前に来ると聞きました。",
		"ハザードマップでは浸水想定区域0.5〜3.0mとなっています。",
		"Please let me know if English support is available at the shelter.",
		"ペットの同行避難は可能でしょうか。小型犬1匹です。",
		"停電が続いており、携帯電話の充電ができる場所を探しています。",
		"町内会の回覧板で案内を見ましたが、詳細が分かりませんでした。",
		"お忙しいところ恐縮ですが、ご回答をお願いいたします。",
		"The river level near the station was about 2.4 m at 7:00 this morning.",
		"仮設トイレの設置予定と、ごみの出し方についても知りたいです。",
		"障害者手帳を持っていますが、福祉避難所の対象になりますか。",
		"以上、よろしくお願いします。",
	}
	wlFacilities = []string{"水", "毛布", "発電機", "簡易トイレ", "Wi-Fi", "授乳室", "医療救護所", "ペット可"}
	wlNotes      = []string{"体育館と2階の教室を使用中です。", "駐車場は満車です。徒歩でお越しください。", "毛布が不足しています。",
		"Interpreters available 9:00-17:00.", "段差があります。スロープは北側入口。", "特記事項なし"}
)

// formBody returns the i-th 10 KiB urlencoded inquiry form.
func formBody(i int) []byte {
	v := url.Values{}
	pick := func(s []string, k int) string { return s[(k%len(s)+len(s))%len(s)] }
	v.Set("name", pick(wlSurnames, i)+" "+pick(wlGiven, i/3))
	v.Set("kana", pick(wlKana, i/5))
	v.Set("email", fmt.Sprintf("user%d.%s@example.jp", i*7919%100003, "aoba"))
	v.Set("tel", fmt.Sprintf("090-%04d-%04d", i%10000, i*31%10000))
	v.Set("zip", fmt.Sprintf("980-%04d", i*17%10000))
	v.Set("address", fmt.Sprintf("宮城県仙台市%s本町%d丁目%d番%d号 コーポ青葉%d号室", pick(wlCities, i/7), i%5+1, i%20+1, i%9+1, 100+i%300))
	v.Set("birth", fmt.Sprintf("19%02d-%02d-%02d", 40+i%60, i%12+1, i%28+1))
	v.Set("category", pick([]string{"disaster", "welfare", "environment", "road", "other"}, i))
	v.Set("subject", pick(wlSubjects, i/11))
	v.Set("contact_time", fmt.Sprintf("%d:00-%d:00", 9+i%4, 13+i%5))
	v.Set("household", fmt.Sprint(1+i%6))
	v.Set("agree", "on")
	v.Set("token", fmt.Sprintf("%016x%016x", uint64(i)*0x9E3779B97F4A7C15, uint64(i)*0xBF58476D1CE4E5B9))
	// the message: sentences in an order drawn from i, so that no two
	// requests of a run send the same text
	var msg strings.Builder
	x := uint64(i)*0x9E3779B97F4A7C15 + 1
	for k := 0; ; k++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		s := pick(wlSentences, int(x%1000003))
		enc := url.QueryEscape(s)
		if len(v.Encode())+len(url.QueryEscape(msg.String()))+len(enc)+9 > 10<<10 {
			break
		}
		msg.WriteString(s)
	}
	v.Set("message", msg.String())
	b := []byte(v.Encode())
	return b
}

// jsonBody returns the i-th nested JSON report of about size bytes: a
// list of shelters with addresses, locations, facilities, contacts and
// notes.
func jsonBody(i, size int) []byte {
	pick := func(s []string, k int) string { return s[(k%len(s)+len(s))%len(s)] }
	var b strings.Builder
	b.Grow(size + 2048)
	fmt.Fprintf(&b, `{"report":{"municipality":"青葉市","generated":"2026-%02d-%02dT%02d:%02d:%02d+09:00","version":%d,"source":"bousai-portal"},"shelters":[`,
		i%12+1, i%28+1, i%24, i%60, i*7%60, 3+i%5)
	for k := 0; b.Len() < size-700; k++ {
		if k > 0 {
			b.WriteByte(',')
		}
		n := i*1000 + k
		fmt.Fprintf(&b, `{"id":"S-%06d","name":"%s%s小学校 体育館","address":{"pref":"宮城県","city":"%s","street":"本町%d-%d-%d","zip":"980-%04d"},`,
			n%1000000, pick(wlCities, k), pick(wlSurnames, n), pick(wlCities, k/3), k%9+1, n%30+1, n%12+1, n*7%10000)
		fmt.Fprintf(&b, `"location":{"lat":%.6f,"lon":%.6f},"capacity":%d,"occupancy":%d,"open":%t,`,
			38.0+float64(n%9973)/10000, 140.5+float64(n*7%9973)/10000, 100+n%900, n%400, n%3 != 0)
		fmt.Fprintf(&b, `"facilities":["%s","%s","%s"],"contacts":[{"role":"manager","name":"%s %s","tel":"022-%03d-%04d"}],`,
			pick(wlFacilities, n), pick(wlFacilities, n/2+1), pick(wlFacilities, n/3+2), pick(wlSurnames, n/5), pick(wlGiven, n/7), n%1000, n*13%10000)
		fmt.Fprintf(&b, `"notes":"%s","updated":"2026-11-%02dT%02d:%02d:00+09:00"}`, pick(wlNotes, n/4), n%28+1, n%24, n%60)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}
