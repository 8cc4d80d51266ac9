// Package waf will hold the multi-site reverse proxy of the security cloud:
// TLS termination per site, load-balanced origins with health checks, a CDN
// cache that keeps disaster-information sites up, a web application firewall
// and layer-7 DDoS protection. Not built yet: see the waf issue. Until then
// the appliance does not start it.
package waf
