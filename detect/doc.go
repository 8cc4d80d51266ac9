// Package detect holds what every security function shares about security
// events: the [Event] each function emits, the [Verdict] a policy returns,
// the [Severity] (危険度) judged from impact and success, and the [Sink]
// events go to, plus sinks that fan out, buffer asynchronously, and forward
// to syslog (RFC 5424) and NATS JetStream. The embedded 5-year event store
// lives in detect/store.
//
// Events encode to Elastic Common Schema JSON with [AppendECS], so any SIEM,
// OpenSearch or Elasticsearch takes them as they are.
//
// A function reports one event per unit of work:
//
//	sink.Emit(detect.Event{
//		Time:    now,
//		Module:  "dns",
//		Action:  "dns_query",
//		Tenant:  t.ID,
//		Client:  src,
//		DNS:     detect.DNSInfo{QName: "example.jp.", QType: "A", RCode: "NOERROR"},
//		Verdict: detect.Verdict{Action: detect.ActionAllow},
//	})
//
// Correlation into incidents, notification and reports build on these types
// (see the package README).
package detect
