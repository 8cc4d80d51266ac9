// Package mailrelay is the multi-domain SMTP relay of the security cloud
// (メールリレーサーバ): it relays mail between the municipalities (tenants)
// and the internet, refuses to be an open relay, checks the senders of
// internet mail (SPF, DKIM, DMARC), runs pluggable content filters, and
// keeps every accepted message in a durable queue until it is delivered.
//
// The path of a message:
//
//  1. An SMTP session (RFC 5321 with PIPELINING, SIZE, 8BITMIME,
//     SMTPUTF8, ENHANCEDSTATUSCODES, STARTTLS). The client address is
//     looked up in the tenant Directory: a tenant's network is outbound,
//     anything else is the internet.
//  2. Relay rules, as Postfix's reject_unauth_destination: from the
//     internet, RCPT only for domains a tenant owns (Tenant.MailDomains,
//     and their subdomains); from a tenant, MAIL FROM and From: only in
//     that tenant's domains, any destination. Source routes, the percent
//     hack and address literals are refused with 550 5.7.1.
//  3. DATA ends only at CRLF.CRLF; a bare CR or LF closes the session
//     (SMTP smuggling).
//  4. Inbound mail: SPF, DKIM and DMARC, with an Authentication-Results
//     header; then each Filter in Config.Filters returns a detect.Verdict;
//     then the built-in content checks (Config.Content): virus scan
//     (clamd), block/allow lists, attachment policy, spam score (package
//     spam, or rspamd through package rspamd) and advertising detection
//     with per-tenant levels and actions, and sanitisation (メール無害化).
//     Mail for recipients of several tenants is split: each tenant's
//     recipients are checked under that tenant's policy and queued as a
//     message of their own. Quarantined messages go to the
//     Quarantine store (Server.Quarantine: list, view, release, delete,
//     an HTTP API, forwarding to an isolated server).
//  5. The message is appended to the queue journal and fsynced before the
//     250 reply (group commit: concurrent sessions share one fsync).
//  6. Delivery workers send it per route: a tenant's domains to the
//     tenant's MailServers, other domains to the Smarthost or by MX.
//     4xx: retried with exponential backoff until MaxAge; 5xx: a DSN
//     (RFC 3464) to the sender, or dropped under BounceDrop.
//
// One detect.Event is emitted per message (dataset "mail.message") and one
// per delivery attempt and route ("mail.delivery"), one per session
// ("mail.session"); refused envelopes emit
// a "denied" event with rule "mail-relay-rules".
//
// Usage:
//
//	srv, err := mailrelay.New(mailrelay.Config{
//		Hostname:  "relay.pref.example.jp",
//		Directory: tenants, // tenant.Directory
//		Queue:     mailrelay.QueueConfig{Dir: "/var/lib/seccloud/mailq"},
//		Delivery:  mailrelay.DeliveryConfig{Smarthost: "smtp-out.example.jp:25"},
//		Auth:      mailrelay.AuthConfig{Resolver: net.DefaultResolver},
//		Sink:      events, // detect.Sink
//	})
//	if err != nil {
//		return err
//	}
//	defer srv.Shutdown(ctx)
//	l, _ := net.Listen("tcp", ":25")
//	return srv.Serve(l)
//
// Server methods are safe for concurrent use. A Server owns its queue
// directory: never run two Servers on one directory.
package mailrelay
