// Package proxy is the multi-tenant forward web proxy of the security
// cloud: every web request of the municipalities' terminals passes through
// it.
//
// A [Server] speaks HTTP/1.1 to clients: absolute-URI requests
// ("GET http://host/path HTTP/1.1") relayed over pooled upstream
// connections, and CONNECT tunnels with half-close. For each request it
//
//  1. resolves the tenant from the client's source address
//     ([tenant.Directory]); a source in no tenant gets 403 (no open proxy);
//  2. takes the terminal from X-Forwarded-For only when the client is a
//     trusted downstream proxy (Config.TrustedProxies);
//  3. asks the [Decider] (by default [Lists]: block and allow lists, URL
//     prefixes, categories; report-only per rule set or per tenant);
//  4. resolves the name once, refuses destinations inside another tenant's
//     networks (unless the tenant's Policy.AllowTenants lists it) and in
//     denied networks, and dials exactly the addresses it checked, from the
//     tenant's fixed egress address;
//  5. emits one ECS access event per request or tunnel to the
//     [detect.Sink].
//
// Optional, each off by default: TLS inspection of CONNECT tunnels with an
// appliance [CA] (Config.Inspect: minted leaf certificates, bypass by
// domain and category, origin certificates verified, ALPN h2/http1.1 both
// ways); malware scanning of downloads (Config.Scanner, [ClamdScanner]);
// SaaS tenant restrictions (Config.TenantRestrictions); SaaS breakout over
// a separate line with a health check and fall-back (Config.Breakout);
// per-tenant bandwidth ceilings (tenant.Bandwidth, through ratelimit) and
// fair sharing of the line's capacity among busy tenants by weight
// (Config.GlobalBandwidth, through ratelimit.Fair); WebSocket upgrades.
//
// On Linux an idle CONNECT tunnel costs no goroutine, buffer or timer: both
// sockets wait in one epoll set per Server, and a goroutine with a pooled
// buffer exists only while bytes flow (about 5 KB of memory per idle
// tunnel; see README.md).
//
// Blocked requests get an HTML page in Japanese with English below, naming
// the reason, the rule and a reference (the event id).
//
// Usage, with the appliance's live tenant directory and event queue:
//
//	lists, err := proxy.NewLists(proxy.ListConfig{
//		Global: proxy.Rules{Block: []string{"malware.example", "=ads.example.net"}},
//	})
//	if err != nil {
//		return err
//	}
//	srv, err := proxy.New(proxy.Config{Directory: live, Sink: events, Decider: lists})
//	if err != nil {
//		return err
//	}
//	go srv.ListenAndServe("192.0.2.10:3128")
//	...
//	err = srv.Shutdown(ctx)
//
// Not built yet (see README.md): https:// absolute URIs, threat intel on
// resolved addresses.
package proxy
