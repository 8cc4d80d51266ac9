package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/internal/clamd"
	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/rspamd"
	"github.com/jichitai/seccloud/mailrelay/spam"
	"github.com/jichitai/seccloud/ratelimit"
	"github.com/jichitai/seccloud/tenant"
)

// The mail relay (package mailrelay), wired from the configuration:
//
//   - listen.smtp: SMTP with no open relay — inbound only for tenants'
//     mail_domains, outbound only from a tenant network and its domains.
//   - tenants[].mail_servers: where inbound mail is delivered.
//   - mail.smarthost: the next hop for outbound mail (else MX lookup);
//     mail.hostname: the relay's name.
//   - the durable queue in <data_dir>/mailq (fsynced before 250).
//   - events: one per message, delivery attempt and session.
//
//   - mail.spam (+ mail.dnsbl): spam scoring and advertising detection
//     with the shipped classifier, header rules, DNSBL and the shared
//     threat-intel set (a.intel()).
//   - mail.clamd: virus scanning (scanner down → 4xx).
//   - mail.rspamd: rspamd (/checkv2) as the spam scorer instead of the
//     built-in one; rspamd down → 4xx unless mail.rspamd.on_error says
//     otherwise.
//   - the quarantine in <data_dir>/quarantine (mail.quarantine.*), its
//     HTTP API from mailQuarantineHandler.
//   - mail.policy and mail.tenant_policies: the content policies.
//   - mail.auth: SPF/DKIM/DMARC checks of inbound mail (mailAuth), off
//     unless enabled.
//
//   - mail.dkim: DKIM signing keys of tenant domains (dkimKeys); outbound
//     mail leaves from the sender tenant's egress address.
//
// Not in the configuration yet (see mailrelay/README.md): STARTTLS
// certificates, size and recipient limits, bounce policy.

type mailService struct {
	srv  *mailrelay.Server
	av   *clamd.Client
	addr string
	done chan error
}

func mailPolicy(p config.MailPolicy) mailrelay.Policy {
	return mailrelay.Policy{
		Spam:    mailrelay.Levels{Tag: p.SpamTag, Quarantine: p.SpamQuarantine, Reject: p.SpamReject},
		SpamTag: p.SpamSubject, Ads: mailrelay.PolicyAction(p.Ads), AdTag: p.AdSubject,
		Attachments: mailrelay.PolicyAction(p.Attachments), Virus: mailrelay.PolicyAction(p.Virus), Sanitize: p.Sanitize,
		Lists: mailrelay.Lists{BlockSenders: p.BlockSenders, AllowSenders: p.AllowSenders, BlockClients: p.BlockClients, AllowClients: p.AllowClients},
	}
}

// mailContent builds the content checks and quarantine settings from
// the configuration.
func mailContent(a *App, cfg *config.Config, host string, log *slog.Logger) (mailrelay.ContentConfig, mailrelay.QuarantineConfig, *clamd.Client, error) {
	var cc mailrelay.ContentConfig
	cc.Default = mailPolicy(cfg.Mail.Policy)
	if cc.Default.Attachments == "" {
		// Said explicitly so the content checks run even when nothing
		// else is configured: executables, macro files and encrypted
		// archives are quarantined by default, as the README says.
		cc.Default.Attachments = mailrelay.PolicyQuarantine
	}
	for _, tp := range cfg.Mail.TenantPolicies {
		if cc.Tenants == nil {
			cc.Tenants = map[string]mailrelay.Policy{}
		}
		cc.Tenants[tp.Tenant] = mailPolicy(tp.Policy)
	}
	if cfg.Mail.Spam {
		var zones []spam.Zone
		for _, z := range cfg.Mail.DNSBL {
			zones = append(zones, spam.Zone{Name: z.Zone, Domains: z.Domains, Points: z.Points})
		}
		sc, err := spam.New(spam.Config{Zones: zones, Intel: a.intel(), Logger: log})
		if err != nil {
			return cc, mailrelay.QuarantineConfig{}, nil, fmt.Errorf("mail.spam: %w", err)
		}
		cc.Spam = sc
	}
	if r := cfg.Mail.Rspamd; r.URL != "" {
		rs, err := rspamd.New(rspamd.Config{URL: r.URL, Timeout: time.Duration(r.Timeout), UseActions: r.Actions,
			TenantSettings: r.TenantSettings, Hostname: host, Logger: log})
		if err != nil {
			return cc, mailrelay.QuarantineConfig{}, nil, fmt.Errorf("mail.rspamd: %w", err)
		}
		cc.Scorer = rs
		if r.OnError != "tempfail" {
			cc.ScorerDown = mailrelay.ScorerFallback(r.OnError)
		}
	}
	var av *clamd.Client
	if cfg.Mail.Clamd != "" {
		c, err := clamd.New(clamd.Config{Address: cfg.Mail.Clamd})
		if err != nil {
			return cc, mailrelay.QuarantineConfig{}, nil, fmt.Errorf("mail.clamd: %w", err)
		}
		av, cc.AV = c, c
	}
	qc := mailrelay.QuarantineConfig{Dir: filepath.Join(cfg.Path(cfg.DataDir), "quarantine"), Retention: time.Duration(cfg.Mail.Quarantine.Retention)}
	if q := cfg.Mail.Quarantine; q.ForwardTo != "" {
		qc.Forward = &mailrelay.ForwardConfig{Addr: q.ForwardTo, To: q.ForwardRcpt, From: q.ForwardFrom}
	}
	return cc, qc, av, nil
}

func startMail(_ context.Context, a *App, cfg *config.Config) (service, error) {
	log := a.log.With("function", "mail")
	if cfg.Listen.SMTP == "" {
		log.Info("mail: listen.smtp is empty; relay not listening")
		return noService{}, nil
	}
	host := cfg.Mail.Hostname
	if host == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "seccloud"
		}
		host = h
	}
	content, quar, av, err := mailContent(a, cfg, host, log)
	if err != nil {
		return nil, err
	}
	auth := mailAuth(cfg.Mail.Auth)
	if auth.SigningKeys, err = dkimKeys(cfg, log); err != nil {
		if av != nil {
			av.Close()
		}
		return nil, err
	}
	var outLimit mailrelay.SenderLimiter
	if n := cfg.Mail.OutboundRecipientsPerHour; n > 0 {
		// an hour's worth at once, then n per hour
		lim, err := ratelimit.NewKeyed[string](ratelimit.KeyedConfig{Rate: float64(n) / 3600, Burst: n})
		if err != nil {
			if av != nil {
				av.Close()
			}
			return nil, fmt.Errorf("mail.outbound_recipients_per_hour: %w", err)
		}
		outLimit = lim
	}
	srv, err := mailrelay.New(mailrelay.Config{
		Hostname:      host,
		OutboundLimit: outLimit,
		Directory:     a.live,
		Queue:         mailrelay.QueueConfig{Dir: filepath.Join(cfg.Path(cfg.DataDir), "mailq")},
		Delivery: mailrelay.DeliveryConfig{Smarthost: cfg.Mail.Smarthost,
			// mail towards the internet leaves from the sender tenant's
			// egress address
			DialTenant: func(ctx context.Context, id, network, addr string) (net.Conn, error) {
				d := &net.Dialer{Timeout: 30 * time.Second}
				t, ok := a.live.Load().ByID(id)
				if id == "" || !ok {
					t = nil
				}
				return tenant.DialEgress(ctx, d, t, network, addr)
			}},
		Auth:       auth,
		Content:    content,
		Quarantine: quar,
		Sink:       a.events.sink(),
		Logger:     log,
	})
	if err != nil {
		if av != nil {
			av.Close()
		}
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen.SMTP)
	if err != nil {
		srv.Close()
		if av != nil {
			av.Close()
		}
		return nil, fmt.Errorf("listen.smtp: %w", err)
	}
	s := &mailService{srv: srv, av: av, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ln) }()
	log.Info("mail relay listening", "addr", s.addr)
	return s, nil
}

// dkimKeys loads the signing keys of mail.dkim, creating missing key files
// (their TXT record is logged and written to <key_file>.txt).
func dkimKeys(cfg *config.Config, log *slog.Logger) ([]mailrelay.DKIMKey, error) {
	var keys []mailrelay.DKIMKey
	for i, k := range cfg.Mail.DKIM {
		path := cfg.Path(k.KeyFile)
		signer, created, err := mailrelay.LoadDKIMKey(path, true)
		if err != nil {
			return nil, fmt.Errorf("mail.dkim[%d]: %w", i, err)
		}
		if created {
			rec, err := mailrelay.DKIMRecord(signer)
			if err != nil {
				return nil, fmt.Errorf("mail.dkim[%d]: %w", i, err)
			}
			name := k.Selector + "._domainkey." + strings.TrimSuffix(k.Domain, ".") + "."
			if err := os.WriteFile(path+".txt", []byte(name+" IN TXT \""+rec+"\"\n"), 0o644); err != nil {
				return nil, fmt.Errorf("mail.dkim[%d]: %w", i, err)
			}
			log.Warn("DKIM key created: publish its TXT record before mail signed with it leaves (DKIM鍵を作成しました。TXTレコードをDNSに登録してください)",
				"domain", k.Domain, "name", name, "record", rec, "file", path+".txt")
		}
		keys = append(keys, mailrelay.DKIMKey{Domain: k.Domain, Selector: k.Selector, Signer: signer})
	}
	return keys, nil
}

// mailAuth is the relay's sender authentication from mail.auth: off unless
// enabled; lookups go to mail.auth.resolver, else the system resolver.
func mailAuth(c config.MailAuth) mailrelay.AuthConfig {
	if !c.Enabled {
		return mailrelay.AuthConfig{}
	}
	if c.Resolver == "" {
		return mailrelay.AuthConfig{Resolver: net.DefaultResolver}
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	return mailrelay.AuthConfig{Resolver: &net.Resolver{PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, c.Resolver)
		}}}
}

// Shutdown stops accepting, lets sessions finish until ctx ends, stops
// delivery and closes the queue; undelivered mail stays queued.
func (s *mailService) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; serr != nil && !errors.Is(serr, mailrelay.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if s.av != nil {
		s.av.Close()
	}
	return err
}

// mailQuarantineHandler serves the mail quarantine's JSON API under
// /api/mail/quarantine (mailrelay.Quarantine.Handler): list, view, raw,
// release, delete. 503 while the relay is not running. The console's
// authentication is expected in front of it.
func (a *App) mailQuarantineHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q *mailrelay.Quarantine
		for _, f := range a.funcs {
			if f.name != "mail" {
				continue
			}
			f.mu.Lock()
			if ms, ok := f.svc.(*mailService); ok {
				q = ms.srv.Quarantine()
			}
			f.mu.Unlock()
		}
		if q == nil {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"mail relay not running"}` + "\n"))
			return
		}
		q.Handler("/api/mail/quarantine", nil).ServeHTTP(w, r)
	})
}
