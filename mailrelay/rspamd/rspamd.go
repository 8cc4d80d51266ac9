// Package rspamd scores mail with an rspamd daemon (its HTTP protocol,
// POST /checkv2), as an alternative to the relay's built-in spam scorer.
//
// A Client implements mailrelay.SpamScorer (set it as
// mailrelay.ContentConfig.Scorer: rspamd's score is then compared with
// each tenant's spam levels, and tagged spam gets the usual subject tag)
// and mailrelay.Filter (a plain verdict from rspamd's action, for
// integrators who do not use the content checks).
//
// Each tenant's share of a message is sent with that tenant's
// Settings-ID (Config.Settings), so rspamd can apply per-tenant settings
// (thresholds, disabled symbols) configured in its settings module.
//
//	rs, err := rspamd.New(rspamd.Config{URL: "http://127.0.0.1:11333"})
//	cfg.Content.Scorer = rs // scanner down: 451 (ContentConfig.ScorerDown)
package rspamd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/mailrelay"
)

// Config configures a Client. URL is required.
type Config struct {
	// URL is the base URL of rspamd's normal worker or proxy, e.g.
	// "http://127.0.0.1:11333". Required.
	URL string
	// Password, when set, is sent in the Password header.
	Password string
	// Timeout bounds one scan (connect, upload, answer); 0 means 15 s.
	// A timeout is an error: the relay then applies
	// ContentConfig.ScorerDown (451 by default).
	Timeout time.Duration
	// Settings maps a tenant id to the Settings-ID sent with that
	// tenant's mail. A tenant not in the map gets DefaultSettings; when
	// both are empty no Settings-ID is sent (rspamd's defaults apply).
	// Set TenantSettings to send the tenant id itself instead.
	Settings        map[string]string
	DefaultSettings string
	// TenantSettings sends the tenant id as Settings-ID for tenants not
	// in Settings (define settings with `id = "<tenant id>"` in rspamd).
	TenantSettings bool
	// UseActions makes ScoreMessage return rspamd's own action (under the
	// thresholds of the tenant's rspamd settings) instead of leaving the
	// decision to the tenant's spam levels: "reject" → reject, "add
	// header" → quarantine, "rewrite subject" → tag, "greylist" and "no
	// action" → allow. Default false: the score is compared with the
	// tenant's levels. "soft reject" always defers (451).
	UseActions bool
	// Hostname is sent as MTA-Name; empty sends none.
	Hostname string
	// HTTPClient sends the requests; nil means a client of its own
	// (keep-alive, at most 64 idle connections).
	HTTPClient *http.Client
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
}

// Client talks to rspamd. It is safe for concurrent use.
type Client struct {
	cfg      Config
	endpoint string
	hc       *http.Client
}

// New validates cfg and returns a Client. It does not contact rspamd.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("rspamd: Config.URL is empty")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("rspamd: Config.URL %q is not an http(s) URL", cfg.URL)
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("rspamd: Config.Timeout is negative")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 64, 64
		tr.Proxy = nil
		hc = &http.Client{Transport: tr}
	}
	return &Client{cfg: cfg, endpoint: strings.TrimRight(cfg.URL, "/") + "/checkv2", hc: hc}, nil
}

// Request is one message to scan and its SMTP context.
type Request struct {
	// Data is the whole message (header and body).
	Data []byte
	// IP is the SMTP client's address; Helo its HELO/EHLO name.
	IP   netip.Addr
	Helo string
	// From is the envelope sender ("" for the null sender); Rcpt the
	// envelope recipients.
	From string
	Rcpt []string
	// QueueID is sent as Queue-Id and Log-Tag.
	QueueID string
	// SettingsID selects an rspamd settings entry; empty sends none.
	SettingsID string
}

// Symbol is one rspamd rule that matched.
type Symbol struct {
	Name    string   `json:"name"`
	Score   float64  `json:"score"`
	Options []string `json:"options,omitempty"`
}

// Result is rspamd's answer.
type Result struct {
	// Score is the message's score; RequiredScore the reject threshold
	// under the settings used.
	Score         float64
	RequiredScore float64
	// Action is rspamd's action: "no action", "greylist", "add header",
	// "rewrite subject", "soft reject" or "reject".
	Action string
	// Skipped is true when rspamd stopped before the full scan: a forced
	// result (pre-result, e.g. GTUBE → reject) or settings that skip
	// checks. Action is then the forced one.
	Skipped bool
	// Symbols are the rules that matched, highest |score| first.
	Symbols []Symbol
	// Subject is the rewritten subject for "rewrite subject".
	Subject string
	// Messages are rspamd's messages (e.g. "smtp_message" for rejects).
	Messages map[string]string
}

type wire struct {
	IsSkipped     bool              `json:"is_skipped"`
	Score         float64           `json:"score"`
	RequiredScore float64           `json:"required_score"`
	Action        string            `json:"action"`
	Subject       string            `json:"subject"`
	Symbols       map[string]Symbol `json:"symbols"`
	Messages      json.RawMessage   `json:"messages"`
	Error         string            `json:"error"`
}

// headerSafe drops control characters so a value is one header line.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// Scan sends r to rspamd and returns its answer. An error means no
// answer: rspamd down, timed out, or an HTTP or protocol error.
func (c *Client) Scan(ctx context.Context, r Request) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(r.Data))
	if err != nil {
		return Result{}, fmt.Errorf("rspamd: %w", err)
	}
	h := req.Header
	if r.IP.IsValid() {
		h.Set("IP", r.IP.Unmap().String())
	}
	if r.Helo != "" {
		h.Set("Helo", headerSafe(r.Helo))
	}
	// rspamd reads an empty From as the null sender.
	h.Set("From", headerSafe(r.From))
	for _, rc := range r.Rcpt {
		h.Add("Rcpt", headerSafe(rc))
	}
	if r.QueueID != "" {
		h.Set("Queue-Id", headerSafe(r.QueueID))
		h.Set("Log-Tag", headerSafe(r.QueueID))
	}
	if r.SettingsID != "" {
		h.Set("Settings-ID", headerSafe(r.SettingsID))
	}
	if c.cfg.Hostname != "" {
		h.Set("MTA-Name", headerSafe(c.cfg.Hostname))
	}
	if c.cfg.Password != "" {
		h.Set("Password", c.cfg.Password)
	}
	h.Set("Content-Type", "application/octet-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("rspamd: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return Result{}, fmt.Errorf("rspamd: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Result{}, fmt.Errorf("rspamd: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	return parseResult(body)
}

// parseResult decodes a /checkv2 answer.
func parseResult(body []byte) (Result, error) {
	var w wire
	if err := json.Unmarshal(body, &w); err != nil {
		return Result{}, fmt.Errorf("rspamd: bad answer: %w", err)
	}
	if w.Error != "" {
		return Result{}, fmt.Errorf("rspamd: %s", w.Error)
	}
	if w.Action == "" && !w.IsSkipped {
		return Result{}, errors.New("rspamd: answer without an action")
	}
	res := Result{Score: w.Score, RequiredScore: w.RequiredScore, Action: w.Action, Skipped: w.IsSkipped, Subject: w.Subject}
	for name, s := range w.Symbols {
		if s.Name == "" {
			s.Name = name
		}
		res.Symbols = append(res.Symbols, s)
	}
	sort.Slice(res.Symbols, func(i, j int) bool {
		a, b := res.Symbols[i], res.Symbols[j]
		if abs(a.Score) != abs(b.Score) {
			return abs(a.Score) > abs(b.Score)
		}
		return a.Name < b.Name
	})
	// "messages" is an object of strings (older versions: a list).
	if len(w.Messages) > 0 && w.Messages[0] == '{' {
		m := map[string]any{}
		if json.Unmarshal(w.Messages, &m) == nil {
			for k, v := range m {
				if s, ok := v.(string); ok {
					if res.Messages == nil {
						res.Messages = map[string]string{}
					}
					res.Messages[k] = s
				}
			}
		}
	}
	return res, nil
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// SettingsID returns the Settings-ID sent for tenant.
func (c *Client) SettingsID(tenant string) string {
	if id, ok := c.cfg.Settings[tenant]; ok {
		return id
	}
	if c.cfg.TenantSettings && tenant != "" {
		return tenant
	}
	return c.cfg.DefaultSettings
}

func (c *Client) scanMessage(ctx context.Context, m *mailrelay.Message) (Result, error) {
	return c.Scan(ctx, Request{Data: m.Data, IP: m.Client.Addr(), Helo: m.Helo, From: m.From, Rcpt: m.To,
		QueueID: m.ID, SettingsID: c.SettingsID(m.Tenant)})
}

// ScoreMessage implements mailrelay.SpamScorer: rspamd's score (and, with
// UseActions, its action) for one tenant's share of a message.
func (c *Client) ScoreMessage(ctx context.Context, m *mailrelay.Message) (mailrelay.SpamScore, error) {
	r, err := c.scanMessage(ctx, m)
	if err != nil {
		return mailrelay.SpamScore{}, err
	}
	sc := mailrelay.SpamScore{Score: r.Score, Scorer: "rspamd"}
	for _, s := range r.Symbols {
		if s.Score != 0 {
			sc.Rules = append(sc.Rules, s.Name)
		}
	}
	switch {
	case r.Action == "soft reject":
		sc.Defer = "soft reject"
		if msg := r.Messages["smtp_message"]; msg != "" {
			sc.Defer += ": " + msg
		}
	case c.cfg.UseActions || r.Skipped:
		// A skipped scan carries a forced result (a pre-result such as
		// GTUBE's reject, or settings that skip the checks): its action
		// is the answer, not a partial score.
		sc.Action = ActionPolicy(r.Action)
	}
	return sc, nil
}

// ActionPolicy maps an rspamd action to the relay's policy action:
// "reject" → reject, "add header" → quarantine, "rewrite subject" → tag,
// anything else → allow.
func ActionPolicy(action string) mailrelay.PolicyAction {
	switch action {
	case "reject":
		return mailrelay.PolicyReject
	case "add header":
		return mailrelay.PolicyQuarantine
	case "rewrite subject":
		return mailrelay.PolicyTag
	}
	return mailrelay.PolicyAllow
}

// Check implements mailrelay.Filter with rspamd's action: "reject" →
// block (550), "soft reject" → defer (451), "add header" and "rewrite
// subject" → quarantine, otherwise no verdict. An error (rspamd down)
// defers the message.
func (c *Client) Check(ctx context.Context, m *mailrelay.Message) (detect.Verdict, error) {
	r, err := c.scanMessage(ctx, m)
	if err != nil {
		return detect.Verdict{}, err
	}
	v := detect.Verdict{Rule: "mail-rspamd", RuleName: "rspamd", Score: int(r.Score + 0.5),
		Reason: fmt.Sprintf("rspamd %s, score %.1f", r.Action, r.Score)}
	switch {
	case r.Action == "soft reject":
		v.Action = detect.ActionTempFail
	default:
		switch ActionPolicy(r.Action) {
		case mailrelay.PolicyReject:
			v.Action = detect.ActionBlock
		case mailrelay.PolicyQuarantine, mailrelay.PolicyTag:
			v.Action = detect.ActionQuarantine
		default:
			return detect.Verdict{}, nil
		}
	}
	return v, nil
}

var (
	_ mailrelay.SpamScorer = (*Client)(nil)
	_ mailrelay.Filter     = (*Client)(nil)
)
