// Package waf is the multi-site reverse proxy in front of the municipalities'
// public web sites: it finds the site from the Host (and TLS SNI) through a
// [tenant.Directory], terminates TLS with the site's own certificate (hot
// reloaded when the files are renewed), speaks HTTP/1.1 and HTTP/2, spreads
// requests over the site's origins with health checks, passive ejection and
// retry of idempotent requests, and emits one ECS [detect.Event] per request.
//
// In front of the origins every request passes a gate (source address
// lists, country and path rules, layer-7 DDoS limits built on
// [ratelimit], size limits, CSRF, response-splitting, mail-header and
// session-in-URL checks: [Protections], [Limits], [DDoSConfig]), the
// inspection [Engine], and the shared CDN cache of package waf/cache
// (RFC 9111, with a grace period that keeps disaster sites readable when
// every origin is down). Responses get clickjacking headers and hardened
// session cookies; origins can be restricted to the WAF with a secret
// header or an mTLS client certificate ([OriginAuth], [Server.EgressAddrs]).
//
// Use it alone:
//
//	dir, _ := tenant.NewSnapshot(tenants, tenant.Options{}) // sites with origins and cert files
//	srv, err := waf.New(waf.Config{
//		Directory: dir,
//		Sink:      events, // detect.Sink; nil discards
//		Sites:     map[string]waf.SiteOptions{"www.city.example.jp": {RedirectHTTPS: true}},
//	})
//	if err != nil { ... }
//	go srv.ListenAndServe("192.0.2.10:80")
//	go srv.ListenAndServeTLS("192.0.2.10:443")
//	...
//	srv.Shutdown(ctx)
//
// A *Server is also an [http.Handler] (the reverse proxy without the
// redirect), for integrators that run their own listeners.
package waf
