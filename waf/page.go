package waf

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"html/template"
	"net/http"
	"strconv"
)

// page is the data of an error page: Japanese first, English below, with
// a reference (the event id) to quote when asking about it.
type page struct {
	Status   int
	TitleJA  string
	TitleEN  string
	ReasonJA string
	ReasonEN string
	Ref      string
	// LinkHref, when set, adds a link (LinkText) under the Japanese text.
	LinkHref, LinkText string
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.TitleJA}} / {{.TitleEN}}</title>
<style>body{font-family:sans-serif;max-width:48em;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.4em;color:#a00}h2{font-size:1.1em;color:#a00}
.en{margin-top:2em;border-top:1px solid #ccc;padding-top:1em}</style>
</head>
<body>
<h1>{{.TitleJA}}</h1>
<p>{{.ReasonJA}}</p>
{{if .LinkHref}}<p><a href="{{.LinkHref}}">{{.LinkText}}</a></p>
{{end}}<p>参照番号: {{.Ref}}（HTTP {{.Status}}）</p>
<div class="en" lang="en">
<h2>{{.TitleEN}}</h2>
<p>{{.ReasonEN}}</p>
<p>Reference: {{.Ref}} (HTTP {{.Status}})</p>
</div>
</body>
</html>
`))

var (
	pageUnknownSite = page{Status: http.StatusNotFound,
		TitleJA: "サイトが見つかりません", TitleEN: "Site not found",
		ReasonJA: "このアドレスでは、お探しのサイトは配信されていません。URL をご確認ください。",
		ReasonEN: "The site you asked for is not served here. Please check the address."}
	pageMisdirected = page{Status: http.StatusMisdirectedRequest,
		TitleJA: "接続先が一致しません", TitleEN: "Misdirected request",
		ReasonJA: "この接続では、要求されたサイトを配信できません。再度アクセスしてください。",
		ReasonEN: "This connection cannot serve the site asked for. Please try again."}
	pageBadGateway = page{Status: http.StatusBadGateway,
		TitleJA: "ただいまサイトに接続できません", TitleEN: "The site cannot be reached right now",
		ReasonJA: "サイトのサーバーに接続できませんでした。しばらくしてから再度アクセスしてください。",
		ReasonEN: "The site's servers could not be reached. Please try again in a while."}
	pageGatewayTimeout = page{Status: http.StatusGatewayTimeout,
		TitleJA: "サイトの応答がありません", TitleEN: "The site did not answer in time",
		ReasonJA: "サイトのサーバーが時間内に応答しませんでした。しばらくしてから再度アクセスしてください。",
		ReasonEN: "The site's servers did not answer in time. Please try again in a while."}
)

// writePage writes p with the reference ref.
func writePage(w http.ResponseWriter, p page, ref string) {
	p.Ref = ref
	var buf bytes.Buffer
	_ = pageTmpl.Execute(&buf, p)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_, _ = w.Write(buf.Bytes())
}

// newRef returns a fresh reference (also the event id).
func newRef() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
