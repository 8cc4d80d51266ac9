package app

import (
	"context"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
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
