package mailrelay_test

import (
	"context"
	"encoding/base64"
	"mime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/internal/clamd"
	"github.com/jichitai/seccloud/mailrelay"
)

// One message from the internet to recipients of two tenants: each
// tenant's policy applies to its own recipients (split delivery).
func TestSplitPerTenantPolicy(t *testing.T) {
	yes := true
	f := contentFixture(t, func(c *mailrelay.Config) {
		c.Content.Tenants = map[string]mailrelay.Policy{
			"a": {Ads: mailrelay.PolicyTag, Attachments: mailrelay.PolicyAllow},
			"b": {Ads: mailrelay.PolicyQuarantine, Attachments: mailrelay.PolicyReject, Sanitize: &yes},
		}
	})
	cl := dial(t, f.addr, "")
	cl.expect("EHLO mx.example.net", 250)
	both := []string{"u1@a.example.jp", "v1@b.example.jp", "u2@a.example.jp"}

	// Advertising: a tags it, b quarantines it.
	ad := "From: shop@store.example\r\nTo: u1@a.example.jp, v1@b.example.jp\r\nSubject: " + mime.BEncoding.Encode("UTF-8", "【広告】秋のセール") +
		"\r\nDate: Mon, 2 Nov 2026 10:00:00 +0900\r\nMessage-ID: <ad-split@store.example>\r\nList-Unsubscribe: <mailto:u@store.example>\r\n\r\nセール開催中です。\r\n"
	code, text := cl.sendMail("shop@store.example", both, ad)
	require.Equal(t, 250, code, text)
	assert.Contains(t, text, "queued as")
	assert.Contains(t, text, "quarantined as")
	got := f.sinkA.Wait(waitCtx(t), 1)
	require.Len(t, got, 1)
	assert.Equal(t, []string{"u1@a.example.jp", "u2@a.example.jp"}, got[0].To, "a's part holds a's recipients only")
	assert.Contains(t, string(got[0].Data), "Subject: =?UTF-8?b?W+W6g+WRil0=?= ")
	q := f.srv.Quarantine().List(mailrelay.QuarantineFilter{Tenant: "b"})
	require.Len(t, q, 1)
	assert.Equal(t, "ad", q[0].Reason)
	assert.Equal(t, []string{"v1@b.example.jp"}, q[0].To)
	assert.Empty(t, f.srv.Quarantine().List(mailrelay.QuarantineFilter{Tenant: "a"}))

	// One event per part, each with its tenant and recipients.
	var evA, evB *detect.Event
	for _, e := range f.events.dataset("mail.message") {
		if e.Email.MessageID != "<ad-split@store.example>" {
			continue
		}
		e := e
		switch e.Tenant {
		case "a":
			evA = &e
		case "b":
			evB = &e
		}
	}
	require.NotNil(t, evA)
	require.NotNil(t, evB)
	assert.Equal(t, detect.ActionAllow, evA.Verdict.Action)
	assert.Equal(t, detect.ActionQuarantine, evB.Verdict.Action)
	assert.NotEqual(t, evA.ID, evB.ID)

	// Executable: a allows it, b rejects it → a delivered, b's part kept
	// in the quarantine (the session already accepted a's part).
	exe := "From: x@partner.example\r\nTo: u1@a.example.jp\r\nSubject: invoice\r\nDate: Mon, 2 Nov 2026 10:00:00 +0900\r\nMessage-ID: <exe-split@p>\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n" +
		"Content-Type: application/octet-stream; name=\"tool.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n"
	code, text = cl.sendMail("x@partner.example", []string{"u1@a.example.jp", "v1@b.example.jp"}, exe)
	require.Equal(t, 250, code, text)
	got = f.sinkA.Wait(waitCtx(t), 2)
	require.Len(t, got, 2)
	assert.Contains(t, string(got[1].Data), "tool.exe")
	q = f.srv.Quarantine().List(mailrelay.QuarantineFilter{Tenant: "b", Reason: "attachment"})
	require.Len(t, q, 1)
	assert.Contains(t, q[0].Detail, "other recipients accepted")
	assert.Equal(t, []string{"v1@b.example.jp"}, q[0].To)

	// Sanitisation for b only: a gets the HTML, b the text version.
	html := "From: t@partner.example\r\nTo: u1@a.example.jp\r\nSubject: report\r\nDate: Mon, 2 Nov 2026 10:00:00 +0900\r\nMessage-ID: <san-split@p>\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Minutes at <a href=\"https://docs.partner.example/m\">https://docs.partner.example/m</a></p>\r\n"
	code, text = cl.sendMail("t@partner.example", []string{"v1@b.example.jp", "u1@a.example.jp"}, html)
	require.Equal(t, 250, code, text)
	got = f.sinkA.Wait(waitCtx(t), 3)
	require.Len(t, got, 3)
	assert.Contains(t, string(got[2].Data), "<a href=\"https://docs.partner.example/m\">")
	assert.NotContains(t, string(got[2].Data), "X-Seccloud-Sanitized")
	gotB := f.sinkB.Wait(waitCtx(t), 1)
	require.Len(t, gotB, 1)
	assert.Equal(t, []string{"v1@b.example.jp"}, gotB[0].To)
	d := string(gotB[0].Data)
	require.Contains(t, d, "X-Seccloud-Sanitized: yes")
	dec, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(strings.TrimSpace(d[strings.Index(d, "\r\n\r\n")+4:]), "\r\n", ""))
	require.NoError(t, err)
	assert.Contains(t, string(dec), "hxxps://docs[.]partner[.]example/m")

	// Both tenants refuse → 550, nothing kept.
	before := len(f.srv.Quarantine().List(mailrelay.QuarantineFilter{}))
	cl.expect("MAIL FROM:<x@partner.example>", 250)
	cl.expect("RCPT TO:<v1@b.example.jp>", 250)
	cl.expect("RCPT TO:<v2@b.example.jp>", 250)
	cl.expect("DATA", 354)
	cl.write(exe + ".\r\n")
	code, text = cl.read()
	assert.Equal(t, 550, code, text)
	assert.Len(t, f.srv.Quarantine().List(mailrelay.QuarantineFilter{}), before)
}

// A tenant in report-only mode sees its part delivered while the other
// tenant's policy still stops its own part.
func TestSplitReportOnlyAndDeferral(t *testing.T) {
	f := contentFixture(t, func(c *mailrelay.Config) {
		c.Content.Default.Attachments = mailrelay.PolicyReject
		c.Filters = []mailrelay.Filter{mailrelay.FilterFunc(func(_ context.Context, m *mailrelay.Message) (detect.Verdict, error) {
			if m.Subject == "defer-b" && m.Tenant == "b" {
				return detect.Verdict{Action: detect.ActionTempFail, Rule: "test", Reason: "b's scanner down"}, nil
			}
			return detect.Verdict{}, nil
		})}
	})
	cl := dial(t, f.addr, "")
	cl.expect("EHLO mx.example.net", 250)
	// One tenant's part deferred: the whole message is deferred and
	// nothing is queued (the client retries it whole).
	code, text := cl.sendMail("x@partner.example", []string{"u1@a.example.jp", "v1@b.example.jp"}, msg("x@partner.example", "defer-b"))
	assert.Equal(t, 451, code, text)
	assert.Contains(t, text, "b's scanner down")
	code, text = cl.sendMail("x@partner.example", []string{"u1@a.example.jp", "v1@b.example.jp"}, msg("x@partner.example", "fine"))
	require.Equal(t, 250, code, text)
	a := f.sinkA.Wait(waitCtx(t), 1)
	b := f.sinkB.Wait(waitCtx(t), 1)
	require.Len(t, a, 1)
	require.Len(t, b, 1)
	assert.Contains(t, string(a[0].Data), "Subject: fine", "the deferred message was not delivered")
	assert.Equal(t, []string{"u1@a.example.jp"}, a[0].To)
	assert.Equal(t, []string{"v1@b.example.jp"}, b[0].To)
}

type countingScanner struct{ n atomic.Int32 }

func (s *countingScanner) ScanBytes(context.Context, []byte) (clamd.Result, error) {
	s.n.Add(1)
	return clamd.Result{Status: clamd.Clean}, nil
}

// The tenant-independent work (MIME parse, virus scan, built-in spam
// score) is done once for all the tenants of a split message.
func TestSplitScansOnce(t *testing.T) {
	av := &countingScanner{}
	f := contentFixture(t, func(c *mailrelay.Config) { c.Content.AV = av })
	cl := dial(t, f.addr, "")
	cl.expect("EHLO mx.example.net", 250)
	code, text := cl.sendMail("x@partner.example", []string{"u1@a.example.jp", "v1@b.example.jp"}, msg("x@partner.example", "once"))
	require.Equal(t, 250, code, text)
	assert.Equal(t, int32(1), av.n.Load())
	var scores []string
	for _, e := range f.events.dataset("mail.message") {
		v, _ := e.Label("spam_score")
		scores = append(scores, v)
	}
	require.Len(t, scores, 2)
	assert.Equal(t, scores[0], scores[1])
	assert.NotEmpty(t, scores[0])
}
