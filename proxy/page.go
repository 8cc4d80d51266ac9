package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"html/template"
	"strconv"

	"github.com/jichitai/seccloud/detect"
)

// page is the data of the block and error page.
type page struct {
	Status   int
	TitleJA  string
	TitleEN  string
	ReasonJA string
	ReasonEN string
	URL      string
	Rule     string
	Ref      string
}

// The page is Japanese first, English below. It names the reason, the rule
// and an incident reference (the event id) to quote to the help desk.
var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.TitleJA}} / {{.TitleEN}}</title>
<style>body{font-family:sans-serif;max-width:48em;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.4em;color:#a00}h2{font-size:1.1em;color:#a00}dt{font-weight:bold}
.en{margin-top:2em;border-top:1px solid #ccc;padding-top:1em}</style>
</head>
<body>
<h1>{{.TitleJA}}</h1>
<p>{{.ReasonJA}}</p>
<dl>
{{- if .URL}}<dt>URL</dt><dd>{{.URL}}</dd>{{end}}
{{- if .Rule}}<dt>ルール</dt><dd>{{.Rule}}</dd>{{end}}
<dt>参照番号</dt><dd>{{.Ref}}</dd>
</dl>
<p>業務上必要なサイトの場合は、この参照番号を添えて情報システム担当にお問い合わせください。</p>
<div class="en" lang="en">
<h2>{{.TitleEN}}</h2>
<p>{{.ReasonEN}}</p>
<p>Rule: {{.Rule}} &middot; Reference: {{.Ref}}. If you need this site for your work, contact your IT help desk quoting the reference.</p>
</div>
</body>
</html>
`))

// newRef returns a fresh incident reference (also the event id).
func newRef() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// blockPage returns the page for a blocking verdict.
func blockPage(v detect.Verdict, url, ref string) page {
	p := page{Status: 403, TitleJA: "このページへのアクセスはブロックされました", TitleEN: "Access to this page was blocked",
		URL: url, Rule: v.Rule, Ref: ref, ReasonEN: v.Reason}
	if v.RuleName != "" {
		p.Rule = v.Rule + " (" + v.RuleName + ")"
	}
	switch v.Rule {
	case RuleBlockList:
		p.ReasonJA = "接続先がブロックリストに登録されています。"
	case RuleCategory:
		p.ReasonJA = "接続先がブロック対象のカテゴリ「" + v.RuleName + "」に分類されています。"
	case RuleNoTenant:
		p.ReasonJA = "この端末のアドレスはどの接続団体にも登録されていないため、プロキシを利用できません。"
	case RuleTenantBan:
		p.ReasonJA = "接続先は他の接続団体のネットワークです。団体間の直接通信は許可されていません。"
	case RuleDestination:
		p.ReasonJA = "接続先アドレスへの通信は許可されていません。"
	case RuleConnectPort:
		p.ReasonJA = "このポートへのトンネル接続（CONNECT）は許可されていません。"
	case RuleTooMany:
		p.Status = 503
		p.TitleJA, p.TitleEN = "接続数が上限に達しています", "Too many connections"
		p.ReasonJA = "所属団体の同時接続数が上限に達しています。しばらくしてから再度お試しください。"
	case RuleMalware:
		p.TitleJA, p.TitleEN = "マルウェアを検知したためダウンロードを止めました", "Malware was found: the download was stopped"
		p.ReasonJA = "ダウンロードしようとしたファイルからマルウェア「" + v.RuleName + "」が検知されました。ファイルは端末に届いていません。"
	case RuleScannerDown:
		p.Status = 503
		p.TitleJA, p.TitleEN = "ウイルス検査ができませんでした", "The download could not be scanned"
		p.ReasonJA = "ウイルス検査サーバーが応答しないため、安全のためダウンロードを止めました。しばらくしてから再度お試しください。"
	case RulePolicyError:
		p.Status = 503
		p.TitleJA, p.TitleEN = "ポリシーを判定できませんでした", "The policy could not be evaluated"
		p.ReasonJA = "安全のため通信を止めました。しばらくしてから再度お試しください。"
	default:
		p.ReasonJA = "セキュリティポリシーによりブロックされました。"
	}
	if p.ReasonEN == "" {
		p.ReasonEN = "Blocked by the security policy."
	}
	return p
}

// errorPage returns the page for a proxy error (bad request, upstream
// failure).
func errorPage(status int, ja, en, url, ref string) page {
	return page{Status: status, TitleJA: "ページを表示できません", TitleEN: "The page cannot be displayed",
		ReasonJA: ja, ReasonEN: en, URL: url, Ref: ref}
}

func (p *page) render() []byte {
	var b bytes.Buffer
	_ = pageTmpl.Execute(&b, p)
	return b.Bytes()
}

var statusText = map[int]string{
	400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 431: "Request Header Fields Too Large",
	502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}

func statusLine(code int) string {
	return "HTTP/1.1 " + strconv.Itoa(code) + " " + statusText[code] + "\r\n"
}
