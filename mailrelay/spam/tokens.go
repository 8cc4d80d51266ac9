package spam

import (
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jichitai/seccloud/mailrelay/internal/mailparse"
	"golang.org/x/text/unicode/norm"
)

// maxText is how much decoded text per message is tokenised.
const maxText = 64 << 10

// Tokens returns the classifier's features of a raw message (header and
// body, CRLF or LF): words of the Subject (prefixed "s:") and of the
// text (Latin-script words lower-cased, Japanese and other CJK text as
// character bigrams, katakana words whole), the host names of URLs
// ("h:"), the From: display name ("f:"),
// mailer ("mua:") and URL count. Each token appears once, sorted.
func Tokens(raw []byte) []string {
	return tokensOf(mailparse.Parse(raw, mailparse.Limits{}))
}

func tokensOf(m *mailparse.Message) []string {
	seen := make(map[string]struct{}, 256)
	add := func(t string) { seen[t] = struct{}{} }
	tokenize(m.Subject, "s:", add)
	text := m.Text()
	if len(text) > maxText {
		text = text[:maxText]
	}
	tokenize(text, "", add)
	for _, u := range m.URLs {
		h := mailparse.URLHost(u)
		if h == "" || strings.ContainsAny(h, "\t\r\n ") || len(h) > 253 {
			continue
		}
		add("h:" + h)
		if r := registered(h); r != h {
			add("h:" + r)
		}
	}
	// A few header features that describe the sender's software and
	// identity rather than the route (Received: lines are left out: they
	// describe our corpus's mail servers, not spam).
	if from := m.Header.Get("From"); from != "" {
		name := ""
		if i := strings.LastIndexByte(from, '<'); i >= 0 {
			name = from[:i]
		}
		tokenize(name, "f:", add)
	}
	for _, name := range []string{"X-Mailer", "User-Agent"} {
		if v := strings.Fields(strings.ToLower(m.Header.Get(name))); len(v) > 0 {
			add("mua:" + strings.Trim(v[0], "()[]<>\"'"))
		}
	}
	// Charsets and content types are left out too: the corpus's ham is
	// old plain-text list mail, and today's ham is HTML and UTF-8.
	if n := len(m.URLs); n > 0 {
		add("x:urls:" + strconv.Itoa(min(n, 10)/3))
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out) // a stable order keeps training reproducible
	return out
}

// registered approximates the registrable domain: the last two labels,
// three when the second-level label is a short generic one (co.jp,
// lg.jp, co.uk).
func registered(h string) string {
	labels := strings.Split(h, ".")
	n := 2
	if len(labels) >= 3 && len(labels[len(labels)-2]) <= 3 && len(labels[len(labels)-1]) == 2 {
		n = 3
	}
	if len(labels) <= n {
		return h
	}
	return strings.Join(labels[len(labels)-n:], ".")
}

type script uint8

const (
	scNone script = iota
	scWord
	scCJK
	scKana
)

func classify(r rune) script {
	switch {
	case unicode.Is(unicode.Katakana, r) || r == 'ー':
		return scKana
	case unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Hangul, r):
		return scCJK
	case unicode.IsLetter(r) || unicode.IsDigit(r):
		return scWord
	}
	return scNone
}

// symbols that carry signal on their own.
const symbols = "$!%¥€£★☆♪♡◆■●※【】→＄"

// tokenize calls add for each token of s, prefixed.
func tokenize(s, prefix string, add func(string)) {
	s = norm.NFKC.String(s)
	s = strings.ToLower(s)
	var run []rune
	var runSc script
	flush := func() {
		if len(run) == 0 {
			return
		}
		switch runSc {
		case scWord:
			w := string(run)
			w = strings.Trim(w, "'.-_")
			switch {
			case w == "":
			case len(run) > 24:
				add(prefix + "x:long" + strconv.Itoa(min(len(run)/8, 6)))
			case allDigits(w):
				add(prefix + "n:" + strconv.Itoa(min(len(w), 8)))
			case utf8.RuneCountInString(w) >= 2:
				add(prefix + w)
			}
		default: // CJK and kana: bigrams; a kana word whole too.
			if len(run) == 1 {
				add(prefix + string(run))
			}
			for i := 0; i+1 < len(run); i++ {
				add(prefix + string(run[i:i+2]))
			}
			if runSc == scKana && len(run) >= 3 && len(run) <= 12 {
				add(prefix + "k:" + string(run))
			}
		}
		run = run[:0]
	}
	for _, r := range s {
		c := classify(r)
		if c == scWord && runSc == scWord || c != scNone && c == runSc {
			run = append(run, r)
			continue
		}
		// Hiragana/kanji and katakana runs join for bigrams across the
		// boundary, as Japanese words do.
		if (c == scCJK && runSc == scKana || c == scKana && runSc == scCJK) && len(run) > 0 {
			last := run[len(run)-1]
			flush()
			add(prefix + string([]rune{last, r}))
			run = append(run, r)
			runSc = c
			continue
		}
		if (r == '\'' || r == '.' || r == '-' || r == '_') && runSc == scWord {
			run = append(run, r)
			continue
		}
		flush()
		runSc = c
		if c != scNone {
			run = append(run, r)
		} else if strings.ContainsRune(symbols, r) {
			add(prefix + string(r))
		}
	}
	flush()
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' && s[i] != ',' {
			return false
		}
	}
	return true
}
