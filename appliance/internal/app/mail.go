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
	"time"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/internal/clamd"
	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/spam"
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
//   - the quarantine in <data_dir>/quarantine (mail.quarantine.*), its
//     HTTP API from mailQuarantineHandler.
//   - mail.policy and mail.tenant_policies: the content policies.
//
// Not in the configuration yet (see mailrelay/README.md): STARTTLS
// certificates, SPF/DKIM/DMARC (sender authentication is off), DKIM
// signing keys, size and recipient limits, bounce policy.

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
	srv, err := mailrelay.New(mailrelay.Config{
		Hostname:   host,
		Directory:  a.live,
		Queue:      mailrelay.QueueConfig{Dir: filepath.Join(cfg.Path(cfg.DataDir), "mailq")},
		Delivery:   mailrelay.DeliveryConfig{Smarthost: cfg.Mail.Smarthost},
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
