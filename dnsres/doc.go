// Package dnsres is the caching DNS resolver of the security cloud
// (外部DNSサーバ): the municipalities' terminals ask it, it answers from
// its cache, from the tenants' own zones, or by forwarding to upstreams or
// iterating from root hints, blocks threat-intelligence domains, and logs
// every query as an ECS event.
//
// The pieces compose like CoreDNS plugins: a [Server] (UDP and TCP, EDNS0
// 1232, compression, TC=1 and TCP fallback, REFUSED for clients in no
// tenant) runs a [Handler] chain built with [Chain] from [Middleware]
// steps — [Policy] (tenant allow/deny lists, [RPZ] response-policy zones,
// the intel list: sinkhole / NXDOMAIN / report-only), [Zones]
// (authoritative tenant zones), [Detector] (DGA-like names, tunnelling,
// NXDOMAIN storms; also the server's [Observer]) and your own — ending in
// a [Cache], which sends misses to a [Resolver]: a [Forwarder] or a
// [Recursor] (QNAME minimisation, delegation cache, CNAME/DNAME chains,
// glueless IPv4/IPv6 name servers), both over a pool of random-port UDP
// sockets and both with a per-zone (per-domain) fetch limit. [RRL] rate-limits UDP answers.
//
//	fw, _ := dnsres.NewForwarder(dnsres.ForwarderConfig{Upstreams: []string{"192.0.2.53:53"}})
//	cache, _ := dnsres.NewCache(dnsres.CacheConfig{Resolver: fw})
//	set, _ := intel.Load(intel.Files{Domains: []string{"/etc/seccloud/intel/cc-domains.txt"}}, time.Now())
//	policy, _ := dnsres.NewPolicy(dnsres.PolicyConfig{Intel: intel.NewLive(set), SinkholeA: warningPage})
//	zones := dnsres.NewZones()
//	_ = zones.Load(map[string]string{"city.example.jp": "/etc/seccloud/zones/city.example.jp.zone"})
//	srv, _ := dnsres.NewServer(dnsres.ServerConfig{
//		Addr: ":53", Directory: tenants, Sink: events,
//		Handler: dnsres.Chain(cache, policy.Middleware, zones.Middleware),
//	})
//	_ = srv.Start()
//	defer srv.Shutdown(ctx)
//
// The query log: the server emits exactly one detect.Event per query to
// ServerConfig.Sink (module "dns", dataset "dns.query", action
// "dns_query"): time, tenant, client, question, response code, answers
// and resolved addresses, duration, the label dns_cache (hit, miss,
// coalesced, stale) or dns_source (zone, policy), and the verdict. When a
// policy decided, the event is an alert (kind "alert", category
// "intrusion_detection") naming the terminal, with its severity. Emit
// must not block: put a detect.Async in front of a slow destination.
//
// Handlers run on the server's read loop and must not wait on the
// network; Cache detaches the request (Request.Detach,
// ResponseWriter.Detach) and answers from the resolution's goroutine. A
// cache hit is answered from the cached wire bytes with no dns.Msg and no
// allocation.
//
// Package dnsrestest has a loopback authoritative server and a recording
// Sink for tests.
package dnsres
