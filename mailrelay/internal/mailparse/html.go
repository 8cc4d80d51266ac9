package mailparse

import (
	"html"
	"regexp"
	"strings"
)

// blockTags end a line when HTML is reduced to text.
var blockTags = map[string]bool{
	"br": true, "p": true, "div": true, "tr": true, "li": true, "h1": true, "h2": true,
	"h3": true, "h4": true, "h5": true, "h6": true, "table": true, "ul": true, "ol": true,
	"blockquote": true, "pre": true, "hr": true, "title": true,
}

// HTMLText reduces HTML to text: tags removed (block tags end a line),
// script, style, head and comments dropped, entities decoded, runs of
// blank space folded. It also returns the URLs of href= and src=
// attributes. It does not build a DOM; malformed HTML gives its best
// reading.
func HTMLText(s string) (text string, urls []string) {
	var b strings.Builder
	b.Grow(len(s) / 2)
	i := 0
	for i < len(s) {
		lt := strings.IndexByte(s[i:], '<')
		if lt < 0 {
			b.WriteString(html.UnescapeString(s[i:]))
			break
		}
		b.WriteString(html.UnescapeString(s[i : i+lt]))
		i += lt
		if strings.HasPrefix(s[i:], "<!--") {
			end := strings.Index(s[i+4:], "-->")
			if end < 0 {
				break
			}
			i += 4 + end + 3
			continue
		}
		gt := tagEnd(s, i+1)
		if gt < 0 {
			b.WriteString(html.UnescapeString(s[i:]))
			break
		}
		tag := s[i+1 : gt]
		i = gt + 1
		name := tagName(tag)
		switch name {
		case "script", "style", "head", "xml", "noscript":
			// Skip to the closing tag.
			end := indexFold(s[i:], "</"+name)
			if end < 0 {
				i = len(s)
				continue
			}
			i += end
			if gt := strings.IndexByte(s[i:], '>'); gt >= 0 {
				i += gt + 1
			} else {
				i = len(s)
			}
			continue
		}
		for _, attr := range []string{"href", "src", "action"} {
			if u := attrValue(tag, attr); u != "" {
				u = html.UnescapeString(u)
				if isWebURL(u) {
					urls = append(urls, u)
				}
			}
		}
		if blockTags[strings.TrimPrefix(name, "/")] {
			b.WriteByte('\n')
		} else if name != "" {
			b.WriteByte(' ')
		}
	}
	return foldSpace(b.String()), urls
}

// tagEnd finds the '>' that ends the tag starting after '<' at i, quotes
// respected.
func tagEnd(s string, i int) int {
	var q byte
	for j := i; j < len(s); j++ {
		c := s[j]
		switch {
		case q != 0:
			if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			q = c
		case c == '>':
			return j
		}
		if j-i > 8192 {
			return -1
		}
	}
	return -1
}

func tagName(tag string) string {
	end := strings.IndexAny(tag, " \t\r\n/>")
	if strings.HasPrefix(tag, "/") {
		e := strings.IndexAny(tag[1:], " \t\r\n>")
		if e < 0 {
			return strings.ToLower(tag)
		}
		return strings.ToLower(tag[:e+1])
	}
	if end < 0 {
		end = len(tag)
	}
	return strings.ToLower(tag[:end])
}

func indexFold(s, sub string) int {
	return strings.Index(strings.ToLower(s), sub)
}

// attrValue returns the value of attribute name in a tag body, or "".
func attrValue(tag, name string) string {
	lt := strings.ToLower(tag)
	for off := 0; ; {
		k := strings.Index(lt[off:], name)
		if k < 0 {
			return ""
		}
		k += off
		off = k + len(name)
		if k > 0 && !strings.ContainsRune(" \t\r\n\"'", rune(lt[k-1])) {
			continue
		}
		rest := strings.TrimLeft(tag[off:], " \t\r\n")
		if !strings.HasPrefix(rest, "=") {
			continue
		}
		rest = strings.TrimLeft(rest[1:], " \t\r\n")
		if rest == "" {
			return ""
		}
		if q := rest[0]; q == '"' || q == '\'' {
			if e := strings.IndexByte(rest[1:], q); e >= 0 {
				return strings.TrimSpace(rest[1 : e+1])
			}
			return strings.TrimSpace(rest[1:])
		}
		if e := strings.IndexAny(rest, " \t\r\n>"); e >= 0 {
			return rest[:e]
		}
		return rest
	}
}

func isWebURL(u string) bool {
	l := strings.ToLower(u)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "www.")
}

// foldSpace folds runs of spaces and tabs into one space and runs of
// more than two newlines into two, trimming each line.
func foldSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	nl := 0
	space := false
	for _, r := range s {
		switch r {
		case '\r':
		case '\n':
			nl++
			space = false
		case ' ', '\t', '\u00a0', '\u3000':
			space = true
		default:
			if nl > 0 {
				if b.Len() > 0 {
					b.WriteString("\n\n"[:min(nl, 2)])
				}
				nl = 0
			} else if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(r)
		}
	}
	return b.String()
}

var urlRE = regexp.MustCompile(`(?i)\b(?:https?://|www\.)[^\s<>"'` + "`" + `()\x{3000}-\x{30ff}\x{4e00}-\x{9fff}\x{ff00}-\x{ffef}]+`)

// FindURLs returns the http(s) URLs and www. names in text, trailing
// punctuation trimmed.
func FindURLs(text string) []string {
	ms := urlRE.FindAllString(text, 200)
	for i, u := range ms {
		ms[i] = strings.TrimRight(u, ".,;:!?]}>")
	}
	return ms
}

// URLHost returns the lower-case host of a URL or www. name, without
// port or user info; "" when there is none.
func URLHost(u string) string {
	l := strings.ToLower(u)
	if i := strings.Index(l, "://"); i >= 0 {
		l = l[i+3:]
	}
	if i := strings.IndexAny(l, "/?#\\ \t\r\n"); i >= 0 {
		l = l[:i]
	}
	if i := strings.LastIndexByte(l, '@'); i >= 0 {
		l = l[i+1:]
	}
	if strings.HasPrefix(l, "[") {
		if i := strings.IndexByte(l, ']'); i >= 0 {
			return l[1:i]
		}
	}
	if i := strings.LastIndexByte(l, ':'); i >= 0 {
		l = l[:i]
	}
	return strings.TrimSuffix(l, ".")
}

// Defang rewrites the URLs in text so that they are not links any more:
// "http://" becomes "hxxp://", "https://" "hxxps://" and the dots of the
// host "[.]", as incident responders write them.
func Defang(text string) string {
	return urlRE.ReplaceAllStringFunc(text, func(u string) string {
		trail := u[len(strings.TrimRight(u, ".,;:!?]}>")):]
		u = u[:len(u)-len(trail)]
		l := strings.ToLower(u)
		rest := u
		prefix := ""
		switch {
		case strings.HasPrefix(l, "https://"):
			prefix, rest = "hxxps://", u[8:]
		case strings.HasPrefix(l, "http://"):
			prefix, rest = "hxxp://", u[7:]
		}
		host, path := rest, ""
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			host, path = rest[:i], rest[i:]
		}
		return prefix + strings.ReplaceAll(host, ".", "[.]") + path + trail
	})
}
