package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
)

// Defaults of [Config].
const (
	DefaultTokenTTL    = 24 * time.Hour
	DefaultRetryEvery  = time.Minute
	DefaultSendTimeout = 30 * time.Second
	DefaultTick        = 2 * time.Second
	// MinKeyLen is the shortest accepted HMAC key.
	MinKeyLen = 32
)

// Config configures a [Notifier].
type Config struct {
	// Incidents is the incident manager whose incidents are notified and
	// whose timelines record every attempt, failure and acknowledgement.
	// Required.
	Incidents *incident.Manager
	// Key signs acknowledgement tokens (HMAC-SHA256). Required, at least
	// MinKeyLen (32) bytes; keep it secret and stable across restarts, or
	// links already sent stop working.
	Key []byte
	// AckURL is the public URL where Handler is mounted, e.g.
	// "https://soc.example.jp/ack". Required. Links are AckURL?t=TOKEN.
	AckURL string
	// Email sends email steps; nil means email steps fail (and are
	// recorded as failures, then escalated).
	Email Sender
	// Webhook sends webhook steps; nil means &Webhook{}.
	Webhook Sender
	// MinSeverity is the lowest severity notified with the ladder. Zero
	// means detect.SeveritySucceeded (3): serious incidents.
	MinSeverity detect.Severity
	// Deadline is how long after the judgement an incident must be
	// acknowledged; past it, a deadline_missed entry is recorded once and
	// OnOverdue is called. Zero means DefaultDeadline (15 min).
	Deadline time.Duration
	// RetryEvery is the wait before a failed step is tried again (the
	// ladder goes on escalating meanwhile). Zero means 1 min.
	RetryEvery time.Duration
	// TokenTTL is how long an acknowledgement link works. Zero means 24 h.
	TokenTTL time.Duration
	// SendTimeout bounds one delivery. Zero means 30 s.
	SendTimeout time.Duration
	// Tick is how often Run looks for due work besides Wake. Zero means 2 s.
	Tick time.Duration
	// From is the SOC's name in message texts; "" means
	// "自治体情報セキュリティクラウド SOC".
	From string
	// TenantName gives a tenant's display name; nil means the id.
	TenantName func(id string) string
	// OnOverdue is called (from the notifier goroutine) when an incident
	// passes its deadline unacknowledged, e.g. to page the SOC to phone
	// the contacts. Nil means only the timeline entry and a log record.
	OnOverdue func(incident.Incident)
	// Now gives the time; nil means time.Now.
	Now func() time.Time
	// Logger receives delivery failures; nil discards.
	Logger *slog.Logger
}

// Stats are the notifier's counters.
type Stats struct {
	Sent, Failed, Acks, Refused uint64
}

// Notifier reaches the contacts of serious incidents along the incident's
// escalation ladder, until one of them confirms receipt through the signed
// link (or the SOC records a phone call). Its state is the incidents'
// timelines, so a restart resumes where it stopped. Safe for concurrent use.
type Notifier struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}
	base *url.URL

	stepMu sync.Mutex // one Step at a time

	sent, failed, acks, refused atomic.Uint64
}

var _ incident.Waker = (*Notifier)(nil)

// New validates cfg and returns a Notifier. Call Run to drive it, or Step
// yourself.
func New(cfg Config) (*Notifier, error) {
	if cfg.Incidents == nil {
		return nil, errors.New("notify: Config.Incidents is required")
	}
	if len(cfg.Key) < MinKeyLen {
		return nil, fmt.Errorf("notify: Config.Key must be at least %d bytes", MinKeyLen)
	}
	u, err := url.Parse(cfg.AckURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("notify: Config.AckURL %q is not an http(s) URL", cfg.AckURL)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Deadline, DefaultDeadline)
	def(&cfg.RetryEvery, DefaultRetryEvery)
	def(&cfg.TokenTTL, DefaultTokenTTL)
	def(&cfg.SendTimeout, DefaultSendTimeout)
	def(&cfg.Tick, DefaultTick)
	if cfg.MinSeverity == 0 {
		cfg.MinSeverity = detect.SeveritySucceeded
	}
	if cfg.Webhook == nil {
		cfg.Webhook = &Webhook{}
	}
	if cfg.From == "" {
		cfg.From = "自治体情報セキュリティクラウド SOC"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{cfg: cfg, log: log, wake: make(chan struct{}, 1), base: u}, nil
}

// Wake asks Run to look for due work now (an incident opened or was raised).
// It never blocks.
func (n *Notifier) Wake() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Stats returns the counters.
func (n *Notifier) Stats() Stats {
	return Stats{Sent: n.sent.Load(), Failed: n.failed.Load(), Acks: n.acks.Load(), Refused: n.refused.Load()}
}

// Run calls Step on every Wake and every Tick until ctx ends.
func (n *Notifier) Run(ctx context.Context) error {
	t := time.NewTicker(n.cfg.Tick)
	defer t.Stop()
	for {
		n.Step(ctx, n.cfg.Now())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.wake:
		case <-t.C:
		}
	}
}

// Step does the work due at now: sends the ladder steps that are due and
// not delivered (retrying failed ones every RetryEvery), and records missed
// deadlines. Deliveries of one Step run concurrently; Step returns when they
// are done. Tests call Step with an injected time.
func (n *Notifier) Step(ctx context.Context, now time.Time) {
	n.stepMu.Lock()
	defer n.stepMu.Unlock()
	var wg sync.WaitGroup
	for _, inc := range n.cfg.Incidents.List(incident.Filter{Active: true, MinSeverity: n.cfg.MinSeverity}) {
		if inc.State == incident.StateAcknowledged {
			continue
		}
		start := inc.JudgedAt
		delivered := make(map[int]bool)
		lastTry := make(map[int]time.Time)
		missed, noContacts := false, false
		for _, e := range inc.Timeline {
			if e.Time.Before(start) {
				continue
			}
			switch e.Kind {
			case incident.KindNotify:
				delivered[e.Step] = true
			case incident.KindNotifyFailed:
				if e.Step < 0 {
					noContacts = true
				}
				if e.Time.After(lastTry[e.Step]) {
					lastTry[e.Step] = e.Time
				}
			case incident.KindDeadlineMissed:
				missed = true
			}
		}
		if len(inc.Ladder) == 0 && !noContacts {
			n.record(inc.ID, incident.Entry{Time: now, Kind: incident.KindNotifyFailed, Step: -1,
				Text: "テナントに通知先（メール・Webhook）がありません。SOCが電話で連絡してください / the tenant has no email or webhook contact: the SOC must phone"})
		}
		for i, s := range inc.Ladder {
			if delivered[i] || now.Before(start.Add(s.After)) {
				continue
			}
			if t, ok := lastTry[i]; ok && now.Sub(t) < n.cfg.RetryEvery {
				continue
			}
			wg.Add(1)
			go func(inc incident.Incident, i int, s incident.Step) {
				defer wg.Done()
				n.send(ctx, &inc, i, s, now)
			}(inc, i, s)
		}
		if !missed && !now.Before(start.Add(n.cfg.Deadline)) {
			n.record(inc.ID, incident.Entry{Time: now, Kind: incident.KindDeadlineMissed,
				Text: fmt.Sprintf("判定から %v 以内に受領確認がありません / not acknowledged within %v of the judgement", n.cfg.Deadline, n.cfg.Deadline)})
			n.log.Warn("notify: incident not acknowledged within the deadline", "incident", inc.ID, "tenant", inc.Tenant)
			if n.cfg.OnOverdue != nil {
				n.cfg.OnOverdue(inc)
			}
		}
	}
	wg.Wait()
}

func (n *Notifier) send(ctx context.Context, inc *incident.Incident, i int, s incident.Step, now time.Time) {
	tok, _ := signToken(n.cfg.Key, inc.ID, i, now.Add(n.cfg.TokenTTL))
	m := &Message{Incident: *inc, Step: i, Contact: s.Contact, Channel: s.Channel, To: s.Address,
		AckURL: n.AckLink(tok), From: n.cfg.From}
	if n.cfg.TenantName != nil {
		m.TenantName = n.cfg.TenantName(inc.Tenant)
	}
	var snd Sender
	switch s.Channel {
	case ChannelEmail:
		snd = n.cfg.Email
	case ChannelWebhook:
		snd = n.cfg.Webhook
	}
	var err error
	if snd == nil {
		err = fmt.Errorf("notify: no sender for channel %q", s.Channel)
	} else {
		sctx, cancel := context.WithTimeout(ctx, n.cfg.SendTimeout)
		err = snd.Send(sctx, m)
		cancel()
	}
	e := incident.Entry{Kind: incident.KindNotify, Step: i, Channel: s.Channel, To: s.Address, By: s.Contact}
	if err != nil {
		n.failed.Add(1)
		e.Kind, e.Text = incident.KindNotifyFailed, err.Error()
		n.log.Warn("notify: delivery failed", "incident", inc.ID, "step", i, "channel", s.Channel, "to", s.Address, "err", err)
	} else {
		n.sent.Add(1)
	}
	// The attempt is stamped with the time it finished, so the retry clock
	// starts after a slow failure, not before it.
	e.Time = n.cfg.Now()
	if e.Time.Before(now) {
		e.Time = now
	}
	n.record(inc.ID, e)
}

func (n *Notifier) record(id string, e incident.Entry) {
	if err := n.cfg.Incidents.Record(id, e); err != nil {
		n.log.Error("notify: recording in the timeline failed", "incident", id, "kind", e.Kind, "err", err)
	}
}

// AckLink returns the acknowledgement URL for a token.
func (n *Notifier) AckLink(tok string) string {
	u := *n.base
	q := u.Query()
	q.Set("t", tok)
	u.RawQuery = q.Encode()
	return u.String()
}

// AckPhone records that the SOC reached a contact by phone and the contact
// confirmed receipt: an acknowledgement over channel "phone".
func (n *Notifier) AckPhone(id, contact, note string) error {
	if err := n.cfg.Incidents.Ack(id, contact, "phone", "", note); err != nil {
		return err
	}
	n.acks.Add(1)
	return nil
}

// check validates a token: MAC, expiry, incident, single use. Refusals of
// tokens that name a known incident are recorded on it.
func (n *Notifier) check(tok string) (tokenClaims, incident.Incident, error) {
	now := n.cfg.Now()
	c, err := parseToken(n.cfg.Key, tok, now)
	if errors.Is(err, ErrTokenForged) {
		n.refused.Add(1)
		n.log.Warn("notify: forged acknowledgement token refused")
		return c, incident.Incident{}, err
	}
	inc, ok := n.cfg.Incidents.Get(c.Incident)
	if !ok {
		n.refused.Add(1)
		return c, inc, ErrTokenForged
	}
	if err == nil && n.cfg.Incidents.TokenUsed(c.Incident, c.Nonce) {
		err = ErrTokenUsed
	}
	if err == nil && inc.State.Closed() {
		err = fmt.Errorf("notify: incident %s is already %s", inc.ID, inc.State)
	}
	if err != nil {
		n.refused.Add(1)
		n.record(c.Incident, incident.Entry{Time: now, Kind: incident.KindAckRefused, Step: c.Step, Token: c.Nonce, Text: err.Error()})
	}
	return c, inc, err
}

// ack acknowledges with a checked token.
func (n *Notifier) ack(tok, remote string) (incident.Incident, error) {
	c, inc, err := n.check(tok)
	if err != nil {
		return inc, err
	}
	by := "step " + strconv.Itoa(c.Step)
	if c.Step >= 0 && c.Step < len(inc.Ladder) {
		s := inc.Ladder[c.Step]
		by = s.Contact + " <" + s.Address + ">"
	}
	if err := n.cfg.Incidents.Ack(c.Incident, by, "link", c.Nonce, "from "+remote); err != nil {
		return inc, err
	}
	n.acks.Add(1)
	inc, _ = n.cfg.Incidents.Get(c.Incident)
	return inc, nil
}

// WakerFunc adapts a function to incident.Waker.
type WakerFunc func()

// Wake calls f.
func (f WakerFunc) Wake() { f() }
