package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect/notify"
)

// Mailer sends a plain-text mail: the console tells the other side of a
// request about each update with it. Implementations must be safe for
// concurrent use.
type Mailer interface {
	Mail(ctx context.Context, to []string, subject, text string) error
}

// SMTPMailer sends mail through a smarthost, like detect/notify's Email
// (the appliance gives both the same notify.smtp, notify.from and
// notify.require_tls). It uses STARTTLS whenever the smarthost offers it.
// Set Addr and From. Safe for concurrent use.
type SMTPMailer struct {
	// Addr is the smarthost, host:port.
	Addr string
	// From is the envelope and header sender.
	From string
	// FromName is the display name of From; "" means none.
	FromName string
	// Hello is the EHLO name; "" means "localhost".
	Hello string
	// TLS configures STARTTLS; nil means ServerName from Addr, system
	// roots, TLS 1.2 at least.
	TLS *tls.Config
	// RequireTLS refuses to send without STARTTLS.
	RequireTLS bool
}

// Mail implements Mailer: one SMTP transaction with every recipient.
func (m *SMTPMailer) Mail(ctx context.Context, to []string, subject, text string) error {
	if m.Addr == "" || m.From == "" {
		return errors.New("console: mail: Addr and From are required")
	}
	if len(to) == 0 {
		return errors.New("console: mail: no recipient")
	}
	for _, a := range to {
		if _, err := mail.ParseAddress(a); err != nil || strings.ContainsAny(a, "\r\n<>") {
			return fmt.Errorf("console: mail: bad recipient %q", a)
		}
	}
	e := notify.Email{Addr: m.Addr, From: m.From, Hello: m.Hello, TLS: m.TLS, RequireTLS: m.RequireTLS}
	if err := e.Transmit(ctx, to, m.compose(to, subject, text)); err != nil {
		return fmt.Errorf("console: mail: %w", err)
	}
	return nil
}

// compose builds the message: UTF-8 text in base64, the subject encoded
// per RFC 2047 (control characters removed first, so a hostile subject
// cannot add header fields).
func (m *SMTPMailer) compose(to []string, subject, text string) []byte {
	var b bytes.Buffer
	from := m.From
	if m.FromName != "" {
		from = mime.BEncoding.Encode("UTF-8", m.FromName) + " <" + m.From + ">"
	}
	subject = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, subject)
	var id [12]byte
	_, _ = rand.Read(id[:])
	domain := m.From[strings.LastIndexByte(m.From, '@')+1:]
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", from)
	hdr("To", "<"+strings.Join(to, ">, <")+">")
	hdr("Subject", mime.BEncoding.Encode("UTF-8", subject))
	hdr("Date", time.Now().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+domain+">")
	hdr("Auto-Submitted", "auto-generated")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=UTF-8")
	hdr("Content-Transfer-Encoding", "base64")
	b.WriteString("\r\n")
	body := base64.StdEncoding.EncodeToString([]byte(text))
	for len(body) > 76 {
		b.WriteString(body[:76] + "\r\n")
		body = body[76:]
	}
	b.WriteString(body + "\r\n")
	return b.Bytes()
}
