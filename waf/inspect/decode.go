package inspect

import (
	"encoding/base64"
	"html"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// maxVariants bounds how many decoded forms of one value are inspected.
const maxVariants = 12

// Variants returns v and the distinct forms it decodes to: repeated
// percent-decoding (also %uXXXX and overlong UTF-8 such as %C0%AE),
// HTML entities (also without the ';'), JavaScript escapes (\uXXXX,
// \xXX), base64 (when v looks like base64 and decodes to text), Unicode
// compatibility folding (full-width and circled letters), and a form with
// control characters, zero-width characters and string concatenations
// ("ale"+"rt") removed. v itself is always first. The result has at most
// maxVariants entries.
func Variants(v string) []string {
	out := make([]string, 0, 4)
	seen := func(s string) bool {
		for _, o := range out {
			if o == s {
				return true
			}
		}
		return false
	}
	add := func(s string) bool {
		if len(out) >= maxVariants || seen(s) {
			return false
		}
		out = append(out, s)
		return true
	}
	add(v)
	// Decoding chain on the value and on its base64 decoding.
	queue := []string{v}
	if b, ok := DecodeBase64(v); ok {
		queue = append(queue, b)
		add(b)
	}
	for _, s := range queue {
		cur := s
		for i := 0; i < 3; i++ {
			next := cur
			next = PercentDecode(next)
			next = HTMLUnescape(next)
			next = JSUnescape(next)
			if next == cur {
				break
			}
			cur = next
			add(cur)
		}
		f := Fold(cur)
		add(f)
		add(Squeeze(f))
	}
	return out
}

// PercentDecode decodes %XX and %uXXXX sequences (invalid ones are kept
// as they are) and maps overlong UTF-8 encodings of ASCII (C0 AE = '.',
// C0 AF = '/') to ASCII. '+' is left alone.
func PercentDecode(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
			if n, err := strconv.ParseUint(s[i+2:i+6], 16, 32); err == nil {
				b = utf8.AppendRune(b, rune(n))
				i += 5
				continue
			}
		}
		if i+2 < len(s) {
			if h, ok := unhex(s[i+1]); ok {
				if l, ok := unhex(s[i+2]); ok {
					b = append(b, h<<4|l)
					i += 2
					continue
				}
			}
		}
		b = append(b, c)
	}
	return string(fixOverlong(b))
}

// fixOverlong replaces 2-byte overlong encodings of ASCII (C0/C1 xx) by
// the ASCII byte.
func fixOverlong(b []byte) []byte {
	for i := 0; i+1 < len(b); i++ {
		if (b[i] == 0xC0 || b[i] == 0xC1) && b[i+1]&0xC0 == 0x80 {
			c := (b[i]&0x1F)<<6 | b[i+1]&0x3F
			b = append(b[:i], append([]byte{c}, b[i+2:]...)...)
		}
	}
	return b
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// looseEntities are entity names browsers also accept without ';' in
// attribute values, or that attackers use to hide syntax.
var looseEntities = map[string]string{
	"colon": ":", "lpar": "(", "rpar": ")", "tab": "\t", "newline": "\n", "lt": "<", "gt": ">",
	"quot": "\"", "apos": "'", "amp": "&", "equals": "=", "sol": "/", "bsol": "\\", "grave": "`",
	"lsqb": "[", "rsqb": "]", "lbrack": "[", "rbrack": "]", "lcub": "{", "rcub": "}", "semi": ";",
	"comma": ",", "period": ".", "excl": "!", "num": "#", "dollar": "$", "percnt": "%", "plus": "+",
	"ast": "*", "vert": "|", "nbsp": " ",
}

// HTMLUnescape decodes HTML character references, also numeric ones
// with many leading zeros or without ';' and the named ones in
// looseEntities without ';' (case-insensitive).
func HTMLUnescape(s string) string {
	if strings.IndexByte(s, '&') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '&' {
			b.WriteByte(s[i])
			continue
		}
		j := i + 1
		if j < len(s) && s[j] == '_' { // "&_lt;" style obfuscation
			j++
		}
		if j < len(s) && s[j] == '#' {
			k := j + 1
			base := 10
			if k < len(s) && (s[k] == 'x' || s[k] == 'X') {
				base = 16
				k++
			}
			st := k
			for k < len(s) && k-st < 12 && isDigitBase(s[k], base) {
				k++
			}
			if k > st {
				if n, err := strconv.ParseUint(s[st:k], base, 32); err == nil && n < utf8.MaxRune {
					b.WriteRune(rune(n))
					if k < len(s) && s[k] == ';' {
						k++
					}
					i = k - 1
					continue
				}
			}
		}
		k := j
		for k < len(s) && k-j < 10 && (isAlpha(s[k])) {
			k++
		}
		if k > j {
			name := strings.ToLower(s[j:k])
			if r, ok := looseEntities[name]; ok {
				b.WriteString(r)
				if k < len(s) && s[k] == ';' {
					k++
				}
				i = k - 1
				continue
			}
			if k < len(s) && s[k] == ';' {
				if u := html.UnescapeString(s[i : k+1]); u != s[i:k+1] {
					b.WriteString(u)
					i = k
					continue
				}
			}
		}
		b.WriteByte('&')
	}
	return b.String()
}

func isDigitBase(c byte, base int) bool {
	if '0' <= c && c <= '9' {
		return true
	}
	return base == 16 && ('a' <= c && c <= 'f' || 'A' <= c && c <= 'F')
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// JSUnescape decodes JavaScript/JSON escapes: \uXXXX, \u{X..}, \xXX and
// \' \" \/ \\. Others are kept.
func JSUnescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch n := s[i+1]; n {
		case 'u', 'U':
			if i+2 < len(s) && s[i+2] == '{' {
				if e := strings.IndexByte(s[i+3:], '}'); e > 0 && e <= 6 {
					if r, err := strconv.ParseUint(s[i+3:i+3+e], 16, 32); err == nil && r < utf8.MaxRune {
						b.WriteRune(rune(r))
						i += 3 + e
						continue
					}
				}
			}
			if i+5 < len(s) {
				if r, err := strconv.ParseUint(s[i+2:i+6], 16, 32); err == nil {
					b.WriteRune(rune(r))
					i += 5
					continue
				}
			}
		case 'x', 'X':
			if i+3 < len(s) {
				if r, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
					b.WriteByte(byte(r))
					i += 3
					continue
				}
			}
		case '\'', '"', '/', '\\', '`':
			b.WriteByte(n)
			i++
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// DecodeBase64 decodes s when it looks like base64 (standard or URL
// alphabet, padding optional, at least 8 characters) and the result is
// mostly printable UTF-8 text.
func DecodeBase64(s string) (string, bool) {
	t := strings.TrimRight(strings.TrimSpace(s), "=")
	if len(t) < 8 || len(t)%4 == 1 {
		return "", false
	}
	url, std := false, false
	lower, upper, digit := false, false, false
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z':
			lower = true
		case 'A' <= c && c <= 'Z':
			upper = true
		case '0' <= c && c <= '9':
			digit = true
		case c == '+' || c == '/':
			std = true
		case c == '-' || c == '_':
			url = true
		default:
			return "", false
		}
	}
	if url && std || !(lower && upper || (lower || upper) && digit) {
		return "", false // plain words and numbers are not base64 text
	}
	enc := base64.RawStdEncoding
	if url {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(t)
	if err != nil || len(b) == 0 {
		return "", false
	}
	if !utf8.Valid(b) {
		return "", false
	}
	printable := 0
	n := 0
	for _, r := range string(b) {
		n++
		if unicode.IsPrint(r) || r == '\n' || r == '\r' || r == '\t' {
			printable++
		}
	}
	if printable*10 < n*9 {
		return "", false
	}
	return string(b), true
}

// Fold applies Unicode compatibility folding (NFKC: full-width and
// circled letters to ASCII) when s has non-ASCII characters.
func Fold(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return norm.NFKC.String(s)
		}
	}
	return s
}

// Squeeze removes what attackers insert to break keywords apart: ASCII
// control characters (NUL, tab, CR, LF), zero-width and byte-order-mark
// characters, SQL comments ("/**/", "/*!"), and string concatenations
// ("ale"+"rt", "Ex"&"e").
func Squeeze(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			i++
			continue
		}
		if c == '/' && i+1 < len(s) && s[i+1] == '*' {
			if e := strings.Index(s[i+2:], "*/"); e >= 0 && s[i+2:i+2+min(e, 1)] != "!" {
				b.WriteByte(' ')
				i += e + 4
				continue
			}
			if i+2 < len(s) && s[i+2] == '!' { // MySQL /*!...*/: keep the content
				i += 3
				for i < len(s) && '0' <= s[i] && s[i] <= '9' {
					i++
				}
				continue
			}
		}
		if c == '*' && i+1 < len(s) && s[i+1] == '/' {
			b.WriteByte(' ')
			i += 2
			continue
		}
		if (c == '"' || c == '\'') && i+1 < len(s) {
			// "a"+"b", 'a'+'b', "a"&"b": drop the quote-operator-quote
			j := i + 1
			for j < len(s) && s[j] == ' ' {
				j++
			}
			if j < len(s) && (s[j] == '+' || s[j] == '&') {
				k := j + 1
				for k < len(s) && s[k] == ' ' {
					k++
				}
				if k < len(s) && s[k] == c {
					i = k + 1
					continue
				}
			}
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch r {
		case 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD:
			i += n
			continue
		}
		b.WriteString(s[i : i+n])
		i += n
	}
	return b.String()
}
