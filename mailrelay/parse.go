package mailrelay

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// command is one parsed SMTP command line.
type command struct {
	verb string // upper-case: "EHLO", "MAIL", ...
	arg  string // the rest after the verb and one space (or "FROM:"/"TO:")
}

var (
	errSyntax     = errors.New("syntax error")
	errBadChar    = errors.New("control character in command")
	errLineLength = errors.New("line too long")
)

// parseCommand splits an SMTP command line (without its line end) into
// verb and argument. It rejects control characters (CR, LF, NUL, ...)
// anywhere in the line, so nothing that reaches a header or log can split
// it.
func parseCommand(line string) (command, error) {
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			return command{}, errBadChar
		}
	}
	verb, arg, _ := strings.Cut(line, " ")
	if len(verb) < 4 || len(verb) > 8 {
		return command{}, errSyntax
	}
	verb = strings.ToUpper(verb)
	switch verb {
	case "MAIL", "RCPT":
		// "MAIL FROM:<...>" / "RCPT TO:<...>"; tolerate a space after ':'.
		want := "FROM:"
		if verb == "RCPT" {
			want = "TO:"
		}
		if len(arg) < len(want) || !strings.EqualFold(arg[:len(want)], want) {
			return command{}, errSyntax
		}
		arg = strings.TrimLeft(arg[len(want):], " ")
	}
	return command{verb: verb, arg: strings.TrimRight(arg, " \t")}, nil
}

// path is a parsed reverse-path or forward-path with its parameters.
type path struct {
	addr   string // "local@domain", "" for the null path
	local  string
	domain string // lower-case
	params map[string]string
}

var (
	errSourceRoute = errors.New("source routes are not accepted")
	errPercentHack = errors.New("sender-routed addresses are not accepted")
	errBadAddress  = errors.New("bad address syntax")
	errNonASCII    = errors.New("non-ASCII address without SMTPUTF8")
)

// parsePath parses "<local@domain> PARAM=VALUE ..." as in RFC 5321 4.1.2.
// The null path "<>" is accepted only when allowNull is set. utf8 allows
// UTF-8 in the address (RFC 6531); it is always allowed when the
// parameters contain SMTPUTF8.
func parsePath(s string, allowNull, utf8OK bool) (path, error) {
	var p path
	if len(s) < 2 || s[0] != '<' {
		return p, errBadAddress
	}
	end := strings.IndexByte(s, '>')
	if end < 0 {
		return p, errBadAddress
	}
	inner, rest := s[1:end], s[end+1:]
	if rest != "" && rest[0] != ' ' {
		return p, errBadAddress
	}
	for _, kv := range strings.Fields(rest) {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" || len(k) > 32 || len(v) > 256 {
			return p, errSyntax
		}
		if p.params == nil {
			p.params = make(map[string]string, 2)
		}
		p.params[strings.ToUpper(k)] = v
	}
	_, smtputf8 := p.params["SMTPUTF8"]
	smtputf8 = smtputf8 || utf8OK
	if inner == "" {
		if !allowNull {
			return p, errBadAddress
		}
		return p, nil
	}
	if inner[0] == '@' {
		return p, errSourceRoute
	}
	if len(inner) > 254 {
		return p, errBadAddress
	}
	at := strings.LastIndexByte(inner, '@')
	if at <= 0 || at == len(inner)-1 {
		return p, errBadAddress
	}
	local, domain := inner[:at], inner[at+1:]
	if len(local) > 64 {
		return p, errBadAddress
	}
	for i := 0; i < len(inner); i++ {
		if inner[i] >= 0x80 && !smtputf8 {
			return p, errNonASCII
		}
	}
	if !utf8.ValidString(inner) {
		return p, errBadAddress
	}
	if err := checkLocal(local); err != nil {
		return p, err
	}
	d, err := normDomain(domain)
	if err != nil {
		return p, err
	}
	p.local, p.domain = local, d
	p.addr = local + "@" + d
	return p, nil
}

// checkLocal accepts a dot-atom or a quoted string local part and refuses
// the percent hack and bang paths (user%other@relay, host!user@relay).
func checkLocal(l string) error {
	if l[0] == '"' {
		if len(l) < 2 || l[len(l)-1] != '"' {
			return errBadAddress
		}
		q := l[1 : len(l)-1]
		for i := 0; i < len(q); i++ {
			c := q[i]
			if c == '\\' {
				i++
				if i == len(q) {
					return errBadAddress
				}
				continue
			}
			if c == '"' || c < 0x20 || c == 0x7f {
				return errBadAddress
			}
			if c == '%' || c == '!' || c == '@' {
				return errPercentHack
			}
		}
		return nil
	}
	if l[0] == '.' || l[len(l)-1] == '.' || strings.Contains(l, "..") {
		return errBadAddress
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case c >= 0x80:
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '%' || c == '!':
			return errPercentHack
		case strings.IndexByte(".#$&'*+-/=?^_`{|}~", c) >= 0:
		default:
			return errBadAddress
		}
	}
	return nil
}

// normDomain checks a domain (or an address literal) and returns it in
// lower case without a trailing dot.
func normDomain(d string) (string, error) {
	if d == "" || len(d) > 253 {
		return "", errBadAddress
	}
	if d[0] == '[' {
		if d[len(d)-1] != ']' {
			return "", errBadAddress
		}
		return d, nil
	}
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return "", errBadAddress
	}
	labels := 0
	for _, l := range strings.Split(d, ".") {
		labels++
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", errBadAddress
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if c >= 0x80 || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
				continue
			}
			return "", errBadAddress
		}
	}
	return strings.ToLower(d), nil
}

// checkHelo validates a HELO/EHLO argument: a domain or an address
// literal, nothing that could break a Received: header.
func checkHelo(s string) error {
	if s == "" || len(s) > 255 || strings.ContainsAny(s, " \t()<>;\"\\") {
		return errSyntax
	}
	if s[0] == '[' {
		if s[len(s)-1] != ']' {
			return errSyntax
		}
		for i := 1; i < len(s)-1; i++ {
			c := s[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '.' || c == ':' || c == 'I' || c == 'P' || c == 'v' || c == 'V' || c == '6') {
				return errSyntax
			}
		}
		return nil
	}
	_, err := normDomain(s)
	return err
}

// parseSize reads the SIZE= parameter; 0 when absent.
func parseSize(params map[string]string) (int64, error) {
	v, ok := params["SIZE"]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errSyntax
	}
	return n, nil
}
