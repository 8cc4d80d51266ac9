package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/waf"
)

// The reverse proxy for the tenants' public sites (package waf), wired from
// the configuration:
//
//   - listen.waf_http: plain HTTP; listen.waf_https: HTTPS with each site's
//     certificate chosen by SNI (tenants[].sites[].tls_cert / tls_key,
//     re-read when the files change). Either may be empty (not served).
//   - tenants[].sites: host → origins, through the shared tenant
//     directory, so a reload applies at once.
//   - access log: one event per request to the event pipeline.
//
// The WAF rules, CDN cache and DDoS protection are not built yet (see
// waf/README.md): the sites are reverse-proxied without inspection.

type wafService struct {
	srv   *waf.Server
	addrs map[string]string // config key → bound address
	done  []chan error
}

func startWAF(_ context.Context, a *App, cfg *config.Config) (service, error) {
	log := a.log.With("function", "waf")
	if cfg.Listen.WAFHTTP == "" && cfg.Listen.WAFHTTPS == "" {
		log.Info("waf: listen.waf_http and listen.waf_https are empty; not listening")
		return noService{}, nil
	}
	srv, err := waf.New(waf.Config{Directory: a.live, Sink: a.events.sink(), Logger: log})
	if err != nil {
		return nil, err
	}
	s := &wafService{srv: srv, addrs: map[string]string{}}
	serve := func(addr, key string, fn func(net.Listener) error) error {
		if addr == "" {
			return nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		done := make(chan error, 1)
		s.done = append(s.done, done)
		s.addrs[key] = ln.Addr().String()
		go func() { done <- fn(ln) }()
		log.Info("waf listening", key, ln.Addr().String())
		return nil
	}
	if err := serve(cfg.Listen.WAFHTTP, "listen.waf_http", srv.Serve); err != nil {
		srv.Close()
		return nil, err
	}
	if err := serve(cfg.Listen.WAFHTTPS, "listen.waf_https", srv.ServeTLS); err != nil {
		_ = s.Shutdown(context.Background())
		return nil, err
	}
	return s, nil
}

// Shutdown stops accepting and drains requests in flight until ctx ends.
func (s *wafService) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	for _, d := range s.done {
		if serr := <-d; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}
	return err
}
