package mailrelay_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"os"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
)

const dkimData = "../../shared/testdata/dkim-dkimpy/data/"

func readDKIM(t *testing.T, name string) string {
	b, err := os.ReadFile(dkimData + name)
	if os.IsNotExist(err) {
		t.Skip("dkimpy test data not found")
	}
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

// authDNS serves SPF and DMARC for the test domains and the dkimpy keys.
func authDNS(t *testing.T) *mailrelaytest.DNS {
	return &mailrelaytest.DNS{TXT: map[string][]string{
		"internet.example":                         {"v=spf1 ip4:127.0.0.9 -all"},
		"a.example.jp":                             {"v=spf1 ip4:127.0.1.0/24 -all"},
		"_dmarc.a.example.jp":                      {"v=DMARC1; p=none"},
		"strict.example":                           {"v=spf1 ip4:127.0.0.9 -all"},
		"_dmarc.strict.example":                    {"v=DMARC1; p=reject"},
		"lax.example":                              {"v=spf1 -all"},
		"_dmarc.lax.example":                       {"v=DMARC1; p=quarantine"},
		"brisbane._domainkey.football.example.com": {"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
		"test._domainkey.football.example.com":     {readDKIM(t, "test.txt")},
		"_dmarc.football.example.com":              {"v=DMARC1; p=reject"},
	}}
}

func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

func TestSenderAuthentication(t *testing.T) {
	signed := crlf(readDKIM(t, "rfc6376.signed.msg") + "\n")
	tests := []struct {
		name       string
		src, from  string
		body       string
		reportOnly bool
		code       int
		ar         []string // substrings of Authentication-Results
		rule       string
	}{
		{"spf pass, dmarc none", "127.0.0.9", "x@internet.example", msg("x@internet.example", "s1"), false, 250,
			[]string{"spf=pass smtp.mailfrom=internet.example", "dkim=none", "dmarc=none"}, ""},
		{"spf fail, no dmarc", "127.0.0.10", "x@internet.example", msg("x@internet.example", "s2"), false, 250,
			[]string{"spf=fail"}, ""},
		{"dkim pass aligned (RFC 6376/8463 message)", "127.0.0.10", "joe@football.example.com", signed, false, 250,
			[]string{"dkim=pass header.d=football.example.com", "dmarc=pass"}, ""},
		{"dmarc reject", "127.0.0.10", "x@strict.example", msg("x@strict.example", "s3"), false, 550, nil, "mail-dmarc"},
		{"dmarc quarantine delivered and reported", "127.0.0.9", "x@lax.example", msg("x@lax.example", "s4"), false, 250,
			[]string{"dmarc=fail policy.dmarc=quarantine"}, "mail-dmarc"},
		{"spoof of tenant domain with p=none", "127.0.0.9", "ceo@a.example.jp", msg("ceo@a.example.jp", "s5"), false, 550, nil, "mail-dmarc"},
		{"spoof in report-only mode", "127.0.0.9", "ceo@a.example.jp", msg("ceo@a.example.jp", "s6"), true, 250,
			[]string{"dmarc=fail"}, "mail-dmarc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *mailrelay.Config) {
				c.Auth.Resolver = authDNS(t)
				c.ReportOnly = tc.reportOnly
			})
			cl := dial(t, f.addr, tc.src)
			cl.expect("EHLO mx.internet.example", 250)
			code, text := cl.sendMail(tc.from, []string{"u@a.example.jp"}, strings.ReplaceAll(tc.body, "\r\n.", "\r\n.."))
			require.Equal(t, tc.code, code, text)
			evs := f.events.dataset("mail.message")
			require.Len(t, evs, 1)
			assert.Equal(t, tc.rule, evs[0].Verdict.Rule)
			if tc.reportOnly {
				assert.Equal(t, detect.ActionReport, evs[0].Verdict.Action)
			}
			if code != 250 {
				assert.Equal(t, detect.ActionBlock, evs[0].Verdict.Action)
				return
			}
			m := f.sinkA.Wait(waitCtx(t), 1)
			require.Len(t, m, 1)
			hdr, _, _ := bytes.Cut(m[0].Data, []byte("\r\n\r\n"))
			assert.Contains(t, string(hdr), "Authentication-Results: relay.seccloud.test;")
			for _, s := range tc.ar {
				assert.Contains(t, string(hdr), s)
			}
		})
	}
}

func TestDKIMSigningOutbound(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	f := newFixture(t, func(c *mailrelay.Config) {
		c.Auth.SigningKeys = []mailrelay.DKIMKey{{Domain: "a.example.jp", Selector: "sel", Signer: priv}}
	})
	cl := dial(t, f.addr, "127.0.1.5")
	cl.expect("EHLO pc.a.example.jp", 250)
	code, text := cl.sendMail("staff@a.example.jp", []string{"x@internet.example"}, msg("staff@a.example.jp", "signed"))
	require.Equal(t, 250, code, text)
	m := f.smarthost.Wait(waitCtx(t), 1)
	require.Len(t, m, 1)
	require.Contains(t, string(m[0].Data), "DKIM-Signature: ")
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(m[0].Data), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		require.Equal(t, "sel._domainkey.a.example.jp", name)
		return []string{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)}, nil
	}})
	require.NoError(t, err)
	require.Len(t, vs, 1)
	assert.NoError(t, vs[0].Err)
	assert.Equal(t, "a.example.jp", vs[0].Domain)
}
