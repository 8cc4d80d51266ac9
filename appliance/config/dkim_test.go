package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMailDKIMValidation(t *testing.T) {
	base := `version: 1
listen: {console: "127.0.0.1:0"}
tenants:
  - id: tsu
    name: 津市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    mail_domains: [city.tsu.example.jp, 津市.example]
mail:
  dkim:
`
	c, err := Parse("t.yaml", []byte(base+`    - {domain: city.tsu.example.jp, selector: s2026, key_file: keys/tsu.pem}
    - {domain: Mail.City.Tsu.Example.JP., selector: a.b, key_file: keys/sub.pem}
    - {domain: xn--7stv05a.example, selector: s1, key_file: keys/idn.pem}
`))
	require.NoError(t, err)
	require.Len(t, c.Mail.DKIM, 3)
	assert.Equal(t, "keys/tsu.pem", c.Mail.DKIM[0].KeyFile)

	_, err = Parse("t.yaml", []byte(base+`    - {domain: other.example.jp, selector: s1, key_file: k.pem}
    - {domain: city.tsu.example.jp, selector: "bad selector", key_file: k.pem}
    - {domain: city.tsu.example.jp, selector: s1}
    - {domain: city.tsu.example.jp, selector: s1, key_file: k2.pem}
    - {selector: s1, key_file: k.pem}
`))
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, `mail.dkim[0].domain: "other.example.jp" is not a tenant's mail domain`)
	assert.Contains(t, msg, `mail.dkim[1].selector: want DNS labels`)
	assert.Contains(t, msg, `mail.dkim[2].key_file: required`)
	assert.Contains(t, msg, `mail.dkim[3].selector: s1._domainkey.city.tsu.example.jp is configured twice`)
	assert.Contains(t, msg, `mail.dkim[4].domain: required`)
}
