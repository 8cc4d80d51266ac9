package waf

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// healthLoop probes every origin of the pools in use each HealthInterval
// until the Server closes. Pools unused for ten intervals (at least ten
// minutes) are forgotten, so sites removed by a directory reload stop
// being probed.
func (s *Server) healthLoop() {
	defer close(s.done)
	iv := s.cfg.Origins.HealthInterval
	if iv < 0 {
		<-s.stop
		return
	}
	tk := time.NewTicker(iv)
	defer tk.Stop()
	keep := max(10*iv, 10*time.Minute)
	for {
		select {
		case <-s.stop:
			return
		case <-tk.C:
		}
		ps := s.pools.snapshot(s.cfg.Now().Add(-keep).UnixNano())
		var wg sync.WaitGroup
		for _, p := range ps {
			for _, o := range p.origins {
				wg.Go(func() { s.probe(p, o) })
			}
		}
		wg.Wait()
	}
}

// probe sends one health check to o and records the result.
func (s *Server) probe(p *pool, o *origin) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Origins.HealthTimeout)
	defer cancel()
	u := *o.url
	u.Path = s.cfg.Origins.HealthPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return
	}
	req.Host = p.host
	req.Header.Set("User-Agent", "seccloud-waf-healthcheck")
	ok := false
	resp, err := s.tr.RoundTrip(req)
	if err == nil {
		ok = resp.StatusCode < 400
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	was := !o.down.Load()
	o.down.Store(!ok)
	switch {
	case was && !ok:
		s.log.Warn("waf: origin failed its health check", "site", p.host, "origin", o.name, "err", err)
	case !was && ok:
		s.log.Info("waf: origin healthy again", "site", p.host, "origin", o.name)
		o.ejectTil.Store(0)
		o.fails.Store(0)
	}
}
