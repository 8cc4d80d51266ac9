package report

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
)

// sevColors are the chart colours of levels 0–3 (distinguishable in grey
// print too: lightest to darkest).
var sevColors = [4]string{"#c8d3dc", "#6fa8dc", "#f1a340", "#b2182b"}

// WriteHTML writes the report as one self-contained HTML page (no external
// resources; charts are inline SVG), Japanese first with English
// sub-headings, with print CSS (A4, one section per page).
func WriteHTML(w io.Writer, rep *Monthly) error {
	return pageTmpl.Execute(w, rep)
}

var funcs = template.FuncMap{
	"num": func(n any) string {
		var v int64
		switch x := n.(type) {
		case int64:
			v = x
		case int:
			v = int64(x)
		}
		s := strconv.FormatInt(v, 10)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		if neg {
			return "-" + b.String()
		}
		return b.String()
	},
	"bytes": func(n int64) string {
		f := float64(n)
		for _, u := range []string{"B", "KB", "MB", "GB", "TB"} {
			if f < 1024 || u == "TB" {
				if u == "B" {
					return fmt.Sprintf("%d B", n)
				}
				return fmt.Sprintf("%.1f %s", f, u)
			}
			f /= 1024
		}
		return ""
	},
	"pct":        func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
	"jst":        func(t time.Time) string { return t.In(JST).Format("2006-01-02 15:04") },
	"date":       func(t time.Time) string { return t.In(JST).Format("1/2") },
	"sevColor":   func(i int) template.CSS { return template.CSS(sevColors[i&3]) },
	"sevJA":      func(i int) string { return detect.Severity(i).Japanese() },
	"sev":        func(s detect.Severity) int { return int(s) },
	"stateJA":    func(s incident.State) string { return s.Japanese() },
	"hist":       func(e incident.Entry) string { return historyText(&e, true) },
	"dailyChart": dailyChart,
	"topChart":   topChart,
	"levels":     func() []int { return []int{0, 1, 2, 3} },
	"rank":       func(i int) int { return i + 1 },
	"dirJA":      dirJA,
	"idx":        func(a [4]int64, i int) int64 { return a[i] },
	"idxi":       func(a [4]int, i int) int { return a[i] },
}

// dailyChart is a stacked bar chart of the detections per day by level.
func dailyChart(s *Section) template.HTML {
	const w, h, left, bottom, top = 720.0, 220.0, 48.0, 24.0, 10.0
	var maxv int64
	for _, d := range s.Daily {
		maxv = max(maxv, d.Total())
	}
	scale := niceMax(maxv)
	n := max(len(s.Daily), 1)
	bw := (w - left - 8) / float64(n)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="日別検知件数 / detections per day" xmlns="http://www.w3.org/2000/svg">`, w, h)
	for i := 0; i <= 4; i++ {
		y := top + (h-top-bottom)*float64(4-i)/4
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`, left, y, w-4, y)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="10" text-anchor="end">%d</text>`, left-4, y+3, scale*int64(i)/4)
	}
	for i, d := range s.Daily {
		x := left + float64(i)*bw
		y := h - bottom
		for l := 0; l < 4; l++ {
			if d.BySeverity[l] == 0 || scale == 0 {
				continue
			}
			bh := (h - top - bottom) * float64(d.BySeverity[l]) / float64(scale)
			y -= bh
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s 危険度%d: %d</title></rect>`,
				x+1, y, max(bw-2, 1), bh, sevColors[l], d.Date.Format("01-02"), l, d.BySeverity[l])
		}
		if n <= 31 && (i%2 == 0 || n <= 16) {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="9" text-anchor="middle">%d</text>`, x+bw/2, h-bottom+12, d.Date.Day())
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// topChart is a horizontal bar chart of the top signatures.
func topChart(s *Section) template.HTML {
	if len(s.Top) == 0 {
		return ""
	}
	const w, row, label = 720.0, 20.0, 260.0
	h := row*float64(len(s.Top)) + 8
	var maxv int64
	for _, sg := range s.Top {
		maxv = max(maxv, sg.Count)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="上位シグネチャ / top signatures" xmlns="http://www.w3.org/2000/svg">`, w, h)
	for i, sg := range s.Top {
		y := 4 + float64(i)*row
		name := sg.Rule
		if len([]rune(name)) > 40 {
			name = string([]rune(name)[:39]) + "…"
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="11" text-anchor="end">%s</text>`, label-6, y+13, html.EscapeString(name))
		x := label
		for l := 0; l < 4; l++ {
			if sg.BySeverity[l] == 0 || maxv == 0 {
				continue
			}
			bw := (w - label - 70) * float64(sg.BySeverity[l]) / float64(maxv)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.0f" fill="%s"/>`, x, y+2, bw, row-6, sevColors[l])
			x += bw
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11">%d</text>`, x+4, y+13, sg.Count)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceMax rounds v up to 1, 2 or 5 × 10^k (at least 4 so the axis has
// whole ticks).
func niceMax(v int64) int64 {
	if v <= 4 {
		return 4
	}
	p := int64(1)
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []int64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

var pageTmpl = template.Must(template.New("page").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<title>月次報告書 {{.Month}}{{if .Cloud.Tenant}} {{.Cloud.Name}}{{end}} — 自治体情報セキュリティクラウド</title>
<style>
body{font-family:"Noto Sans CJK JP","Hiragino Sans","Yu Gothic",Meiryo,sans-serif;margin:24px;color:#222;font-size:13px;line-height:1.5}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:2px solid #345;padding-bottom:2px;margin-top:28px}
h3{font-size:15px;margin:18px 0 6px}.en{color:#667;font-size:.8em;font-weight:normal}
table{border-collapse:collapse;margin:4px 0 12px;width:100%}th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#eef2f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.chart{width:100%;max-width:720px;height:auto;display:block}
.legend span{display:inline-block;margin-right:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
.meta{color:#555}.none{color:#777}
section.tenant{page-break-before:always;break-before:page}
@page{size:A4;margin:14mm}
@media print{body{margin:0;font-size:11px}tr,svg,.inc{break-inside:avoid;page-break-inside:avoid}h2,h3{break-after:avoid;page-break-after:avoid}th{-webkit-print-color-adjust:exact;print-color-adjust:exact}rect,i{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
</style>
</head>
<body>
<h1>セキュリティ監視 月次報告書 <span class="en">Monthly security report</span></h1>
<p class="meta">対象月 / month: {{.Month}}（{{jst .Start}} 〜 {{jst .End}} JST）<br>
作成日時 / generated: {{jst .Generated}} JST<br>
範囲 / scope: {{if .Cloud.Tenant}}{{.Cloud.Name}}（{{.Cloud.Tenant}}）{{else}}セキュリティクラウド全体 / whole cloud{{end}}</p>
{{template "section" .Cloud}}
{{range .Tenants}}<section class="tenant">{{template "section" .}}</section>
{{end}}
</body>
</html>
{{define "section"}}
<h2>{{if .Tenant}}{{.Name}}（{{.Tenant}}）{{else}}セキュリティクラウド全体 <span class="en">Whole cloud</span>{{end}}</h2>
<h3>不正アクセス検知件数 <span class="en">Detections (unauthorized access)</span></h3>
<table><tr><th>合計 / total</th>{{range levels}}<th>危険度{{.}}</th>{{end}}<th>インシデント / incidents</th></tr>
<tr><td class="n">{{num .Detections}}</td>{{$s := .}}{{range levels}}<td class="n">{{num (idx $s.BySeverity .)}}</td>{{end}}<td class="n">{{len .Incidents}}</td></tr></table>
<p class="legend">{{range levels}}<span><i style="background:{{sevColor .}}"></i>危険度{{.}} {{sevJA .}}</span>{{end}}</p>
<h3>日別検知件数 <span class="en">Detections per day (JST)</span></h3>
{{dailyChart .}}
<h3>インシデント件数（判定した危険度別） <span class="en">Incidents by judged level</span></h3>
<table><tr>{{range levels}}<th>危険度{{.}}</th>{{end}}</tr><tr>{{range levels}}<td class="n">{{num (idxi $s.IncidentsBySeverity .)}}</td>{{end}}</tr></table>
<h3>検知シグネチャ上位 <span class="en">Top signatures</span></h3>
{{if .Top}}{{topChart .}}
<table><tr><th>順位</th><th>シグネチャ / rule</th><th>名称 / name</th><th>件数 / count</th>{{range levels}}<th>危険度{{.}}</th>{{end}}</tr>
{{range $i, $g := .Top}}<tr><td class="n">{{rank $i}}</td><td>{{$g.Rule}}</td><td>{{$g.Name}}</td><td class="n">{{num $g.Count}}</td>{{range levels}}<td class="n">{{num (idx $g.BySeverity .)}}</td>{{end}}</tr>
{{end}}</table>{{else}}<p class="none">検知なし / none</p>{{end}}
{{if .PerTenant}}<h3>団体別 <span class="en">Per tenant</span></h3>
<table><tr><th>団体 / tenant</th><th>検知 / detections</th>{{range levels}}<th>危険度{{.}}</th>{{end}}<th>インシデント</th></tr>
{{range .PerTenant}}{{$t := .}}<tr><td>{{.Name}}（{{.Tenant}}）</td><td class="n">{{num .Detections}}</td>{{range levels}}<td class="n">{{num (idx $t.BySeverity .)}}</td>{{end}}<td class="n">{{.Incidents}}</td></tr>
{{end}}</table>{{end}}
<h3>インシデント詳細 <span class="en">Incident details</span></h3>
{{if .Incidents}}{{range .Incidents}}<table class="inc">
<tr><th style="width:22%">番号 / ID</th><td>{{.ID}}</td></tr>
<tr><th>危険度 / level</th><td>{{sev .Severity}}（{{.Severity.Japanese}}）</td></tr>
<tr><th>状態 / state</th><td>{{stateJA .State}}（{{.State}}）</td></tr>
<tr><th>団体 / tenant</th><td>{{$.TenantName .Tenant}}（{{.Tenant}}）</td></tr>
<tr><th>検知内容 / rule</th><td>{{if .RuleTitle}}{{.RuleTitle}} — {{end}}{{.Rule}}</td></tr>
<tr><th>端末 / terminal</th><td>{{.Terminal}}</td></tr>
{{if .Host}}<tr><th>攻撃対象 / target</th><td>{{.Host}}</td></tr>{{end}}
<tr><th>発生 / period</th><td>{{jst .First}} 〜 {{jst .Last}} JST（{{num .Count}} 件）</td></tr>
<tr><th>判定の根拠 / evidence</th><td>{{range .Evidence}}{{.JA}}<br><span class="en">{{.EN}}</span><br>{{end}}</td></tr>
</table>
{{end}}{{else}}<p class="none">インシデントなし / none</p>{{end}}
<h3>連絡履歴 <span class="en">Contact history</span></h3>
{{if .Contacts}}<table><tr><th>日時 (JST)</th><th>インシデント</th><th>内容 / entry</th></tr>
{{range .Contacts}}<tr><td>{{jst .Time}}</td><td>{{.Incident}}</td><td>{{hist .Entry}}</td></tr>
{{end}}</table>{{else}}<p class="none">なし / none</p>{{end}}
<h3>対応履歴 <span class="en">Response history</span></h3>
{{if .Responses}}<table><tr><th>日時 (JST)</th><th>インシデント</th><th>内容 / entry</th></tr>
{{range .Responses}}<tr><td>{{jst .Time}}</td><td>{{.Incident}}</td><td>{{hist .Entry}}</td></tr>
{{end}}</table>{{else}}<p class="none">なし / none</p>{{end}}
{{if .Breakout}}<h3>ローカルブレイクアウト利用状況 <span class="en">Breakout usage per SaaS app</span></h3>
<table><tr><th>アプリ / app</th><th>リクエスト / requests</th><th>転送量 / bytes</th><th>遮断 / blocks</th></tr>
{{range .Breakout}}<tr><td>{{.App}}</td><td class="n">{{num .Requests}}</td><td class="n">{{bytes .Bytes}}</td><td class="n">{{num .Blocks}}</td></tr>
{{end}}</table>{{end}}
{{if .Sites}}<h3>公開Webサイト <span class="en">Public web sites</span></h3>
<table><tr><th>サイト / site</th><th>リクエスト</th><th>転送量</th><th>キャッシュヒット率</th><th>遮断した攻撃 / attacks blocked</th></tr>
{{range .Sites}}<tr><td>{{.Site}}</td><td class="n">{{num .Requests}}</td><td class="n">{{bytes .Bytes}}</td><td class="n">{{pct .CacheHitRatio}}</td><td class="n">{{num .Attacks}}</td></tr>
{{end}}</table>{{end}}
{{if .Mail}}<h3>メール流量 <span class="en">Mail volume</span></h3>
<table><tr><th>方向 / direction</th><th>通数 / messages</th><th>隔離 / quarantined</th><th>容量 / bytes</th></tr>
{{range .Mail}}<tr><td>{{dirJA .Direction}}</td><td class="n">{{num .Messages}}</td><td class="n">{{num .Quarantined}}</td><td class="n">{{bytes .Bytes}}</td></tr>
{{end}}</table>{{end}}
{{if .Quarantine}}<table><tr><th>隔離理由 / quarantine reason</th><th>通数</th></tr>
{{range .Quarantine}}<tr><td>{{.Reason}}</td><td class="n">{{num .Count}}</td></tr>
{{end}}</table>{{end}}
{{if .Volume}}<h3>イベント量 <span class="en">Events per module</span></h3>
<table><tr><th>機能 / module</th><th>イベント / events</th><th>転送量 / bytes</th></tr>
{{range .Volume}}<tr><td>{{.Module}}</td><td class="n">{{num .Events}}</td><td class="n">{{bytes .Bytes}}</td></tr>
{{end}}</table>{{end}}
{{end}}`))

// dirJA labels a mail direction.
func dirJA(d string) string {
	switch d {
	case "inbound":
		return "受信（外部→団体） / inbound"
	case "outbound":
		return "送信（団体→外部） / outbound"
	case "internal":
		return "団体間 / internal"
	}
	return d
}
