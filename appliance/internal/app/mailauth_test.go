package app

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/dnsres/dnsrestest"
)

// mail.auth: off unless enabled; with a resolver, the SPF/DMARC lookups
// go to that server (a local authority here), not to the system's.
func TestMailAuthResolver(t *testing.T) {
	assert.Nil(t, mailAuth(config.MailAuth{Resolver: "127.0.0.1:53"}).Resolver, "off unless enabled")
	assert.NotNil(t, mailAuth(config.MailAuth{Enabled: true}).Resolver, "system resolver")

	auth := dnsrestest.NewAuthority(t, "127.0.0.1:0", map[string]string{
		"city.example.jp.": "$TTL 300\n@ IN SOA ns h 1 3600 600 86400 300\n@ IN NS ns\nns IN A 127.0.0.53\n" +
			"_dmarc IN TXT \"v=DMARC1; p=reject\"\n",
	})
	r := mailAuth(config.MailAuth{Enabled: true, Resolver: auth.Addr.String()}).Resolver
	require.NotNil(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	txt, err := r.LookupTXT(ctx, "_dmarc.city.example.jp")
	require.NoError(t, err)
	assert.Equal(t, []string{"v=DMARC1; p=reject"}, txt)
	assert.Positive(t, auth.Queries())
}
