package app

import (
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
)

// TestMailThroughAppliance sends mail from "the internet" (127.0.0.1) to a
// tenant's domain through the wired relay, checks it reaches the tenant's
// mail server, that relaying to a foreign domain is refused, and that the
// events are stored.
func TestMailThroughAppliance(t *testing.T) {
	mx, err := mailrelaytest.NewSink()
	require.NoError(t, err)
	t.Cleanup(func() { mx.Close() }) // after the appliance stops (cleanups run last-in first-out)
	a, ctx := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0", smtp: "127.0.0.1:0"}
functions: {proxy: false, dns: false, waf: false}
mail: {hostname: relay.test}
tenants:
  - id: tsu
    name: 津市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    mail_domains: [city.tsu.example.jp]
    mail_servers: ["`+mx.Addr+`"]
`)
	addr := startedService[*mailService](t, a).addr

	msg := "From: a@sender.example\r\nTo: yamada@city.tsu.example.jp\r\nSubject: test\r\nMessage-ID: <1@sender.example>\r\n\r\nこんにちは\r\n"
	require.NoError(t, smtp.SendMail(addr, nil, "a@sender.example", []string{"yamada@city.tsu.example.jp"}, []byte(msg)))
	err = smtp.SendMail(addr, nil, "a@sender.example", []string{"b@elsewhere.example"}, []byte(msg))
	require.Error(t, err, "no open relay")
	assert.Contains(t, err.Error(), "5.7.1")

	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	got := mx.Wait(wctx, 1)
	require.Len(t, got, 1)
	assert.Equal(t, []string{"yamada@city.tsu.example.jp"}, got[0].To)
	assert.Contains(t, string(got[0].Data), "こんにちは")
	assert.Contains(t, string(got[0].Data), "Received: from")

	require.NoError(t, a.events.flush(ctx, 10*time.Second))
	var tenants, refused int
	require.NoError(t, a.events.store.Query(ctx, store.Filter{Module: "mail"}, func(e detect.Event) error {
		if e.Tenant == "tsu" && strings.Contains(e.Email.Subject+e.Email.MessageID, "1@sender.example") {
			tenants++
		}
		if e.Verdict.Action == detect.ActionBlock {
			refused++
		}
		return nil
	}))
	assert.Positive(t, tenants, "an event for the tenant's message")
	assert.Positive(t, refused, "an event for the refused relay attempt")
}

// TestMailQuarantineThroughAppliance: with spam scoring, a tenant policy
// that rejects executables and quarantines ads, and forwarding to an
// isolated server, an ad is quarantined, forwarded, listed and released
// through the quarantine API, and an executable is refused.
func TestMailQuarantineThroughAppliance(t *testing.T) {
	mx, err := mailrelaytest.NewSink()
	require.NoError(t, err)
	t.Cleanup(func() { mx.Close() })
	iso, err := mailrelaytest.NewSink()
	require.NoError(t, err)
	t.Cleanup(func() { iso.Close() })
	a, ctx := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0", smtp: "127.0.0.1:0"}
functions: {proxy: false, dns: false, waf: false}
mail:
  hostname: relay.test
  spam: true
  quarantine: {retention: 10d, forward_to: "`+iso.Addr+`", forward_rcpt: q@isolated.example.jp}
  policy: {spam_reject: 100}
  tenant_policies:
    - tenant: tsu
      policy: {ads: quarantine, attachments: reject}
tenants:
  - id: tsu
    name: 津市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    mail_domains: [city.tsu.example.jp]
    mail_servers: ["`+mx.Addr+`"]
`)
	addr := startedService[*mailService](t, a).addr
	ad := "From: shop@store.example\r\nTo: yamada@city.tsu.example.jp\r\nSubject: =?UTF-8?B?44CQ5bqD5ZGK44CR56eL44Gu44K744O844Or?=\r\n" +
		"Date: Mon, 2 Nov 2026 10:00:00 +0900\r\nMessage-ID: <ad@store.example>\r\nList-Unsubscribe: <mailto:u@store.example>\r\n\r\nsale\r\n"
	require.NoError(t, smtp.SendMail(addr, nil, "shop@store.example", []string{"yamada@city.tsu.example.jp"}, []byte(ad)))
	exe := "From: x@p.example\r\nTo: yamada@city.tsu.example.jp\r\nSubject: inv\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" +
		"Content-Type: application/octet-stream; name=\"a.exe\"\r\n\r\nx\r\n--b--\r\n"
	err = smtp.SendMail(addr, nil, "x@p.example", []string{"yamada@city.tsu.example.jp"}, []byte(exe))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "a.exe")

	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	fw := iso.Wait(wctx, 1)
	require.Len(t, fw, 1)
	assert.Contains(t, string(fw[0].Data), "reason=ad")

	h := a.mailQuarantineHandler()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/api/mail/quarantine?tenant=tsu", nil))
	require.Equal(t, 200, w.Code)
	var list struct{ Items []mailrelay.QuarantineItem }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list))
	require.Len(t, list.Items, 1)
	assert.Equal(t, "ad", list.Items[0].Reason)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/api/mail/quarantine/"+list.Items[0].ID+"/release", nil))
	require.Equal(t, 200, w.Code, w.Body.String())
	got := mx.Wait(wctx, 1)
	require.Len(t, got, 1)
	assert.Contains(t, string(got[0].Data), "List-Unsubscribe")
}

// TestMailDefaultPolicyQuarantinesExecutables: with no mail.policy at all,
// an executable attachment is quarantined (the documented default), not
// delivered.
func TestMailDefaultPolicyQuarantinesExecutables(t *testing.T) {
	mx, err := mailrelaytest.NewSink()
	require.NoError(t, err)
	t.Cleanup(func() { mx.Close() })
	a, ctx := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0", smtp: "127.0.0.1:0"}
functions: {proxy: false, dns: false, waf: false}
mail: {hostname: relay.test}
tenants:
  - id: tsu
    name: 津市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    mail_domains: [city.tsu.example.jp]
    mail_servers: ["`+mx.Addr+`"]
`)
	addr := startedService[*mailService](t, a).addr
	exe := "From: x@p.example\r\nTo: yamada@city.tsu.example.jp\r\nSubject: invoice\r\nMessage-ID: <exe@p.example>\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n" +
		"Content-Type: application/octet-stream; name=\"invoice.exe\"\r\nContent-Disposition: attachment; filename=\"invoice.exe\"\r\n\r\nMZx\r\n--b--\r\n"
	require.NoError(t, smtp.SendMail(addr, nil, "x@p.example", []string{"yamada@city.tsu.example.jp"}, []byte(exe)))
	plain := "From: x@p.example\r\nTo: yamada@city.tsu.example.jp\r\nSubject: hello\r\nMessage-ID: <ok@p.example>\r\n\r\nこんにちは\r\n"
	require.NoError(t, smtp.SendMail(addr, nil, "x@p.example", []string{"yamada@city.tsu.example.jp"}, []byte(plain)))

	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	got := mx.Wait(wctx, 1)
	require.Len(t, got, 1)
	assert.Contains(t, string(got[0].Data), "<ok@p.example>", "only the plain message is delivered")

	w := httptest.NewRecorder()
	a.mailQuarantineHandler().ServeHTTP(w, httptest.NewRequest("GET", "/api/mail/quarantine?tenant=tsu", nil))
	require.Equal(t, 200, w.Code)
	var list struct{ Items []mailrelay.QuarantineItem }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list))
	require.Len(t, list.Items, 1)
	assert.Equal(t, "attachment", list.Items[0].Reason)
	assert.Len(t, mx.Messages(), 1)
}

// TestMailOutboundRate: mail.outbound_recipients_per_hour reaches the
// relay: a tenant sender gets 450 beyond its hour's worth of recipients.
func TestMailOutboundRate(t *testing.T) {
	a, _ := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0", smtp: "127.0.0.1:0"}
functions: {proxy: false, dns: false, waf: false}
mail: {hostname: relay.test, smarthost: "127.0.0.1:9", outbound_recipients_per_hour: 2}
tenants:
  - id: tsu
    name: 津市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    mail_domains: [city.tsu.example.jp]
`)
	addr := startedService[*mailService](t, a).addr
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.1.5")}}
	conn, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	c, err := smtp.NewClient(conn, "relay.test")
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Hello("pc.city.tsu.example.jp"))
	require.NoError(t, c.Mail("staff@city.tsu.example.jp"))
	require.NoError(t, c.Rcpt("a@internet.example"))
	require.NoError(t, c.Rcpt("b@internet.example"))
	err = c.Rcpt("c@internet.example")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "450")
}
