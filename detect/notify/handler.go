package notify

import (
	"errors"
	"html/template"
	"net/http"

	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/judge"
)

var pageTmpl = template.Must(template.New("ack").Parse(`<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>{{.Title}}</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}button{font-size:1.2em;padding:.5em 2em}.en{color:#555}</style>
</head><body>
<h1>{{.Title}}</h1>
{{if .Inc}}<table>
<tr><th>インシデント番号</th><td>{{.Inc.ID}}</td></tr>
<tr><th>危険度</th><td>{{.Inc.Severity | printf "%d"}}（{{.Inc.Severity.Japanese}}）</td></tr>
<tr><th>検知内容</th><td>{{.Inc.RuleTitle}}</td></tr>
<tr><th>端末</th><td>{{.Inc.Terminal}}</td></tr>
<tr><th>発生</th><td>{{.First}}（{{.Inc.Count}} 件）</td></tr>
</table>{{end}}
<p>{{.JA}}</p>
{{if .Form}}<form method="post"><input type="hidden" name="t" value="{{.Token}}"><button type="submit">受領を確認する / Confirm receipt</button></form>{{end}}
<p class="en">{{.EN}}</p>
</body></html>
`))

type page struct {
	Title, JA, EN, Token, First string
	Form                        bool
	Inc                         *incident.Incident
}

// Handler returns the http.Handler of the acknowledgement link. Mount it at
// the path of Config.AckURL. GET shows the incident and a confirmation
// button (mail scanners that prefetch links do not acknowledge); POST with
// the token acknowledges. Forged, reused and expired tokens are refused
// (403, 409, 410) and recorded on the incident when it can be identified.
func (n *Notifier) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
		var tok string
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			tok = r.URL.Query().Get("t")
		case http.MethodPost:
			r.Body = http.MaxBytesReader(w, r.Body, 4096)
			if err := r.ParseForm(); err != nil {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			tok = r.PostForm.Get("t")
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.Method == http.MethodPost {
			inc, err := n.ack(tok, r.RemoteAddr)
			if err != nil {
				n.refuse(w, err)
				return
			}
			render(w, http.StatusOK, page{Title: "受領を確認しました / Receipt confirmed", Inc: &inc, First: first(&inc),
				JA: "ご確認ありがとうございます。受領確認を記録しました。SOCからの続報をお待ちください。",
				EN: "Thank you. Your confirmation of receipt has been recorded; the SOC will follow up."})
			return
		}
		_, inc, err := n.check(tok)
		if err != nil {
			n.refuse(w, err)
			return
		}
		render(w, http.StatusOK, page{Title: "セキュリティインシデントの受領確認", Inc: &inc, First: first(&inc), Token: tok, Form: true,
			JA: "下のボタンを押すと、この通知を受領したことをSOCに伝えます。",
			EN: "Press the button to confirm to the SOC that you received this notice."})
	})
}

func first(inc *incident.Incident) string {
	return inc.First.In(judge.JST).Format("2006-01-02 15:04:05 JST")
}

func (n *Notifier) refuse(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrTokenExpired):
		render(w, http.StatusGone, page{Title: "リンクの有効期限切れ / Link expired",
			JA: "このリンクは有効期限が切れています。SOCにお電話ください。", EN: "This link has expired. Please phone the SOC."})
	case errors.Is(err, ErrTokenUsed):
		render(w, http.StatusConflict, page{Title: "確認済みのリンク / Link already used",
			JA: "このリンクでの受領確認は記録済みです。", EN: "Receipt has already been confirmed with this link."})
	case errors.Is(err, ErrTokenForged):
		render(w, http.StatusForbidden, page{Title: "無効なリンク / Invalid link",
			JA: "このリンクは無効です。", EN: "This link is not valid."})
	default:
		render(w, http.StatusConflict, page{Title: "受領確認できません / Cannot confirm",
			JA: "このインシデントは既に終了しています。", EN: "This incident is already closed."})
	}
}

func render(w http.ResponseWriter, code int, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_ = pageTmpl.Execute(w, p)
}
