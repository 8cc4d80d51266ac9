package spam

import (
	"strings"

	"github.com/jichitai/seccloud/mailrelay/internal/mailparse"
)

// Bulk is the advertising / bulk-mail analysis of a message: list
// headers, bulk precedence, the fingerprints of e-mail service providers
// and the subject markers that Japan's Act on Regulation of Transmission
// of Specified Electronic Mail (特定電子メール法) and its predecessor made
// senders of advertising put in the subject (未承諾広告※, 【広告】, 【PR】).
type Bulk struct {
	// Ad is true when the message is advertising or bulk mail: a subject
	// marker, or Score ≥ 2.
	Ad bool `json:"ad"`
	// Score is the sum of the marks' weights.
	Score float64 `json:"score"`
	// Marks name what was found ("list-unsubscribe", "esp:sendgrid",
	// "subject:【広告】", ...).
	Marks []string `json:"marks,omitempty"`
}

// BulkOf analyses a raw message.
func BulkOf(raw []byte) Bulk { return bulkOf(mailparse.Parse(raw, mailparse.Limits{})) }

// BulkParsed analyses a message already parsed by the relay.
func BulkParsed(m *mailparse.Message) Bulk { return bulkOf(m) }

// Subject markers of advertising (lower-cased, after NFKC-like folding of
// the brackets we look for).
var adMarkers = []string{"未承諾広告", "【広告】", "［広告］", "[広告]", "<広告>", "＜広告＞", "(広告)", "（広告）",
	"【pr】", "［pr］", "[pr]", "(pr)", "（pr）", "<pr>", "＜pr＞", "[ad]", "[advertisement]", "【ad】"}

// ESP fingerprints: a header name (or name prefix ending in '*') and the
// provider, or a Return-Path / DKIM domain suffix.
var espHeaders = []struct{ name, esp string }{
	{"X-SG-EID", "sendgrid"}, {"X-SG-ID", "sendgrid"}, {"X-Mailgun-*", "mailgun"}, {"X-MC-User", "mailchimp"},
	{"X-Mandrill-User", "mandrill"}, {"X-Campaign", "campaign"}, {"X-CampaignID", "campaign"}, {"X-Mailer-RecptId", "campaign"},
	{"X-SES-Outgoing", "amazonses"}, {"X-CSA-Complaints", "certified-sender"}, {"X-Marketo-*", "marketo"},
	{"X-SFMC-Stack", "salesforce-mc"}, {"X-Job", "exacttarget"}, {"X-Brevo-*", "brevo"}, {"X-Mailin-*", "sendinblue"},
	{"X-PM-Message-Id", "postmark"}, {"X-Cuenote-*", "cuenote"}, {"X-Blastengine-*", "blastengine"}, {"X-Hai-Mail-*", "haihai"},
	{"X-Acmailer-*", "acmailer"}, {"X-Mail-Publisher-*", "mailpublisher"}, {"Feedback-ID", "esp-feedback-id"},
}

var espDomains = []struct{ suffix, esp string }{
	{"sendgrid.net", "sendgrid"}, {"mailgun.org", "mailgun"}, {"mcsv.net", "mailchimp"}, {"rsgsv.net", "mailchimp"},
	{"mcdlv.net", "mailchimp"}, {"amazonses.com", "amazonses"}, {"exacttarget.com", "exacttarget"}, {"sparkpostmail.com", "sparkpost"},
	{"mktomail.com", "marketo"}, {"cmail19.com", "campaignmonitor"}, {"cmail20.com", "campaignmonitor"}, {"sendibm1.com", "brevo"},
	{"mailjet.com", "mailjet"}, {"hubspotemail.net", "hubspot"}, {"cuenote.jp", "cuenote"}, {"blastengine.jp", "blastengine"},
	{"hm-f.jp", "haihai"}, {"wiseflow.jp", "wiseflow"},
}

var espMailers = []struct{ sub, esp string }{
	{"mailchimp", "mailchimp"}, {"sendgrid", "sendgrid"}, {"cuenote", "cuenote"}, {"blastmail", "blastmail"},
	{"配配メール", "haihai"}, {"acmailer", "acmailer"}, {"benchmark", "benchmark"}, {"mailpublisher", "mailpublisher"},
	{"phpmailer", "phpmailer"}, {"mass mail", "mass-mailer"}, {"bulk", "bulk-mailer"},
}

func bulkOf(m *mailparse.Message) Bulk {
	var b Bulk
	mark := func(s string, w float64) {
		b.Marks = append(b.Marks, s)
		b.Score += w
	}
	h := m.Header
	subj := strings.ToLower(m.Subject)
	subj = strings.NewReplacer("ＰＲ", "pr", "ｐｒ", "pr", "ＡＤ", "ad").Replace(subj)
	marker := false
	for _, mk := range adMarkers {
		if strings.Contains(subj, mk) {
			mark("subject:"+mk, 3)
			marker = true
			break
		}
	}
	if h.Has("List-Unsubscribe") {
		mark("list-unsubscribe", 1.5)
	}
	if h.Has("List-Unsubscribe-Post") {
		mark("list-unsubscribe-post", 0.5)
	}
	if h.Has("List-Id") {
		mark("list-id", 0.5)
	}
	switch p := strings.ToLower(strings.TrimSpace(h.Get("Precedence"))); p {
	case "bulk", "junk", "list":
		mark("precedence:"+p, 1)
	}
	if strings.EqualFold(h.Get("Auto-Submitted"), "auto-generated") {
		mark("auto-submitted", 0.5)
	}
	esps := map[string]bool{}
	for _, f := range h {
		for _, e := range espHeaders {
			if matchName(f.Name, e.name) && !esps[e.esp] {
				esps[e.esp] = true
				mark("esp:"+e.esp, 1)
			}
		}
	}
	for _, d := range []string{addrDomain(h.Get("Return-Path")), dkimDomain(h)} {
		for _, e := range espDomains {
			if d != "" && (d == e.suffix || strings.HasSuffix(d, "."+e.suffix)) && !esps[e.esp] {
				esps[e.esp] = true
				mark("esp:"+e.esp, 1)
			}
		}
	}
	mailer := strings.ToLower(h.Get("X-Mailer"))
	for _, e := range espMailers {
		if mailer != "" && strings.Contains(mailer, e.sub) && !esps[e.esp] {
			esps[e.esp] = true
			mark("esp:"+e.esp, 1)
		}
	}
	// The act requires an opt-out notice; its usual wording is a mark too.
	text := m.Text()
	if len(text) > 64<<10 {
		text = text[len(text)-64<<10:]
	}
	for _, p := range []string{"配信停止", "配信解除", "メール配信の停止", "unsubscribe", "opt-out", "opt out"} {
		if strings.Contains(strings.ToLower(text), p) {
			mark("optout-text", 0.5)
			break
		}
	}
	b.Ad = marker || b.Score >= 2
	return b
}

func matchName(name, pat string) bool {
	if p, ok := strings.CutSuffix(pat, "*"); ok {
		return len(name) >= len(p) && strings.EqualFold(name[:len(p)], p)
	}
	return strings.EqualFold(name, pat)
}

func dkimDomain(h mailparse.Header) string {
	sig := h.Get("DKIM-Signature")
	for _, kv := range strings.Split(sig, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && strings.TrimSpace(k) == "d" {
			return strings.ToLower(strings.TrimSpace(v))
		}
	}
	return ""
}
