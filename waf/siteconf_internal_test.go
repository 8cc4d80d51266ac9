package waf

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSiteConfIDN(t *testing.T) {
	a, b := &siteConfig{}, &siteConfig{}
	s := &Server{sites: map[string]*siteConfig{"www.xn--7sto6a74d.jp": a}, defSite: b}
	for _, h := range []string{"www.xn--7sto6a74d.jp", "www.市役所.jp", "WWW.市役所.JP", "www.XN--7STO6A74D.jp", "www.市役所.jp."} {
		assert.Same(t, a, s.siteConf(h), h)
	}
	for _, h := range []string{"www.xn--7sto6a74e.jp", "other.jp", "ＷＷＷ", ""} {
		assert.Same(t, b, s.siteConf(h), h)
	}
	k, err := normSiteKey("*.防災.ＪＰ")
	assert.NoError(t, err)
	assert.Equal(t, "*.xn--eox771f.jp", k)
}
