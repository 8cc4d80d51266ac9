// Package mailrelay will hold the multi-domain SMTP relay of the security
// cloud (メールリレーサーバ): SPF, DKIM and DMARC checks, anti-virus, spam and
// advertising-mail levels, quarantine, allow and block lists, and a durable
// queue that loses nothing accepted. Not built yet: see the mailrelay issue.
// Until then the appliance does not start a relay.
package mailrelay
