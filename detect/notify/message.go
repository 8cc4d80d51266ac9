package notify

import (
	"fmt"
	"strings"

	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/judge"
)

// Message is one notification to one address of a ladder step.
type Message struct {
	Incident incident.Incident
	// TenantName is the tenant's display name ("" → the tenant id).
	TenantName string
	Step       int
	Contact    string
	Channel    string
	To         string
	// AckURL is the signed acknowledgement link.
	AckURL string
	// From is the SOC's name as shown in the text.
	From string
}

// Subject returns the mail subject, Japanese first.
func (m *Message) Subject() string {
	return fmt.Sprintf("【重要】セキュリティインシデントのお知らせ（危険度%d）%s / Security incident notice (level %d)",
		m.Incident.Severity, m.Incident.ID, m.Incident.Severity)
}

// Text returns the plain-text body: Japanese, then English.
func (m *Message) Text() string {
	inc := &m.Incident
	tn := m.TenantName
	if tn == "" {
		tn = inc.Tenant
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	first := inc.First.In(judge.JST).Format("2006-01-02 15:04:05")
	last := inc.Last.In(judge.JST).Format("2006-01-02 15:04:05")
	w("%s %s 様", tn, m.Contact)
	w("")
	w("%sです。重大なセキュリティインシデントと判断しましたので、お知らせします。", m.From)
	w("下記のリンクを開き「受領を確認する」ボタンを押して、本通知の受領を確認してください。")
	w("確認がない場合は、次のご担当者様へ順に連絡いたします。")
	w("")
	w("受領確認: %s", m.AckURL)
	w("")
	w("インシデント番号: %s", inc.ID)
	w("危険度: %d（%s）", inc.Severity, inc.Severity.Japanese())
	w("検知内容: %s（規則 %s）", inc.RuleTitle, inc.Rule)
	if inc.Terminal != "" {
		w("端末: %s", inc.Terminal)
	}
	if inc.Host != "" {
		w("攻撃対象: %s", inc.Host)
	}
	w("発生: %s 〜 %s（日本時間、%d 件）", first, last, inc.Count)
	w("判定の根拠:")
	for _, e := range inc.Evidence {
		w("・%s", e.JA)
	}
	w("")
	w("---- English ----")
	w("Dear %s (%s),", m.Contact, tn)
	w("")
	w("%s has judged a serious security incident. Please open the link above", m.From)
	w("and press the confirmation button to acknowledge receipt; without it the")
	w("next contact will be notified.")
	w("")
	w("Acknowledge: %s", m.AckURL)
	w("Incident: %s", inc.ID)
	w("Severity: %d (%s)", inc.Severity, inc.Severity)
	w("Detection: %s (rule %s)", inc.RuleTitle, inc.Rule)
	if inc.Terminal != "" {
		w("Terminal: %s", inc.Terminal)
	}
	w("Time: %s – %s UTC (%d events)", inc.First.UTC().Format("2006-01-02 15:04:05"), inc.Last.UTC().Format("2006-01-02 15:04:05"), inc.Count)
	w("Evidence:")
	for _, e := range inc.Evidence {
		w("- %s", e.EN)
	}
	return b.String()
}

// Short returns a one-paragraph summary for chat (the webhook's text).
func (m *Message) Short() string {
	inc := &m.Incident
	return fmt.Sprintf("【重要】危険度%d %s %s（端末 %s, %d 件）受領確認: %s\nSecurity incident level %d %s: %s (terminal %s, %d events). Acknowledge: %s",
		inc.Severity, inc.ID, inc.RuleTitle, inc.Terminal, inc.Count, m.AckURL,
		inc.Severity, inc.ID, inc.RuleTitle, inc.Terminal, inc.Count, m.AckURL)
}
