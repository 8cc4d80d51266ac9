// Package dnsres will hold the caching recursive DNS resolver of the security
// cloud (外部DNSサーバ): full recursion or forwarding, positive and negative
// caching with serve-stale, a query log, C&C blocking and sinkholing, DGA
// and tunnelling detection, and zones owned by tenants. Not built yet: see
// the dnsres issue. Until then the appliance does not start a resolver.
package dnsres
