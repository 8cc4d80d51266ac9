// Package ingest brings external security events into seccloud: Suricata
// EVE JSON (alerts, drops, anomalies, hashed files) and firewall syslog (RFC 5424 and the
// BSD format of RFC 3164), as detect events of modules "ids" and
// "firewall", so the IDS and firewalls of the wider cloud correlate with the
// cloud's own functions and appear in the reports.
//
//	in, err := ingest.New(ingest.Config{Sink: sink, Tenant: tenantOf})
//	go in.ServeSyslogUDP(ctx, udpConn)      // net.ListenPacket("udp", "127.0.0.1:5514")
//	go in.ServeSyslogTCP(ctx, tcpListener)
//	go in.TailEVE(ctx, "/var/log/suricata/eve.json", ingest.TailOptions{})
//	go in.ServeEVE(ctx, unixListener)       // Suricata's unix_stream output
//	in.Stats()                              // accepted, dropped by reason
//
// Malformed or hostile records (not the format, invalid UTF-8, a field or
// line over the limits, a timestamp far in the past or future) are counted
// by reason and dropped; nothing a sender writes stops ingest.
package ingest
