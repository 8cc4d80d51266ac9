package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/mailrelay"
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
// Not in the configuration yet (see mailrelay/README.md): STARTTLS
// certificates, SPF/DKIM/DMARC (sender authentication is off), DKIM
// signing keys, size and recipient limits, bounce policy. Anti-virus,
// spam scoring and quarantine are not built yet.

type mailService struct {
	srv  *mailrelay.Server
	addr string
	done chan error
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
	srv, err := mailrelay.New(mailrelay.Config{
		Hostname:  host,
		Directory: a.live,
		Queue:     mailrelay.QueueConfig{Dir: filepath.Join(cfg.Path(cfg.DataDir), "mailq")},
		Delivery:  mailrelay.DeliveryConfig{Smarthost: cfg.Mail.Smarthost},
		Sink:      a.events.sink(),
		Logger:    log,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen.SMTP)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("listen.smtp: %w", err)
	}
	s := &mailService{srv: srv, addr: ln.Addr().String(), done: make(chan error, 1)}
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
	return err
}
