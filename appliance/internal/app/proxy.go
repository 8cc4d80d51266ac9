package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/proxy"
)

// The forward web proxy (package proxy), wired from the configuration:
//
//   - listen.proxy: the HTTP/1.1 proxy port; empty leaves it off.
//   - tenants: the live directory (reloads apply to the next request);
//     sources in no tenant are refused with 403; each tenant dials from
//     its egress_addr; policy.allow_tenants are the exceptions to the ban
//     on direct traffic between tenants; policy.report_only and
//     policy.block_categories feed the URL filter.
//   - intel.*: the shared threat-intelligence set blocks requests to listed
//     domains, addresses and URLs (proxy.IntelDecider, before the lists).
//   - access log: one event per request or tunnel to the event pipeline.
//
// Not in the configuration yet (see proxy/README.md): URL block/allow
// lists and category files, trusted downstream proxies for
// X-Forwarded-For, CONNECT ports (443 only), proxy.allow_loopback_destinations.
// Until that key exists, loopback destinations are allowed exactly when
// the proxy itself listens on a loopback address (the demo), and that is
// logged as a warning at start.

// proxyService is the running proxy.
type proxyService struct {
	srv  *proxy.Server
	addr string // the bound listen address
	done chan error
}

func startProxy(_ context.Context, a *App, cfg *config.Config) (service, error) {
	log := a.log.With("function", "proxy")
	if cfg.Listen.Proxy == "" {
		log.Info("proxy: listen.proxy is empty; proxy not listening")
		return proxyOff{}, nil
	}
	lists, err := proxy.NewLists(proxy.ListConfig{})
	if err != nil {
		return nil, err
	}
	pc := proxy.Config{Directory: a.live, Sink: a.events.sink(), Decider: proxy.IntelDecider{Intel: a.intel(), Next: lists}, Logger: log}
	if loopbackListen(cfg.Listen.Proxy) {
		pc.AllowDestinations = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		log.Warn("proxy: listening on loopback: loopback DESTINATIONS ARE ALLOWED (demo/test mode); never use this on a real network")
	}
	srv, err := proxy.New(pc)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen.Proxy)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("listen.proxy: %w", err)
	}
	s := &proxyService{srv: srv, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ln) }()
	log.Info("proxy listening", "addr", ln.Addr().String())
	return s, nil
}

// Shutdown drains the proxy: idle connections close at once, requests and
// tunnels in flight get until ctx ends.
func (s *proxyService) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, proxy.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback() || host == "localhost"
}

// proxyOff stands for a proxy switched on without a listen address.
type proxyOff struct{}

func (proxyOff) Shutdown(context.Context) error { return nil }
