package app

import (
	"bytes"
	"context"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
)

// TestMailOutboundDKIMAndEgress: a tenant's outbound mail leaves through
// the smarthost from the tenant's egress address, DKIM-signed with the key
// the appliance created at start (its TXT record written beside it, and
// that record verifies the signature); mail claiming another tenant's
// domain is refused.
func TestMailOutboundDKIMAndEgress(t *testing.T) {
	hop, err := mailrelaytest.NewSink()
	require.NoError(t, err)
	t.Cleanup(func() { hop.Close() })
	keys := t.TempDir()
	keyFile := filepath.Join(keys, "tsu.pem")
	a, ctx := runApp(t, `version: 1
data_dir: data
listen: {console: "127.0.0.1:0", smtp: "127.0.0.1:0"}
functions: {proxy: false, dns: false, waf: false}
mail:
  hostname: relay.test
  smarthost: "`+hop.Addr+`"
  dkim:
    - {domain: city.tsu.example.jp, selector: s2026, key_file: "`+keyFile+`"}
tenants:
  - id: tsu
    name: 津市
    networks: [127.0.0.0/24]
    egress_addr: 127.0.1.254
    mail_domains: [city.tsu.example.jp]
  - id: ise
    name: 伊勢市
    networks: [127.0.2.0/24]
    egress_addr: 127.0.2.254
    mail_domains: [city.ise.example.jp]
`)
	addr := startedService[*mailService](t, a).addr

	rec, err := os.ReadFile(keyFile + ".txt")
	require.NoError(t, err, "the TXT record to publish is written beside the new key")
	require.True(t, strings.HasPrefix(string(rec), "s2026._domainkey.city.tsu.example.jp. IN TXT \"v=DKIM1; k=rsa; p="), string(rec))
	txt := strings.TrimSuffix(strings.TrimSpace(string(rec)[strings.Index(string(rec), `"`)+1:]), `"`)

	msg := "From: 総務課 <soumu@city.tsu.example.jp>\r\nTo: someone@internet.example\r\nSubject: 会議のご案内\r\n" +
		"Date: Thu, 26 Nov 2026 10:00:00 +0900\r\nMessage-ID: <out1@city.tsu.example.jp>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=UTF-8\r\n\r\n明日10時から会議です。\r\n"
	require.NoError(t, smtp.SendMail(addr, nil, "soumu@city.tsu.example.jp", []string{"someone@internet.example"}, []byte(msg)))

	spoof := strings.ReplaceAll(msg, "soumu@city.tsu.example.jp", "kikaku@city.ise.example.jp")
	err = smtp.SendMail(addr, nil, "kikaku@city.ise.example.jp", []string{"someone@internet.example"}, []byte(spoof))
	require.Error(t, err, "tenant tsu may not send as tenant ise's domain")
	assert.Contains(t, err.Error(), "55")

	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	got := hop.Wait(wctx, 1)
	require.Len(t, got, 1)
	host, _, err := net.SplitHostPort(got[0].Client)
	require.NoError(t, err)
	assert.Equal(t, "127.0.1.254", host, "delivered from the tenant's egress address")
	assert.Contains(t, string(got[0].Data), "DKIM-Signature:")

	vs, err := dkim.VerifyWithOptions(bytes.NewReader(got[0].Data), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain == "s2026._domainkey.city.tsu.example.jp" {
				return []string{txt}, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: domain, IsNotFound: true}
		},
	})
	require.NoError(t, err)
	require.Len(t, vs, 1)
	assert.NoError(t, vs[0].Err)
	assert.Equal(t, "city.tsu.example.jp", vs[0].Domain)
	assert.Len(t, hop.Messages(), 1, "the refused message never left")
}
