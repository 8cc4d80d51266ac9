// Command jacorpus writes the synthetic Japanese part of the spam
// corpus: messages composed from the phrase pools in phrases.go (written
// for seccloud), in the encodings Japanese mail really uses (ISO-2022-JP,
// Shift_JIS, EUC-JP, UTF-8 with base64 or quoted-printable, MIME encoded
// words in Subject and From), some as HTML. The output is deterministic
// for a given seed.
//
//	go run ./internal/cmd/jacorpus -o corpus/ja.tar.gz
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"flag"
	"fmt"
	"html"
	"log"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"os"
	"strings"
	"time"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/japanese"
)

func main() {
	out := flag.String("o", "corpus/ja.tar.gz", "output tar.gz")
	nspam := flag.Int("spam", 800, "spam messages")
	nham := flag.Int("ham", 1200, "ham messages")
	seed := flag.Uint64("seed", 20261125, "random seed")
	lang := flag.String("lang", "ja", "ja (Japanese pools and charsets) or en (English pools)")
	flag.Parse()
	g := &gen{r: rand.New(rand.NewPCG(*seed, 1)), lang: *lang}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			log.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			log.Fatal(err)
		}
	}
	for i := range *nspam {
		add(fmt.Sprintf("spam/%s/%05d.eml", *lang, i), g.message(true))
	}
	for i := range *nham {
		add(fmt.Sprintf("ham/%s/%05d.eml", *lang, i), g.message(false))
	}
	if err := tw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}

type gen struct {
	r    *rand.Rand
	lang string
}

func (g *gen) pick(s []string) string { return s[g.r.IntN(len(s))] }

func (g *gen) expand(s string, spam bool) string {
	for strings.Contains(s, "{") {
		i := strings.IndexByte(s, '{')
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			break
		}
		key := s[i+1 : i+j]
		var v string
		if key == "eurl" {
			if spam {
				v = g.pick(enSpamURLs)
			} else {
				v = g.pick(enHamURLs)
			}
		} else if pool, ok := enFill[key]; ok {
			v = g.pick(pool)
		} else if key == "url" {
			if spam {
				v = g.pick(spamURLs)
			} else {
				v = g.pick(hamURLs)
			}
		} else if pool, ok := fill[key]; ok {
			v = g.pick(pool)
		}
		s = s[:i] + v + s[i+j+1:]
	}
	return s
}

func (g *gen) message(spam bool) []byte {
	var subj string
	var lines []string
	if g.lang == "en" {
		return g.english(spam)
	}
	if spam {
		theme := g.r.IntN(len(spamSubjects))
		subj = g.expand(g.pick(spamSubjects[theme]), true)
		body := spamBodies[theme]
		n := 3 + g.r.IntN(6)
		for range n {
			lines = append(lines, g.expand(g.pick(body), true))
		}
		// Some spam mixes themes or adds the generic tail.
		if g.r.IntN(3) == 0 {
			lines = append(lines, g.expand(g.pick(spamBodies[len(spamBodies)-1]), true))
		}
	} else if k := g.r.IntN(10); k < 3 {
		// IT notices, supplier mail, casual mail.
		kind := hamKinds[k]
		subj = g.expand(g.pick(kind.subjects), false)
		n := 2 + g.r.IntN(5)
		for range n {
			lines = append(lines, g.expand(g.pick(kind.bodies), false))
		}
		if k != 2 {
			lines = append([]string{g.expand(g.pick(hamBodies[0]), false)}, lines...)
			lines = append(lines, g.expand(g.pick(hamBodies[3]), false))
		}
	} else {
		subj = g.expand(g.pick(hamSubjects), false)
		lines = append(lines, g.expand(g.pick(hamBodies[0]), false))
		news := strings.Contains(subj, "メールマガジン") || strings.Contains(subj, "広報")
		pool := hamBodies[1]
		if news {
			pool = hamBodies[2]
		}
		n := 2 + g.r.IntN(6)
		for range n {
			lines = append(lines, g.expand(g.pick(pool), false))
		}
		lines = append(lines, g.expand(g.pick(hamBodies[3]), false))
		if g.r.IntN(4) == 0 {
			// A quoted earlier message.
			lines = append(lines, "", "> "+g.expand(g.pick(hamBodies[1]), false), "> "+g.expand(g.pick(hamBodies[3]), false))
		}
	}
	text := strings.Join(lines, "\n")
	if g.r.IntN(5) == 0 {
		text = strings.ReplaceAll(text, "。", "。\n")
	}
	return g.render(subj, text, spam)
}

func (g *gen) english(spam bool) []byte {
	var subj string
	var lines []string
	if spam {
		theme := g.r.IntN(len(enSpamSubjects))
		subj = g.expand(g.pick(enSpamSubjects[theme]), true)
		for range 3 + g.r.IntN(5) {
			lines = append(lines, g.expand(g.pick(enSpamBodies[theme]), true))
		}
	} else {
		kind := enHamKinds[g.r.IntN(len(enHamKinds))]
		subj = g.expand(g.pick(kind.subjects), false)
		for range 2 + g.r.IntN(6) {
			lines = append(lines, g.expand(g.pick(kind.bodies), false))
		}
	}
	return g.render(subj, strings.Join(lines, "\n"), spam)
}

type charset struct {
	name string
	enc  encoding.Encoding // nil = UTF-8
	cte  string
}

func (g *gen) render(subj, text string, spam bool) []byte {
	pool := []charset{
		{"ISO-2022-JP", japanese.ISO2022JP, "7bit"}, {"ISO-2022-JP", japanese.ISO2022JP, "7bit"},
		{"UTF-8", nil, "base64"}, {"UTF-8", nil, "quoted-printable"}, {"UTF-8", nil, "8bit"},
		{"Shift_JIS", japanese.ShiftJIS, "base64"}, {"Shift_JIS", japanese.ShiftJIS, "8bit"}, {"EUC-JP", japanese.EUCJP, "8bit"},
	}
	if g.lang == "en" {
		pool = []charset{{"us-ascii", nil, "7bit"}, {"UTF-8", nil, "quoted-printable"}, {"UTF-8", nil, "base64"}, {"UTF-8", nil, "7bit"}}
	}
	cs := pool[g.r.IntN(len(pool))]
	encode := func(s string) []byte {
		if cs.enc == nil {
			return []byte(s)
		}
		b, err := cs.enc.NewEncoder().Bytes([]byte(s))
		if err != nil {
			// Characters the charset lacks: fall back to replacing them.
			b, _ = encoding.ReplaceUnsupported(cs.enc.NewEncoder()).Bytes([]byte(s))
		}
		return b
	}
	word := func(s string) string {
		if isASCIIString(s) {
			return s
		}
		if cs.enc == nil || cs.name == "EUC-JP" {
			return mime.BEncoding.Encode("UTF-8", s)
		}
		return mime.BEncoding.Encode(cs.name, string(encode(s)))
	}
	sender := g.pick(fill["name"])
	if g.lang == "en" {
		sender = g.pick(enFill["ename"])
		if spam {
			sender = g.pick(enFill["ebrand"])
		}
	}
	dom := g.pick([]string{"city.example.lg.jp", "pref.example.lg.jp", "town.example.lg.jp", "example.co.jp", "example.or.jp"})
	if spam {
		dom = g.pick([]string{"mail-info.top", "secure-notice.xyz", "amazon.co.jp", "rakuten.co.jp", "smbc-card.com", "docomo.ne.jp",
			"gmail.com", "yahoo.co.jp", "service-mail.icu", "kk-info.cn"})
	}
	if g.lang == "en" {
		dom = g.pick([]string{"example.com", "example.org", "partner.example", "mail.example.net", "corp.example"})
		if spam {
			dom = g.pick([]string{"secure-mail.example.top", "account-service.example.xyz", "gmail.com", "outlook.com", "notice.example.icu", "mailer.example.cn"})
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s <%s@%s>\r\n", word(sender), g.pick([]string{"info", "support", "noreply", "taro", "hanako", "k-sato"}), dom)
	fmt.Fprintf(&b, "To: user@city.example.lg.jp\r\nSubject: %s\r\n", word(subj))
	fmt.Fprintf(&b, "Date: Mon, %d Nov 2026 %02d:%02d:00 +0900\r\nMessage-ID: <%d@%s>\r\nMIME-Version: 1.0\r\n", 1+g.r.IntN(28), g.r.IntN(24), g.r.IntN(60), g.r.Uint32(), dom)
	htmlPart := spam && g.r.IntN(2) == 0 || !spam && g.r.IntN(12) == 0
	body := func(ct, s string) {
		fmt.Fprintf(&b, "Content-Type: %s; charset=%s\r\nContent-Transfer-Encoding: %s\r\n\r\n", ct, cs.name, cs.cte)
		raw := encode(s)
		switch cs.cte {
		case "base64":
			e := base64.StdEncoding.EncodeToString(raw)
			for len(e) > 76 {
				b.WriteString(e[:76] + "\r\n")
				e = e[76:]
			}
			b.WriteString(e + "\r\n")
		case "quoted-printable":
			w := quotedprintable.NewWriter(&b)
			w.Write(raw)
			w.Close()
			b.WriteString("\r\n")
		default:
			b.Write(bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n")))
			b.WriteString("\r\n")
		}
	}
	if !htmlPart {
		body("text/plain", text)
		return b.Bytes()
	}
	var h strings.Builder
	h.WriteString("<html><body>")
	for _, l := range strings.Split(text, "\n") {
		l = html.EscapeString(l)
		if i := strings.Index(l, "http"); i >= 0 {
			u := l[i:]
			if j := strings.IndexAny(u, " 　"); j >= 0 {
				u = u[:j]
			}
			l = strings.Replace(l, u, `<a href="`+u+`">`+g.pick([]string{"こちら", "ログイン", "今すぐ確認", u})+"</a>", 1)
		}
		fmt.Fprintf(&h, "<p>%s</p>\n", l)
	}
	h.WriteString("</body></html>")
	if g.r.IntN(2) == 0 {
		b.WriteString("Content-Type: multipart/alternative; boundary=\"=_b\"\r\n\r\n--=_b\r\n")
		body("text/plain", text)
		b.WriteString("--=_b\r\n")
		body("text/html", h.String())
		b.WriteString("--=_b--\r\n")
		return b.Bytes()
	}
	body("text/html", h.String())
	return b.Bytes()
}

func isASCIIString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
