package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect/incident"
)

// CSVHeader is the first line of WriteCSV's output.
var CSVHeader = []string{"section", "tenant", "key", "item", "value"}

// WriteCSV writes the report as CSV (RFC 4180, UTF-8 with a BOM so that
// spreadsheet programs read the Japanese text), one value per line in the
// long form section,tenant,key,item,value; tenant is empty for the
// whole-cloud section. Sections and items:
//
//	summary     key detections|incidents, item total|level0..level3
//	daily       key YYYY-MM-DD (JST), item total|level0..level3
//	signature   key rule id, item rank|name|count|level0..level3
//	volume      key module, item events|bytes
//	breakout    key SaaS app, item requests|bytes|blocks
//	site        key site, item requests|bytes|cache_hits|cache_hit_ratio|attacks_blocked
//	mail        key inbound|outbound|internal, item messages|quarantined|bytes
//	quarantine  key reason, item count
//	incident    key incident id, item severity|state|rule|title|terminal|host|count|first|last|evidence
//	contact     key incident id, item time (RFC 3339, JST), value kind/channel/to/by/text
//	response    the same for state changes, notes and assignments
func WriteCSV(w io.Writer, rep *Monthly) error {
	if _, err := io.WriteString(w, "\ufeff"); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	writeSectionCSV(cw, rep.Cloud)
	for _, s := range rep.Tenants {
		writeSectionCSV(cw, s)
	}
	cw.Flush()
	return cw.Error()
}

func writeSectionCSV(cw *csv.Writer, s *Section) {
	row := func(section, key, item string, v any) {
		var val string
		switch x := v.(type) {
		case string:
			val = x
		case int64:
			val = strconv.FormatInt(x, 10)
		case int:
			val = strconv.Itoa(x)
		case float64:
			val = strconv.FormatFloat(x, 'f', 4, 64)
		default:
			val = fmt.Sprint(x)
		}
		_ = cw.Write([]string{section, s.Tenant, key, item, val})
	}
	row("summary", "detections", "total", s.Detections)
	for l, n := range s.BySeverity {
		row("summary", "detections", "level"+strconv.Itoa(l), n)
	}
	row("summary", "incidents", "total", len(s.Incidents))
	for l, n := range s.IncidentsBySeverity {
		row("summary", "incidents", "level"+strconv.Itoa(l), n)
	}
	for _, d := range s.Daily {
		k := d.Date.Format(time.DateOnly)
		row("daily", k, "total", d.Total())
		for l, n := range d.BySeverity {
			row("daily", k, "level"+strconv.Itoa(l), n)
		}
	}
	for i, sg := range s.Top {
		row("signature", sg.Rule, "rank", i+1)
		row("signature", sg.Rule, "name", sg.Name)
		row("signature", sg.Rule, "count", sg.Count)
		for l, n := range sg.BySeverity {
			row("signature", sg.Rule, "level"+strconv.Itoa(l), n)
		}
	}
	for _, v := range s.Volume {
		row("volume", v.Module, "events", v.Events)
		row("volume", v.Module, "bytes", v.Bytes)
	}
	for _, a := range s.Breakout {
		row("breakout", a.App, "requests", a.Requests)
		row("breakout", a.App, "bytes", a.Bytes)
		row("breakout", a.App, "blocks", a.Blocks)
	}
	for _, x := range s.Sites {
		row("site", x.Site, "requests", x.Requests)
		row("site", x.Site, "bytes", x.Bytes)
		row("site", x.Site, "cache_hits", x.CacheHits)
		row("site", x.Site, "cache_hit_ratio", x.CacheHitRatio())
		row("site", x.Site, "attacks_blocked", x.Attacks)
	}
	for _, m := range s.Mail {
		row("mail", m.Direction, "messages", m.Messages)
		row("mail", m.Direction, "quarantined", m.Quarantined)
		row("mail", m.Direction, "bytes", m.Bytes)
	}
	for _, q := range s.Quarantine {
		row("quarantine", q.Reason, "count", q.Count)
	}
	for _, inc := range s.Incidents {
		row("incident", inc.ID, "severity", int(inc.Severity))
		row("incident", inc.ID, "state", string(inc.State))
		row("incident", inc.ID, "rule", inc.Rule)
		row("incident", inc.ID, "title", inc.RuleTitle)
		row("incident", inc.ID, "terminal", inc.Terminal)
		row("incident", inc.ID, "host", inc.Host)
		row("incident", inc.ID, "count", inc.Count)
		row("incident", inc.ID, "first", inc.First.In(JST).Format(time.RFC3339))
		row("incident", inc.ID, "last", inc.Last.In(JST).Format(time.RFC3339))
		ev := make([]string, len(inc.Evidence))
		for i, e := range inc.Evidence {
			ev[i] = e.JA
		}
		row("incident", inc.ID, "evidence", strings.Join(ev, " / "))
	}
	for _, h := range s.Contacts {
		row("contact", h.Incident, h.Time.In(JST).Format(time.RFC3339), historyText(&h.Entry, false))
	}
	for _, h := range s.Responses {
		row("response", h.Incident, h.Time.In(JST).Format(time.RFC3339), historyText(&h.Entry, false))
	}
}

var entryJA = map[string]string{
	incident.KindNotify:         "通知送信",
	incident.KindNotifyFailed:   "通知失敗",
	incident.KindAck:            "受領確認",
	incident.KindAckRefused:     "受領確認を拒否",
	incident.KindDeadlineMissed: "期限内に受領確認なし",
	incident.KindState:          "状態変更",
	incident.KindNote:           "メモ",
	incident.KindAssign:         "担当者設定",
}

// historyText is one timeline entry as a line: kind, channel, to, by, text.
// ja uses the Japanese kind label.
func historyText(e *incident.Entry, ja bool) string {
	var parts []string
	k := e.Kind
	if ja {
		if l, ok := entryJA[k]; ok {
			k = l
		}
	}
	parts = append(parts, k)
	if e.Channel != "" {
		parts = append(parts, "channel="+e.Channel)
	}
	if e.To != "" {
		parts = append(parts, "to="+e.To)
	}
	if e.By != "" {
		parts = append(parts, "by="+e.By)
	}
	if e.State != "" {
		st := string(e.State)
		if ja {
			st = e.State.Japanese()
		}
		parts = append(parts, "state="+st)
	}
	if e.Text != "" {
		parts = append(parts, e.Text)
	}
	return strings.Join(parts, " ")
}
