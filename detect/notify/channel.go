package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/smtp"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect/judge"
)

// The channels of a ladder step.
const (
	ChannelEmail   = "email"
	ChannelWebhook = "webhook"
)

// Sender delivers a message on one channel. Send returns nil only when the
// message was accepted by the next hop (SMTP smarthost 250 after DATA,
// webhook 2xx). Implementations must be safe for concurrent use.
type Sender interface {
	Send(ctx context.Context, m *Message) error
}

// SenderFunc adapts a function to a Sender.
type SenderFunc func(ctx context.Context, m *Message) error

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, m *Message) error { return f(ctx, m) }

// Email sends notifications by SMTP through a smarthost. It uses STARTTLS
// whenever the smarthost offers it. The zero value is not usable: set Addr
// and From. Safe for concurrent use.
type Email struct {
	// Addr is the smarthost, host:port.
	Addr string
	// From is the envelope and header sender address.
	From string
	// FromName is the display name of From (e.g. "セキュリティクラウド SOC").
	FromName string
	// Hello is the EHLO name; "" means "localhost".
	Hello string
	// TLS configures STARTTLS; nil means ServerName taken from Addr and the
	// system roots.
	TLS *tls.Config
	// RequireTLS refuses to send when the smarthost does not offer
	// STARTTLS.
	RequireTLS bool
	// Auth authenticates after STARTTLS when set (net/smtp refuses PLAIN
	// auth over an unencrypted connection to a non-local host).
	Auth smtp.Auth
}

// Send implements Sender.
func (e *Email) Send(ctx context.Context, m *Message) error {
	return e.Transmit(ctx, []string{m.To}, e.compose(m))
}

// Transmit sends msg, a whole RFC 5322 message, to rcpts in one SMTP
// transaction through the smarthost: EHLO, STARTTLS when offered (required
// with RequireTLS), AUTH when set, MAIL FROM e.From, one RCPT per
// recipient, DATA. ctx bounds the whole exchange. Other senders of
// plain mail (the console's request notices) use it with a message of
// their own.
func (e *Email) Transmit(ctx context.Context, rcpts []string, msg []byte) error {
	if e.Addr == "" || e.From == "" {
		return errors.New("notify: email: Addr and From are required")
	}
	host, _, err := net.SplitHostPort(e.Addr)
	if err != nil {
		return fmt.Errorf("notify: email: %w", err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.Addr)
	if err != nil {
		return fmt.Errorf("notify: email: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("notify: email: greeting: %w", err)
	}
	defer c.Close()
	hello := e.Hello
	if hello == "" {
		hello = "localhost"
	}
	if err := c.Hello(hello); err != nil {
		return fmt.Errorf("notify: email: EHLO: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := e.TLS
		if cfg == nil {
			cfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("notify: email: STARTTLS: %w", err)
		}
	} else if e.RequireTLS {
		return errors.New("notify: email: smarthost does not offer STARTTLS")
	}
	if e.Auth != nil {
		if err := c.Auth(e.Auth); err != nil {
			return fmt.Errorf("notify: email: AUTH: %w", err)
		}
	}
	if err := c.Mail(e.From); err != nil {
		return fmt.Errorf("notify: email: MAIL FROM: %w", err)
	}
	for _, to := range rcpts {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("notify: email: RCPT TO <%s>: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("notify: email: DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("notify: email: writing message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("notify: email: end of data: %w", err)
	}
	_ = c.Quit()
	return nil
}

// compose builds the RFC 5322 message: UTF-8 text, base64 body, the subject
// encoded per RFC 2047.
func (e *Email) compose(m *Message) []byte {
	var b bytes.Buffer
	from := e.From
	if e.FromName != "" {
		from = mime.BEncoding.Encode("UTF-8", e.FromName) + " <" + e.From + ">"
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	domain := e.From[strings.LastIndexByte(e.From, '@')+1:]
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", from)
	hdr("To", "<"+m.To+">")
	hdr("Subject", mime.BEncoding.Encode("UTF-8", m.Subject()))
	hdr("Date", time.Now().In(judge.JST).Format(time.RFC1123Z))
	hdr("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+domain+">")
	hdr("X-Seccloud-Incident", m.Incident.ID)
	hdr("Auto-Submitted", "auto-generated")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=UTF-8")
	hdr("Content-Transfer-Encoding", "base64")
	b.WriteString("\r\n")
	body := base64.StdEncoding.EncodeToString([]byte(m.Text()))
	for len(body) > 76 {
		b.WriteString(body[:76] + "\r\n")
		body = body[76:]
	}
	b.WriteString(body + "\r\n")
	return b.Bytes()
}

// Webhook posts notifications as JSON to the contact's webhook URL. The
// payload's "text" field makes it a Slack (and Mattermost, Rocket.Chat,
// Teams workflow) incoming-webhook message; the other fields carry the
// incident for programs. Safe for concurrent use.
type Webhook struct {
	// Client is the HTTP client; nil means a client without redirects and
	// with a 10 s timeout.
	Client *http.Client
}

// WebhookPayload is the JSON body a webhook receives.
type WebhookPayload struct {
	Text     string          `json:"text"`
	AckURL   string          `json:"ack_url"`
	Incident WebhookIncident `json:"incident"`
}

// WebhookIncident is the incident part of a WebhookPayload.
type WebhookIncident struct {
	ID       string           `json:"id"`
	Tenant   string           `json:"tenant"`
	Severity int              `json:"severity"`
	Rule     string           `json:"rule"`
	Title    string           `json:"title"`
	Terminal string           `json:"terminal,omitempty"`
	Host     string           `json:"host,omitempty"`
	Count    int              `json:"count"`
	First    time.Time        `json:"first"`
	Last     time.Time        `json:"last"`
	Evidence []judge.Evidence `json:"evidence"`
}

var defaultClient = &http.Client{Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Send implements Sender.
func (w *Webhook) Send(ctx context.Context, m *Message) error {
	inc := &m.Incident
	body, err := json.Marshal(WebhookPayload{Text: m.Short(), AckURL: m.AckURL, Incident: WebhookIncident{
		ID: inc.ID, Tenant: inc.Tenant, Severity: int(inc.Severity), Rule: inc.Rule, Title: inc.RuleTitle,
		Terminal: inc.Terminal, Host: inc.Host, Count: inc.Count, First: inc.First, Last: inc.Last, Evidence: inc.Evidence}})
	if err != nil {
		return fmt.Errorf("notify: webhook: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.To, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("notify: webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "seccloud-notify")
	c := w.Client
	if c == nil {
		c = defaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("notify: webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("notify: webhook: %s answered %s", req.URL.Host, resp.Status)
	}
	return nil
}
