package inspect

import (
	"strings"

	"github.com/corazawaf/libinjection-go"

	"github.com/jichitai/seccloud/waf/internal/fastrx"
)

// Class is an attack class.
type Class string

// The attack classes our detectors report.
const (
	SQLi      Class = "sqli"
	XSS       Class = "xss"
	Traversal Class = "path-traversal"
	RCE       Class = "rce"
	SSTI      Class = "ssti"
	SSI       Class = "ssi"
	LDAP      Class = "ldap-injection"
	NoSQL     Class = "nosql-injection"
	CRLF      Class = "header-injection"
	Mail      Class = "mail-injection"
	XXE       Class = "xxe"
	JNDI      Class = "code-injection"
	OAST      Class = "out-of-band"
	ScannerUA Class = "scanner"
	GraphQL   Class = "graphql-introspection"
	SSRF      Class = "ssrf"
)

// Where says which part of the request a value came from.
type Where uint8

// The parts of a request.
const (
	InPath Where = iota
	InArgName
	InArg
	InHeader
	InUserAgent
	InCookie
	InBody
	InXML
)

var whereNames = [...]string{"path", "arg_name", "arg", "header", "user_agent", "cookie", "body", "xml"}

func (w Where) String() string {
	if int(w) < len(whereNames) {
		return whereNames[w]
	}
	return "where?"
}

// Finding is one detection.
type Finding struct {
	// ID is the detector's rule id (990000-990999).
	ID    int
	Class Class
	Msg   string
	// Where and Name locate the value (Name: parameter or header name).
	Where Where
	Name  string
	// Match is the matched text (at most 64 bytes).
	Match string
}

// detector is one pattern-based rule.
type detector struct {
	id    int
	class Class
	msg   string
	re    *fastrx.Regexp
	// where limits the detector to some parts; nil means everywhere.
	where []Where
	// trig: the pattern cannot match unless the text has one of these
	// characters ("" means always run).
	trig string
}

func (d *detector) applies(w Where) bool {
	if d.where == nil {
		return true
	}
	for _, x := range d.where {
		if x == w {
			return true
		}
	}
	return false
}

// shell commands: after a command separator, one of these followed by
// an argument-like token, a separator or the end.
const shellCmds = `(?:cat|ls|id|whoami|uname|wget|curl|getent|nslookup|dig|host|ping|bash|sh|zsh|ksh|csh|dash|nc|ncat|netcat|telnet|python[23]?|perl|ruby|php|lua|node|echo|printf|sleep|set|rm|chmod|chown|cp|mv|touch|head|tail|more|less|grep|find|awk|sed|xargs|env|export|eval|exec|base64|xxd|rev|tr|cut|sort|kill|ps|netstat|ifconfig|ipconfig|systeminfo|tasklist|net|powershell|pwsh|cmd|certutil|bitsadmin|type|dir|copy|del|start|reg|wmic|ftp|tftp|scp|ssh|socat|crontab|nohup|sudo|su|passwd|useradd|mkfifo|mknod|time)`

var detectors = []*detector{
	// SQL injection beyond libinjection: time/heavy functions, system
	// schemas, stacked queries and UNION SELECT after comment removal.
	{id: 990110, trig: "(;' \t\n\r\"_#&|.", class: SQLi, msg: "SQL function or schema typical of injection",
		re: fastrx.MustCompile(`(?i)\b(?:sleep|benchmark|pg_sleep|waitfor\s+delay|json_extract|json_depth|extractvalue|updatexml|load_file|group_concat|fn_varbintohexstr|xp_cmdshell|sp_\w+proto\w*)\s*\(|\binformation_schema\b|\bxp_cmdshell\b|\bmaster\.(?:dbo|sys)\.|\bunion\s+(?:all\s+|distinct\s+)?select\b|\bselect\b[^;]{0,60}\bfrom\s+(?:users|information_schema|mysql\.|pg_|sys\.|dual\b)|;\s*(?:declare|exec|execute|drop|insert|update|delete|shutdown)\s+[@\w]|\b(?:and|or)\s+\(?\s*'[^']*'\s*(?:like|=)\s*'|\b(?:and|or)\s+\d+\s*[=<>!]+\s*\d+\s+(?:and|or|--|#)|'\s*\)*\s*(?:or|and|xor|\|\||&&)\s+[\w(]+\s*(?:[=<>!(]|like\b|between\b|is\s|regexp\b|rlike\b)`)},
	// XSS beyond libinjection.
	{id: 990120, trig: "<=", class: XSS, msg: "HTML tag with an event handler or script URL",
		re: fastrx.MustCompile(`(?i)<[a-z!][^>]*?[\s/"'](?:on[a-z]{3,30})\s*=|<\s*/?\s*(?:script|iframe|svg|object|embed|frameset|applet|math|base|xss\w*)\b|(?:^|[\s"'=(])on[a-z]{3,30}\s*=\s*["'\x60(]?[\w.$\[\]]+\s*[(\x60]|(?:^|[\s"'=(])on(?:load|error|focus|blur|click|mouse\w+|pointer\w+|toggle|scroll|wheel|auxclick|key\w+|animation\w*|transition\w*|begin|end|input|change|submit)\s*=`)},
	{id: 990121, trig: "(`:_[=.", class: XSS, msg: "JavaScript sink or script scheme",
		re: fastrx.MustCompile(`(?i)\b(?:alert|prompt|confirm|eval|atob|setinterval|settimeout|execscript|fromcharcode)\b\s*(?:\?\.\s*)?[(\x60]|\(\s*(?:alert|prompt|confirm|eval)\s*\)|\[\s*\d*\s*\]\s*\.\s*\w+\s*\(\s*(?:alert|prompt|confirm|eval)\b|\b(?:alert|prompt|confirm|eval)\s*\.\s*(?:call|apply|bind)\s*\(|=\s*(?:alert|prompt|confirm|eval)\b|\bdocument\s*(?:\?\.\s*|\.\s*|\[\s*["'])(?:cookie|domain|location|write|body)\b|\bwindow\s*(?:\.|\[\s*["'])(?:location|onerror|name|eval)\b|(?:java|vb)script\s*:[^\s(]{0,40}[(\x60=]|data\s*:\s*text/html|\bconstructor\s*\(\s*["']|\.\s*constructor\s*\.|__proto__|\bprototype\s*\[`)},
	// Path traversal and local files.
	{id: 990130, trig: "./\\:", class: Traversal, msg: "path traversal or local system file",
		re: fastrx.MustCompile(`(?i)(?:^|[\\/=:"'\s;,|])\.{2,}[\\/]|[\\/]\.{2,}(?:[\\/;]|$)|/etc/(?:passwd|shadow|group|hosts|issue|sudoers)|\bc:\\\\?windows\\|\b(?:boot|win|system)\.ini\b|\\\\[^\\\s]+\\[a-z]\$\\|\\[a-z]\$\\|\bntuser\.dat\b|\bfile:/+|\bnetdoc:|/proc/self/|\.htaccess\b|\.htpasswd\b|\bweb\.config\b`)},
	// OS command injection: a separator then a command with an argument.
	{id: 990140, trig: ";&|`\n$", class: RCE, msg: "OS command after a command separator",
		where: []Where{InPath, InArgName, InArg, InHeader, InCookie, InBody, InXML},
		re:    fastrx.MustCompile(`(?i)(?:[;&|\x60\n]|\$\(|\|\||&&)\s*(?:[\w./-]*/)?` + shellCmds + `(?:\s*$|\$IFS|\$\{IFS\}|\s*[;&|<>\x60'"]|\s+(?:-{1,2}[a-z]|/[a-z.]|\\|\$|"|'|~|\d+\.\d+\.\d+|[\w.-]+\.(?:sh|php|txt|pl|py)\b|https?:|[\w.-]+\s*[|;&]|\w+=|\d+\s*$))`)},
	{id: 990141, trig: "$`({/ \t", class: RCE, msg: "shell syntax used for injection",
		re: fastrx.MustCompile(`\$\{?IFS\}?|\$\(\(\s*\d+\s*[-+*/]\s*\d+\s*\)\)|\(\)\s*\{\s*:\s*;\s*\}\s*;|\x60\s*(?:[\w./-]*/)?` + shellCmds + `\b[^\x60]*\x60|\$\(\s*` + shellCmds + `\b|(?i:\b(?:cmd|powershell|pwsh)(?:\.exe)?\s+/?[ck]\s)|(?i:\bset\s+/a\s+\d)|(?i:\bsystem|shell_exec|passthru|popen|proc_open|pcntl_exec)\s*\(\s*["'$]`)},
	// Server-side template / expression injection and code injection.
	{id: 990150, trig: "{<$#*.", class: SSTI, msg: "template or expression injection",
		re: fastrx.MustCompile(`\{\{[^{}]{0,200}[()*+|.\[\]'"_][^{}]{0,200}\}\}|\$\{[^{}]{0,200}\}|#\{[^{}]{0,200}\}|\*\{[^{}]{0,200}\}|<#(?:assign|list|if|include|import|macro|function)\b|\bfreemarker\.template\b|\{%\s*(?:import|include|set|for|if|raw|block)\b|\$\{\s*@|\$where\b`)},
	{id: 990151, trig: "${!_<(\".\x60 :0", class: JNDI, msg: "JNDI lookup, deserialisation or scripting payload",
		re: fastrx.MustCompile(`(?i)\$\{\s*(?:jndi|ctx|env|sys|java|lower|upper|date|main|bundle|k8s|docker|log4j|spring|::-)[\s:${]|!!(?:python|java|ruby|perl|php)/|\bjava\.lang\.(?:runtime|processbuilder|system)\b|\b__import__\s*\(|\bimport\s+(?:os|socket|subprocess|pty)\b|<\?php\b|\b(?:execute|eval|executeglobal)\s*\(\s*"|\bserver\.scripttimeout\b|\bon\s+error\s+resume\s+next\b|\bcreateobject\s*\(|\bwscript\.shell\b|\b[Oa]:\d+:(?:"[\w\\]+":\d+:)?\{|\brO0AB[A-Za-z0-9+/]|\baced0005`)},
	{id: 990250, trig: ":", class: SSRF, msg: "dangerous URL scheme or cloud metadata address",
		re: fastrx.MustCompile(`(?i)\b(?:php|expect|zip|phar|glob|jar|gopher|dict|tftp|ldap|ldaps|netdoc|jndi|rmi|compress\.zlib|ogg|ssh2(?:\.\w+)?)://|\b169\.254\.169\.254\b|\bmetadata\.google\.internal\b|\b100\.100\.100\.200\b|\[::ffff:(?:127|169\.254)\.`)},
	{id: 990160, trig: "<", class: SSI, msg: "server-side include directive",
		re: fastrx.MustCompile(`(?i)<!--\s*#\s*(?:exec|include|echo|config|fsize|flastmod|printenv|set|if|elif)\b`)},
	{id: 990170, trig: "(*:=", class: LDAP, msg: "LDAP filter injection",
		re: fastrx.MustCompile(`(?i)\(\s*[&|!]\s*\(|\*\s*\)\s*\(\s*[|&]|\(\s*\|\s*\(\s*\w+\s*=\s*\*|\bobjectclass\s*=\s*\*|\buserpassword\s*[:=]|\b\w+:\d+(?:\.\d+){3,}:=`)},
	{id: 990180, trig: "$.;({=", class: NoSQL, msg: "NoSQL operator or server-side JavaScript",
		re: fastrx.MustCompile(`(?i)(?:^|[{,\s"'])\$(?:where|ne|gt|gte|lt|lte|in|nin|regex|or|and|not|nor|exists|expr|eq|elemmatch|function|accumulator)\b\s*["']?\s*:|\bdb\.\w+\.(?:insert|find|update|remove|drop|aggregate|delete)\w*\s*\(|(?:^|[;'"])\s*(?:var|let|const)\s+\w+\s*=\s*new\s+\w+|\bdo\s*\{[^}]*\}\s*while\s*\(|;\s*while\s*\(|\bnew\s+date\s*\(\s*\)\s*;|['"]\s*;\s*return\s+\w+|\bthis\.\w+(?:\.\w+)*\s*(?:===?|!==?|\.match\s*\(|\.length\b)`)},
	// Header / response splitting: a line break before a header name.
	{id: 990190, trig: "\r\n", class: CRLF, msg: "CR/LF followed by a header (response splitting)",
		re:    fastrx.MustCompile(`(?i)[\r\n]\s*(?:set-cookie|location|content-(?:type|length|disposition)|refresh|x-[\w-]+|access-control-[\w-]+|cache-control|link|host|transfer-encoding)\s*:`),
		where: []Where{InPath, InArgName, InArg, InHeader, InCookie}},
	{id: 990191, trig: "\r\n\u560a\u560d\u010a\u010d", class: CRLF, msg: "line break in the URL or a header value",
		re:    fastrx.MustCompile(`[\r\n]|[\x{560A}\x{560D}\x{010A}\x{010D}]\s*[A-Za-z-]+\s*:`),
		where: []Where{InPath, InArgName, InHeader}},
	{id: 990200, trig: "\r\n", class: Mail, msg: "mail or IMAP/SMTP command injection",
		re: fastrx.MustCompile(`(?i)[\r\n]\s*(?:rcpt\s+to|mail\s+from|data\s*$|quit\s*(?:[\r\n]|$)|helo\s|ehlo\s|rset\s*(?:[\r\n]|$)|auth\s+(?:login|plain)|starttls|vrfy\s|expn\s|(?:to|cc|bcc|from|subject|reply-to|sender|return-path)\s*:|[a-z]\d{1,6}\s+(?:capability|fetch|login|select|examine|list|lsub|store|copy|logout|append|search|uid)\b)`)},
	{id: 990210, trig: "<+=:", class: XXE, msg: "XML external entity or schema include",
		re: fastrx.MustCompile(`(?i)<!doctype[^>]{0,200}(?:\[|\bsystem\b|\bpublic\b)|<!entity\b|\bxsi:(?:no(?:namespace)?)?schemalocation\b|<\s*x[si]:(?:include|import|redefine)\b|encoding\s*=\s*["']utf-7|\+ADw[-!A-Za-z0-9+/]`)},
	{id: 990220, trig: ".", class: OAST, msg: "out-of-band interaction host",
		re: fastrx.MustCompile(`(?i)\b(?:burpcollaborator\.net|oastify\.com|oast\.(?:me|fun|live|site|online|pro)|interact\.sh|interactsh\.com|dnslog\.cn|ceye\.io|requestbin\.(?:net|com)|canarytokens\.com|xss\.ht|pipedream\.net)\b`)},
	{id: 990230, class: ScannerUA, msg: "attack tool user agent",
		re:    fastrx.MustCompile(`(?i)\b(?:sqlmap|nuclei|openvas|nikto|nmap|masscan|zgrab|gobuster|dirbuster|dirb|wfuzz|ffuf|fuzz faster u fool|wpscan|acunetix|netsparker|appscan|burp|arachni|w3af|nessus|jaeles|xsstrike|commix|hydra|whatweb|winrm client)\b|\.nasl\b`),
		where: []Where{InUserAgent}},
	{id: 990240, trig: "_I", class: GraphQL, msg: "GraphQL introspection query",
		re: fastrx.MustCompile(`\b__(?:schema|type)\s*[{(]|\bIntrospectionQuery\b`)},
}

// interesting is the set of ASCII bytes that any detector needs; a value
// made only of letters, digits, '-', '.', '_' and non-ASCII text skips
// the pattern detectors (libinjection still sees words with spaces).
var interesting = func() (t [256]bool) {
	for _, c := range []byte("<>'\"()[]{};|&`$\\/=:*#!%@+,?~\r\n\t\x00^") {
		t[c] = true
	}
	return
}()

func plain(v string) bool {
	for i := 0; i < len(v); i++ {
		if interesting[v[i]] {
			return false
		}
	}
	return true
}

// Value inspects one value (with its decoded forms) found at w under
// name, and appends findings to out (at most one per detector id).
func Value(w Where, name, v string, out []Finding) []Finding {
	if v == "" {
		return out
	}
	if len(v) > 4096 {
		v = compact(v)
	}
	vars := []string{v}
	if !plain(v) || len(v) >= 8 {
		vars = Variants(v)
	}
	for _, s := range vars {
		out = scanOne(w, name, s, out)
	}
	return out
}

// maxScan bounds the text the pattern detectors read per value: longer
// values keep their first and last maxScan/2 bytes.
const maxScan = 16 << 10

// compact shortens padding: runs of one byte longer than 32 are cut to
// 32 (attackers pad payloads to get past inspection limits), then the
// value is cut to maxScan (head and tail).
func compact(v string) string {
	var b strings.Builder
	run := 0
	for i := 0; i < len(v); i++ {
		if i > 0 && v[i] == v[i-1] {
			run++
		} else {
			run = 0
		}
		if run < 32 {
			b.WriteByte(v[i])
		}
	}
	s := b.String()
	if len(s) > maxScan {
		s = s[:maxScan/2] + "\n" + s[len(s)-maxScan/2:]
	}
	return s
}

func has(out []Finding, id int) bool {
	for _, f := range out {
		if f.ID == id {
			return true
		}
	}
	return false
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

func scanOne(w Where, name, s string, out []Finding) []Finding {
	if w != InUserAgent && strings.IndexByte(s, ' ') >= 0 || !plain(s) {
		if !has(out, 990100) {
			if ok, fp := libinjection.IsSQLi(s); ok && sqliFingerprintOK(fp, s) {
				out = append(out, Finding{ID: 990100, Class: SQLi, Msg: "SQL injection (libinjection fingerprint " + fp + ")", Where: w, Name: name, Match: clip(s)})
			}
		}
	}
	if plain(s) {
		if w == InUserAgent {
			// scanner names need no punctuation
		} else {
			return out
		}
	}
	if !has(out, 990101) && strings.ContainsAny(s, "<=`") {
		if libinjection.IsXSS(s) {
			out = append(out, Finding{ID: 990101, Class: XSS, Msg: "XSS (libinjection)", Where: w, Name: name, Match: clip(s)})
		}
	}
	for _, d := range detectors {
		if !d.applies(w) || has(out, d.id) || d.trig != "" && !strings.ContainsAny(s, d.trig) {
			continue
		}
		if loc := d.re.FindStringIndex(s); loc != nil {
			out = append(out, Finding{ID: d.id, Class: d.class, Msg: d.msg, Where: w, Name: name, Match: clip(s[loc[0]:loc[1]])})
		}
	}
	return out
}

// sqliFingerprintOK drops libinjection fingerprints that fire on plain
// prose (a word, a number and a word): they need a quote, a comment, a
// parenthesis or an operator in the text to count.
func sqliFingerprintOK(fp, s string) bool {
	if strings.ContainsAny(s, "'\"`();=#") || strings.Contains(s, "--") || strings.Contains(s, "/*") {
		return true
	}
	return false
}
