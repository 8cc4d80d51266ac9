package mailrelay

import (
	"bytes"
	"strings"
	"time"
)

// bounce queues a delivery status notification (RFC 3464) to the sender
// of m for the failed recipients. It is never called for the null sender,
// so a bounce never bounces.
func (d *deliverer) bounce(m *qmsg, data []byte, failed []failure) {
	d.notify(m, data, failed, false)
}

// notify queues a DSN: "failed" for bounces, "delayed" for delay notices.
func (d *deliverer) notify(m *qmsg, data []byte, failed []failure, delayed bool) {
	s := d.s
	cfg := &s.cfg
	now := cfg.Now()
	id := s.newID()
	boundary := id + "/" + cfg.Hostname
	var b bytes.Buffer
	w := func(parts ...string) {
		for _, p := range parts {
			b.WriteString(p)
		}
		b.WriteString("\r\n")
	}
	w("From: Mail Delivery System <MAILER-DAEMON@", cfg.Hostname, ">")
	w("To: <", m.env.From, ">")
	subject := "Undelivered Mail Returned to Sender"
	action := "failed"
	if delayed {
		subject, action = "Delayed Mail (still being retried)", "delayed"
	}
	w("Subject: ", subject)
	w("Date: ", now.Format(time.RFC1123Z))
	w("Message-ID: <", id, "@", cfg.Hostname, ">")
	w("Auto-Submitted: auto-replied")
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status; boundary=\"", boundary, "\"")
	w("")
	w("--", boundary)
	w("Content-Type: text/plain; charset=us-ascii")
	w("")
	w("This is the mail relay at ", cfg.Hostname, ".")
	w("")
	if delayed {
		w("Your message could not be delivered yet to one or more recipients.")
		w("It is still being retried; you do not need to send it again.")
	} else {
		w("Your message could not be delivered to one or more recipients.")
	}
	w("")
	for _, f := range failed {
		w("<", f.rcpt, ">: ", f.reply.String())
	}
	w("")
	w("--", boundary)
	w("Content-Type: message/delivery-status")
	w("")
	w("Reporting-MTA: dns; ", cfg.Hostname)
	w("X-Queue-ID: ", m.id)
	w("Arrival-Date: ", time.Unix(0, m.env.Created).Format(time.RFC1123Z))
	for _, f := range failed {
		w("")
		w("Final-Recipient: rfc822; ", f.rcpt)
		w("Action: ", action)
		w("Status: ", dsnStatus(f.reply))
		w("Diagnostic-Code: smtp; ", f.reply.String())
	}
	w("")
	w("--", boundary)
	w("Content-Type: text/rfc822-headers")
	w("")
	hdr := data
	if i := bytes.Index(hdr, []byte("\r\n\r\n")); i >= 0 {
		hdr = hdr[:i+2]
	}
	if len(hdr) > 64<<10 {
		hdr = hdr[:64<<10]
	}
	b.Write(hdr)
	if !bytes.HasSuffix(hdr, []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	w("")
	w("--", boundary, "--")
	env := &envelope{From: "", To: []string{m.env.From}, Tenant: m.env.Tenant, Dir: Internal, Created: now.UnixNano(), Subject: subject}
	if _, ok := s.mailTenant(domainOf(m.env.From)); !ok {
		env.Dir = Outbound
	}
	msg := b.Bytes()
	ref, err := s.spool.Put(id, 0, env.encode(), msg, nil)
	if err != nil {
		cfg.Logger.Error("mailrelay: bounce not queued", "id", m.id, "err", err)
		return
	}
	d.enqueue(&qmsg{id: id, env: env, ref: ref, data: msg})
}

// dsnStatus returns the enhanced status code of a reply, or a generic one.
func dsnStatus(r reply) string {
	if f, _, _ := strings.Cut(r.text, " "); len(f) >= 5 && (f[0] == '4' || f[0] == '5') && f[1] == '.' {
		return f
	}
	if r.temp() {
		return "4.0.0"
	}
	return "5.0.0"
}
