package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
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

// Config.Intel checks the addresses a name resolves to: a name on no list
// that points at a listed address is refused (and its address is in the
// event, for the C&C correlations); a report-only tenant is reported and
// served; the check follows a reload.
func TestResolvedAddressIntel(t *testing.T) {
	o := origin(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	_, port, _ := net.SplitHostPort(o.Listener.Addr().String())
	set, err := intel.Build([]intel.Indicator{{Kind: intel.KindAddr, Value: "127.0.0.1/32", Source: "c2-addrs.txt:1"}})
	require.NoError(t, err)
	live := intel.NewLive(set)
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	e := startProxy(t, proxy.Config{Intel: live, Resolver: fakeResolver{"fresh.example": lo}})
	u := "http://fresh.example:" + port + "/"

	resp, body := get(t, e.client(termA), u)
	assert.Equal(t, 403, resp.StatusCode, body)
	ev := e.sink.waitEvents(t, 1)[0]
	assert.Equal(t, detect.ActionBlock, ev.Verdict.Action)
	assert.Equal(t, proxy.RuleIntel, ev.Verdict.Rule)
	assert.Contains(t, ev.Verdict.Reason, "fresh.example resolves to 127.0.0.1")
	assert.Equal(t, "127.0.0.1", ev.Dest.Addr().String())

	resp, body = get(t, e.client(termC), u) // report-only tenant
	assert.Equal(t, 200, resp.StatusCode, body)
	ev = e.sink.waitEvents(t, 2)[1]
	assert.Equal(t, detect.ActionReport, ev.Verdict.Action)
	assert.Equal(t, proxy.RuleIntel, ev.Verdict.Rule)

	c := e.dial(t, termA) // a tunnel by name is checked the same way
	fmt.Fprintf(c, "CONNECT fresh.example:443 HTTP/1.1\r\nHost: fresh.example:443\r\n\r\n")
	cr, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
	require.NoError(t, err)
	assert.Equal(t, 403, cr.StatusCode)
	ev = e.sink.waitEvents(t, 3)[2]
	assert.Equal(t, proxy.RuleIntel, ev.Verdict.Rule)

	resp, body = get(t, e.client(termA), "http://127.0.0.1:"+port+"/")
	assert.Equal(t, 200, resp.StatusCode, "a literal address is the Decider's (IntelDecider) to judge: %s", body)

	empty, err := intel.Build(nil)
	require.NoError(t, err)
	live.Store(empty)
	resp, body = get(t, e.client(termA), u)
	assert.Equal(t, 200, resp.StatusCode, "after the reload: %s", body)
}
