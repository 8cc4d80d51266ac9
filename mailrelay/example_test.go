package mailrelay_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/smtp"
	"os"
	"strings"
	"time"

	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
	"github.com/jichitai/seccloud/tenant"
)

// A relay for one municipality: internet mail for city.example.jp goes to
// the city's mail server (here a test sink).
func Example() {
	citySrv, _ := mailrelaytest.NewSink()
	defer citySrv.Close()
	dir, _ := tenant.NewSnapshot([]tenant.Tenant{{
		ID: "city", Name: "City", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
		MailDomains: []string{"city.example.jp"}, MailServers: []string{citySrv.Addr},
		EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.1.1")},
	}}, tenant.Options{})
	q, _ := os.MkdirTemp("", "mailrelay-example")
	defer os.RemoveAll(q)

	srv, err := mailrelay.New(mailrelay.Config{
		Hostname:  "relay.example.jp",
		Directory: dir,
		Queue:     mailrelay.QueueConfig{Dir: q},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(l)

	msg := "From: <someone@internet.example>\r\nSubject: hello\r\n\r\nhi\r\n"
	err = smtp.SendMail(l.Addr().String(), nil, "someone@internet.example", []string{"mayor@city.example.jp"}, []byte(msg))
	fmt.Println("sent:", err)
	err = smtp.SendMail(l.Addr().String(), nil, "someone@internet.example", []string{"victim@elsewhere.example"}, []byte(msg))
	fmt.Println("relay attempt:", err)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := citySrv.Wait(ctx, 1)
	fmt.Println("delivered to", got[0].To, strings.HasPrefix(string(got[0].Data), "Received: "))
	// Output:
	// sent: <nil>
	// relay attempt: 550 "5.7.1 <victim@elsewhere.example>: relay access denied"
	// delivered to [mayor@city.example.jp] true
}
