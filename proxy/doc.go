// Package proxy will hold the multi-tenant forward web proxy of the security
// cloud: HTTP/1.1 and CONNECT with TLS inspection (and a bypass list), URL
// filtering, anti-virus scanning, C&C blocking, SaaS local breakout, a fixed
// egress address and a bandwidth ceiling per tenant, and one access event per
// request. Not built yet: see the proxy issue. Until then the appliance does
// not start a proxy.
package proxy
