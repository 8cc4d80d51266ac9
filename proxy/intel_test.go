package proxy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/tenant"
)

func TestIntelDecider(t *testing.T) {
	inds := []intel.Indicator{
		{Kind: intel.KindDomain, Value: "cc.example", Source: "c2.txt:1"},
		{Kind: intel.KindAddr, Value: "192.0.2.0/24", Source: "c2.txt:2"},
		{Kind: intel.KindURL, Value: "http://files.example/mal/", Source: "c2.txt:3"},
	}
	set, err := intel.Build(inds)
	require.NoError(t, err)
	lists, err := proxy.NewLists(proxy.ListConfig{Global: proxy.Rules{Block: []string{"ads.example"}}})
	require.NoError(t, err)
	d := proxy.IntelDecider{Intel: intel.NewLive(set), Next: lists}
	enforce := &tenant.Tenant{ID: "a"}
	report := &tenant.Tenant{ID: "b", Policy: tenant.Policy{ReportOnly: true}}

	for _, tc := range []struct {
		name   string
		r      proxy.Request
		action detect.Action
		rule   string
	}{
		{"domain", proxy.Request{Tenant: enforce, Method: "GET", Host: "www.cc.example", URL: "http://www.cc.example/"}, detect.ActionBlock, proxy.RuleIntel},
		{"connect to domain", proxy.Request{Tenant: enforce, Method: "CONNECT", Host: "cc.example", Port: 443, URL: "cc.example:443"}, detect.ActionBlock, proxy.RuleIntel},
		{"address", proxy.Request{Tenant: enforce, Method: "CONNECT", Host: "192.0.2.77", Port: 443, URL: "192.0.2.77:443"}, detect.ActionBlock, proxy.RuleIntel},
		{"url prefix", proxy.Request{Tenant: enforce, Method: "GET", Host: "files.example", Path: "/mal/x.exe", URL: "http://files.example/mal/x.exe"}, detect.ActionBlock, proxy.RuleIntel},
		{"other url on same host", proxy.Request{Tenant: enforce, Method: "GET", Host: "files.example", Path: "/ok", URL: "http://files.example/ok"}, detect.ActionNone, ""},
		{"report-only tenant", proxy.Request{Tenant: report, Method: "GET", Host: "cc.example", URL: "http://cc.example/"}, detect.ActionReport, proxy.RuleIntel},
		{"falls through to lists", proxy.Request{Tenant: enforce, Method: "GET", Host: "ads.example", URL: "http://ads.example/"}, detect.ActionBlock, proxy.RuleBlockList},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := d.Decide(context.Background(), tc.r)
			require.NoError(t, err)
			assert.Equal(t, tc.action, v.Action)
			assert.Equal(t, tc.rule, v.Rule)
		})
	}

	// A reload takes effect at once.
	empty, err := intel.Build(nil)
	require.NoError(t, err)
	d.Intel.Store(empty)
	v, err := d.Decide(context.Background(), proxy.Request{Tenant: enforce, Method: "GET", Host: "cc.example", URL: "http://cc.example/"})
	require.NoError(t, err)
	assert.Equal(t, detect.ActionNone, v.Action)
}
