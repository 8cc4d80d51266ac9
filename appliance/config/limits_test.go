package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The connection and sender caps and the challenge's work: zero is off, a
// value in range is kept, out of range is refused with the key's name.
func TestCapsNotNegative(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte("version: 1\nlisten: {console: 127.0.0.1:0}\nproxy: {tenant_conns: 200}\nmail: {outbound_recipients_per_hour: 500}\nwaf: {ddos: {challenge_work: 16}}\n"))
	require.NoError(t, err)
	assert.Equal(t, 200, cfg.Proxy.TenantConns)
	assert.Equal(t, 500, cfg.Mail.OutboundRecipientsPerHour)
	assert.Equal(t, 16, cfg.WAF.DDoS.ChallengeWork)
	for key, doc := range map[string]string{
		"proxy.tenant_conns":                "proxy: {tenant_conns: -1}\n",
		"mail.outbound_recipients_per_hour": "mail: {outbound_recipients_per_hour: -5}\n",
		"waf.ddos.challenge_work":           "waf: {ddos: {challenge_work: 25}}\n",
		"waf.ddos.global_in_flight":         "waf: {ddos: {global_in_flight: -1}}\n",
		"waf.ddos.disaster_reserve":         "waf: {ddos: {disaster_reserve: 1}}\n",
	} {
		_, err := Parse("c.yaml", []byte("version: 1\nlisten: {console: 127.0.0.1:0}\n"+doc))
		require.Error(t, err, key)
		assert.Contains(t, err.Error(), key)
	}
}
