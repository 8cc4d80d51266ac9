// Package waf is the multi-site reverse proxy in front of the municipalities'
// public web sites: it finds the site from the Host (and TLS SNI) through a
// [tenant.Directory], terminates TLS with the site's own certificate (hot
// reloaded when the files are renewed), speaks HTTP/1.1 and HTTP/2, spreads
// requests over the site's origins with health checks, passive ejection and
// retry of idempotent requests, and emits one ECS [detect.Event] per request.
//
// This is the first increment of the waf issue: the reverse proxy. The
// inspection engine (OWASP CRS), the CDN cache and layer-7 DDoS protection
// are not built yet; every proxied request is allowed (detect.ActionAllow).
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
