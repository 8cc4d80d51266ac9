package dnsres_test

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/dnsres"
)

// A Recursor following a DNAME (RFC 6672): the answer holds the DNAME,
// the CNAME the resolver synthesised from it, and the final record. The
// "root" here is one loopback server authoritative for everything.
func ExampleRecursor() {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	root := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		name := strings.ToLower(q.Question[0].Name)
		switch {
		case strings.HasSuffix(name, ".old.example."):
			d, _ := dns.NewRR("old.example. 300 IN DNAME new.example.")
			m.Answer = []dns.RR{d}
		case name == "www.new.example.":
			a, _ := dns.NewRR("www.new.example. 300 IN A 192.0.2.7")
			m.Answer = []dns.RR{a}
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = root.ActivateAndServe() }()
	defer root.Shutdown()

	rec, err := dnsres.NewRecursor(dnsres.RecursorConfig{
		RootHints:           []string{pc.LocalAddr().String()},
		NoQNAMEMinimisation: true, // one server: ask it the full name
		FetchesPerZone:      50,   // at most 50 queries outstanding per zone
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rec.Close()
	m, err := rec.Resolve(context.Background(), dnsres.Question{Name: "www.old.example.", Type: dns.TypeA, Class: dns.ClassINET})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, rr := range m.Answer {
		switch v := rr.(type) {
		case *dns.DNAME:
			fmt.Println(v.Hdr.Name, "DNAME", v.Target)
		case *dns.CNAME:
			fmt.Println(v.Hdr.Name, "CNAME", v.Target)
		case *dns.A:
			fmt.Println(v.Hdr.Name, "A", v.A)
		}
	}
	fmt.Println("queries:", rec.Stats().Queries)
	// Output:
	// old.example. DNAME new.example.
	// www.old.example. CNAME www.new.example.
	// www.new.example. A 192.0.2.7
	// queries: 2
}
