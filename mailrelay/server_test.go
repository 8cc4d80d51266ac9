package mailrelay_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/ratelimit"
	"github.com/jichitai/seccloud/tenant"
)

func TestRelayRules(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name     string
		src      string // client source address
		from, to string
		mailCode int
		rcptCode int
		enhanced string
	}{
		{"internet to tenant A", "127.0.0.9", "x@internet.example", "user@a.example.jp", 250, 250, ""},
		{"internet to tenant subdomain", "127.0.0.9", "x@internet.example", "user@mail.a.example.jp", 250, 250, ""},
		{"internet to foreign domain", "127.0.0.9", "x@internet.example", "user@foreign.example", 250, 550, "5.7.1"},
		{"internet to look-alike domain", "127.0.0.9", "x@internet.example", "user@xa.example.jp", 250, 550, "5.7.1"},
		{"internet to address literal", "127.0.0.9", "x@internet.example", "user@[127.0.0.1]", 250, 550, "5.7.1"},
		{"internet percent hack", "127.0.0.9", "x@internet.example", "user%foreign.example@a.example.jp", 250, 550, "5.7.1"},
		{"internet bang path", "127.0.0.9", "x@internet.example", "foreign!user@a.example.jp", 250, 550, "5.7.1"},
		{"internet source route", "127.0.0.9", "x@internet.example", "@a.example.jp:user@foreign.example", 250, 550, "5.7.1"},
		{"tenant A to internet", "127.0.1.5", "staff@a.example.jp", "someone@internet.example", 250, 250, ""},
		{"tenant A to tenant B", "127.0.1.5", "staff@a.example.jp", "staff@b.example.jp", 250, 250, ""},
		{"tenant A null sender", "127.0.1.5", "", "someone@internet.example", 250, 250, ""},
		{"tenant A as tenant B", "127.0.1.5", "staff@b.example.jp", "", 550, 0, "5.7.1"},
		{"tenant A as internet domain", "127.0.1.5", "staff@gmail.example", "", 550, 0, "5.7.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := dial(t, f.addr, tc.src)
			cl.expect("EHLO client.example", 250)
			code, text := cl.cmd("MAIL FROM:<" + tc.from + ">")
			require.Equal(t, tc.mailCode, code, text)
			if tc.mailCode != 250 {
				assert.Contains(t, text, tc.enhanced)
				return
			}
			code, text = cl.cmd("RCPT TO:<" + tc.to + ">")
			require.Equal(t, tc.rcptCode, code, text)
			if tc.enhanced != "" {
				assert.Contains(t, text, tc.enhanced)
			}
		})
	}
	var denied int
	for _, e := range f.events.all() {
		if e.Verdict.Rule == "mail-relay-rules" {
			denied++
			assert.Equal(t, detect.ActionBlock, e.Verdict.Action)
		}
	}
	assert.Equal(t, 3+2, denied) // 3 relay attempts and 2 sender refusals
}

func TestInboundDelivery(t *testing.T) {
	f := newFixture(t, nil)
	cl := dial(t, f.addr, "127.0.0.9")
	cl.expect("EHLO mx.internet.example", 250)
	code, text := cl.sendMail("x@internet.example", []string{"u1@a.example.jp", "u2@b.example.jp"}, msg("x@internet.example", "hello"))
	require.Equal(t, 250, code, text)
	assert.Contains(t, text, "queued as")
	cl.expect("QUIT", 221)

	ma := f.sinkA.Wait(waitCtx(t), 1)
	mb := f.sinkB.Wait(waitCtx(t), 1)
	require.Len(t, ma, 1)
	require.Len(t, mb, 1)
	assert.Equal(t, []string{"u1@a.example.jp"}, ma[0].To)
	assert.Equal(t, []string{"u2@b.example.jp"}, mb[0].To)
	d := string(ma[0].Data)
	assert.True(t, strings.HasPrefix(d, "Received: from mx.internet.example ([127.0.0.9])"), d)
	assert.Contains(t, d, "\r\n.leading dot\r\n", "dot stuffing undone end to end")
	assert.Empty(t, f.smarthost.Messages())

	// Recipients of two tenants: one part (queue entry, event) per tenant.
	evs := f.events.dataset("mail.message")
	require.Len(t, evs, 2)
	assert.Equal(t, "b", evs[1].Tenant)
	assert.Equal(t, []string{"u2@b.example.jp"}, evs[1].Email.To)
	assert.NotEqual(t, evs[0].ID, evs[1].ID)
	e := evs[0]
	assert.Equal(t, "a", e.Tenant)
	assert.Equal(t, "inbound", e.Email.Direction)
	assert.Equal(t, "x@internet.example", e.Email.From)
	assert.Equal(t, []string{"u1@a.example.jp"}, e.Email.To)
	assert.Equal(t, "hello", e.Email.Subject)
	assert.Equal(t, "<hello@test>", e.Email.MessageID)
	assert.Equal(t, "127.0.0.9", e.Client.Addr().String())
	assert.Equal(t, detect.ActionAllow, e.Verdict.Action)
	assert.NotZero(t, e.BytesIn)
	require.Eventually(t, func() bool { return len(f.events.dataset("mail.delivery")) == 2 }, waitDur, pollDur)
	for _, e := range f.events.dataset("mail.delivery") {
		assert.Equal(t, "success", e.Outcome)
	}
	require.Eventually(t, func() bool { return len(f.events.dataset("mail.session")) == 1 }, waitDur, pollDur)
	se := f.events.dataset("mail.session")[0]
	v, _ := se.Label("messages")
	assert.Equal(t, "1", v)
	v, _ = se.Label("helo")
	assert.Equal(t, "mx.internet.example", v)
}

func TestOutboundDelivery(t *testing.T) {
	f := newFixture(t, nil)
	cl := dial(t, f.addr, "127.0.1.5")
	cl.expect("EHLO pc.a.example.jp", 250)
	code, text := cl.sendMail("staff@a.example.jp", []string{"someone@internet.example"}, msg("staff@a.example.jp", "out"))
	require.Equal(t, 250, code, text)
	m := f.smarthost.Wait(waitCtx(t), 1)
	require.Len(t, m, 1)
	assert.Equal(t, "staff@a.example.jp", m[0].From)

	// The From: header must be the tenant's too.
	code, text = cl.sendMail("staff@a.example.jp", []string{"someone@internet.example"}, msg("ceo@b.example.jp", "spoof"))
	assert.Equal(t, 550, code, text)
	assert.Contains(t, text, "5.7.1")
	ev := f.events.dataset("mail.message")
	require.Len(t, ev, 2)
	assert.Equal(t, "outbound", ev[0].Email.Direction)
	assert.Equal(t, "a", ev[0].Tenant)
	assert.Equal(t, "mail-header-from", ev[1].Verdict.Rule)
}

func TestSmuggling(t *testing.T) {
	tests := []struct{ name, data string }{
		{"bare LF dot", "Subject: x\r\n\r\nfirst\n.\nMAIL FROM:<evil@a.example.jp>\r\n.\r\n"},
		{"bare LF dot CRLF", "Subject: x\r\n\r\nfirst\n.\r\nMAIL FROM:<evil@a.example.jp>\r\n.\r\n"},
		{"bare CR dot", "Subject: x\r\n\r\nfirst\r.\r\nRCPT TO:<x@a.example.jp>\r\n.\r\n"},
		{"bare LF in header", "Subject: x\n\r\nbody\r\n.\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			cl := dial(t, f.addr, "127.0.0.9")
			cl.expect("EHLO mx.internet.example", 250)
			cl.expect("MAIL FROM:<x@internet.example>", 250)
			cl.expect("RCPT TO:<u@a.example.jp>", 250)
			cl.expect("DATA", 354)
			cl.write(tc.data)
			code, text := cl.read()
			assert.Equal(t, 554, code, text)
			code, _ = cl.read()
			assert.Equal(t, 0, code, "connection closed after smuggling attempt")
			assert.Empty(t, f.sinkA.Messages())
		})
	}
}

func TestCommandChecks(t *testing.T) {
	f := newFixture(t, func(c *mailrelay.Config) { c.Session.MaxRecipients = 2; c.Session.MaxSize = 100 })
	cl := dial(t, f.addr, "127.0.0.9")
	cl.expect("MAIL FROM:<x@internet.example>", 503)
	cl.expect("EHLO bad\x01name", 500)
	cl.expect("EHLO bad(name)", 501)
	text := cl.expect("EHLO mx.internet.example", 250)
	for _, ext := range []string{"PIPELINING", "SIZE 100", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"} {
		assert.Contains(t, text, ext)
	}
	assert.NotContains(t, text, "STARTTLS")
	cl.expect("RCPT TO:<u@a.example.jp>", 503)
	cl.expect("MAIL FROM:<x@internet.example> SIZE=1000", 552)
	cl.expect("MAIL FROM:<x@internet.example> BODY=BINARYMIME", 501)
	cl.expect("MAIL FROM:<ü@internet.example>", 553)
	cl.expect("MAIL FROM:<x@internet.example> SMTPUTF8 BODY=8BITMIME", 250)
	cl.expect("MAIL FROM:<y@internet.example>", 503)
	cl.expect("RCPT TO:<ü@a.example.jp>", 250)
	cl.expect("RCPT TO:<u2@a.example.jp>", 250)
	cl.expect("RCPT TO:<u3@a.example.jp>", 452)
	cl.expect("DATA", 354)
	cl.write(strings.Repeat("x", 200) + "\r\n.\r\n")
	code, text := cl.read()
	assert.Equal(t, 552, code, text)
	cl.expect("RSET", 250)
	cl.expect("BDAT 10 LAST", 502)
	cl.expect("NOOP", 250)
	cl.expect("QUIT", 221)
}

func TestPipelining(t *testing.T) {
	f := newFixture(t, nil)
	cl := dial(t, f.addr, "127.0.0.9")
	cl.expect("EHLO mx.internet.example", 250)
	cl.write("MAIL FROM:<x@internet.example> BODY=8BITMIME\r\nRCPT TO:<u@a.example.jp>\r\nRCPT TO:<v@foreign.example>\r\nDATA\r\n")
	for _, want := range []int{250, 250, 550, 354} {
		code, text := cl.read()
		require.Equal(t, want, code, text)
	}
	cl.write("Subject: 8bit\r\n\r\n日本語\r\n.\r\nQUIT\r\n")
	code, _ := cl.read()
	require.Equal(t, 250, code)
	code, _ = cl.read()
	require.Equal(t, 221, code)
	m := f.sinkA.Wait(waitCtx(t), 1)
	require.Len(t, m, 1)
	assert.Equal(t, "8BITMIME", m[0].Body, "8BITMIME honoured on the next hop")
	assert.Contains(t, string(m[0].Data), "日本語")
}

func TestStartTLS(t *testing.T) {
	cert := selfSigned(t)
	f := newFixture(t, func(c *mailrelay.Config) {
		c.Session.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		c.Session.TLSHandshakeTimeout = 200 * timeUnit
	})
	cl := dial(t, f.addr, "127.0.0.9")
	text := cl.expect("EHLO mx.internet.example", 250)
	assert.Contains(t, text, "STARTTLS")
	cl.expect("STARTTLS", 220)
	tc := tls.Client(cl.c, &tls.Config{InsecureSkipVerify: true})
	require.NoError(t, tc.Handshake())
	cl.c = tc
	cl.r.Reset(tc)
	text = cl.expect("EHLO mx.internet.example", 250)
	assert.NotContains(t, text, "STARTTLS")
	code, text := cl.sendMail("x@internet.example", []string{"u@a.example.jp"}, msg("x@internet.example", "tls"))
	require.Equal(t, 250, code, text)
	m := f.sinkA.Wait(waitCtx(t), 1)
	require.Len(t, m, 1)
	assert.Contains(t, string(m[0].Data), "with ESMTPS id")

	// Commands pipelined after STARTTLS are refused (CVE-2011-0411).
	cl2 := dial(t, f.addr, "127.0.0.9")
	cl2.expect("EHLO mx.internet.example", 250)
	code, _ = cl2.cmd("STARTTLS\r\nMAIL FROM:<x@internet.example>")
	assert.Equal(t, 554, code)

	// A client that never completes the handshake is cut off.
	cl3 := dial(t, f.addr, "127.0.0.9")
	cl3.expect("EHLO mx.internet.example", 250)
	cl3.expect("STARTTLS", 220)
	code, _ = cl3.read() // blocks until the server closes
	assert.Equal(t, 0, code)
}

func TestConfigErrors(t *testing.T) {
	dir := directory(t, "127.0.0.1:1", "127.0.0.1:2")
	tests := []struct {
		name string
		cfg  mailrelay.Config
		want string
	}{
		{"no hostname", mailrelay.Config{Directory: dir, Queue: mailrelay.QueueConfig{Dir: t.TempDir()}}, "Hostname"},
		{"no directory", mailrelay.Config{Hostname: "r.test", Queue: mailrelay.QueueConfig{Dir: t.TempDir()}}, "Directory"},
		{"no queue", mailrelay.Config{Hostname: "r.test", Directory: dir}, "Queue.Dir"},
		{"bad smarthost", mailrelay.Config{Hostname: "r.test", Directory: dir, Queue: mailrelay.QueueConfig{Dir: t.TempDir()},
			Delivery: mailrelay.DeliveryConfig{Smarthost: "nohostport"}}, "Smarthost"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mailrelay.New(tc.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	var _ tenant.Directory = dir
}

func TestTimeoutsAndConnLimit(t *testing.T) {
	f := newFixture(t, func(c *mailrelay.Config) {
		c.Session.CommandTimeout = 100 * timeUnit
		c.Session.MaxConns = 1
	})
	cl := dial(t, f.addr, "127.0.0.9")
	// A second client while the first holds the only slot: 421.
	c2, err := net.Dial("tcp", f.addr)
	require.NoError(t, err)
	defer c2.Close()
	line, _ := bufio.NewReader(c2).ReadString('\n')
	assert.True(t, strings.HasPrefix(line, "421 4.3.2"), line)
	// The silent first client is timed out with 421.
	code, text := cl.read()
	assert.Equal(t, 421, code, text)
}

func TestSMTPUTF8NextHop(t *testing.T) {
	f := newFixture(t, nil)
	cl := dial(t, f.addr, "127.0.0.9")
	cl.expect("EHLO mx.internet.example", 250)
	cl.expect("MAIL FROM:<送信者@internet.example> SMTPUTF8", 250)
	cl.expect("RCPT TO:<受信者@a.example.jp>", 250)
	cl.expect("DATA", 354)
	cl.write("From: <x@internet.example>\r\nSubject: utf8\r\n\r\n本文\r\n.\r\n")
	code, _ := cl.read()
	require.Equal(t, 250, code)
	m := f.sinkA.Wait(waitCtx(t), 1)
	require.Len(t, m, 1)
	assert.Equal(t, "送信者@internet.example", m[0].From)
	assert.Contains(t, string(m[0].Data), "with UTF8SMTP id")
}

type mailboxes map[string]bool

func (m mailboxes) ValidRecipient(_ context.Context, tenant, addr string) (bool, error) {
	if addr == "broken@a.example.jp" {
		return false, errors.New("directory down")
	}
	return m[tenant+"/"+addr], nil
}

func TestRecipientValidation(t *testing.T) {
	f := newFixture(t, func(c *mailrelay.Config) {
		c.Recipients = mailboxes{"a/mayor@a.example.jp": true}
	})
	cl := dial(t, f.addr, "127.0.0.9")
	cl.expect("EHLO mx.internet.example", 250)
	cl.expect("MAIL FROM:<x@internet.example>", 250)
	cl.expect("RCPT TO:<mayor@a.example.jp>", 250)
	text := cl.expect("RCPT TO:<nobody@a.example.jp>", 550)
	assert.Contains(t, text, "5.1.1")
	cl.expect("RCPT TO:<broken@a.example.jp>", 451)
	// Tenant to the internet is not checked.
	cl2 := dial(t, f.addr, "127.0.1.5")
	cl2.expect("EHLO pc.a.example.jp", 250)
	cl2.expect("MAIL FROM:<staff@a.example.jp>", 250)
	cl2.expect("RCPT TO:<anyone@internet.example>", 250)
	cl2.expect("RCPT TO:<nobody@a.example.jp>", 550)
}

// OutboundLimit caps the recipients of one outbound sender: beyond it RCPT
// gets 450 (the client retries later), one event per session says so,
// another sender of the same tenant and inbound mail are not affected.
func TestOutboundSenderRate(t *testing.T) {
	lim, err := ratelimit.NewKeyed[string](ratelimit.KeyedConfig{Rate: 1e-6, Burst: 3})
	require.NoError(t, err)
	f := newFixture(t, func(c *mailrelay.Config) { c.OutboundLimit = lim })
	cl := dial(t, f.addr, "127.0.1.5")
	cl.expect("EHLO pc.a.example.jp", 250)
	cl.expect("MAIL FROM:<Staff@a.example.jp>", 250)
	for i := 0; i < 3; i++ {
		cl.expect(fmt.Sprintf("RCPT TO:<r%d@internet.example>", i), 250)
	}
	text := cl.expect("RCPT TO:<r3@internet.example>", 450)
	assert.Contains(t, text, "4.7.1")
	cl.expect("RCPT TO:<r4@internet.example>", 450)
	cl.expect("RSET", 250)
	cl.expect("MAIL FROM:<staff@A.example.jp>", 250)
	cl.expect("RCPT TO:<r5@internet.example>", 450) // the same sender, any case
	cl.expect("RSET", 250)
	cl.expect("MAIL FROM:<other@a.example.jp>", 250)
	cl.expect("RCPT TO:<r6@internet.example>", 250) // another sender
	var limited []detect.Event
	for _, e := range f.events.all() {
		if e.Verdict.Rule == "mail-sender-rate" {
			limited = append(limited, e)
		}
	}
	require.Len(t, limited, 1, "one event per session")
	assert.Equal(t, detect.ActionTempFail, limited[0].Verdict.Action)
	assert.Equal(t, "a", limited[0].Tenant)

	in := dial(t, f.addr, "127.0.0.9") // inbound: no sender cap
	in.expect("EHLO mx.internet.example", 250)
	in.expect("MAIL FROM:<x@internet.example>", 250)
	for i := 0; i < 5; i++ {
		in.expect(fmt.Sprintf("RCPT TO:<u%d@a.example.jp>", i), 250)
	}
}
