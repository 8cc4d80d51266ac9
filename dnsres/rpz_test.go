package dnsres_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/dnsres"
)

const testRPZ = `$TTL 300
@ IN SOA localhost. root.localhost. 1 3600 600 86400 60
@ IN NS localhost.
bad.example.test        CNAME .
*.bad.example.test      CNAME .
nodata.example.test     CNAME *.
www.example.test        CNAME rpz-passthru.
c2c.example.test        CNAME rpz-passthru.
drop.example.test       CNAME rpz-drop.
tcp.example.test        CNAME rpz-tcp-only.
warn.example.test       A     192.0.2.200
warn.example.test       AAAA  2001:db8::200
redirect.example.test   CNAME www.example.test.
32.1.2.0.192.rpz-ip     CNAME .
ns.evil.rpz-nsdname     CNAME .
`

func TestParseRPZ(t *testing.T) {
	z, err := dnsres.ParseRPZ(strings.NewReader(testRPZ), "rpz.local", "test.rpz")
	require.NoError(t, err)
	assert.Equal(t, "rpz.local", z.Name)
	assert.Equal(t, 9, z.Rules)
	assert.Equal(t, 2, z.Ignored, "rpz-ip and rpz-nsdname triggers are skipped")
	var p dnsres.RPZ
	p.Set(z)
	for name, want := range map[string]dnsres.RPZAction{
		"bad.example.test": dnsres.RPZNXDomain, "a.b.bad.example.test.": dnsres.RPZNXDomain,
		"NoData.Example.Test.": dnsres.RPZNoData, "www.example.test": dnsres.RPZPassthru,
		"drop.example.test": dnsres.RPZDrop, "tcp.example.test": dnsres.RPZTCPOnly,
		"warn.example.test": dnsres.RPZLocalData,
	} {
		r := p.Match(name)
		require.NotNil(t, r, name)
		assert.Equal(t, want, r.Action, name)
	}
	assert.Nil(t, p.Match("example.test"))
	assert.Nil(t, p.Match("x.warn.example.test"), "an exact trigger does not cover subdomains")
	assert.Len(t, p.Match("warn.example.test").Data, 2)

	for name, text := range map[string]string{
		"syntax":  "bad.example A not-an-address\n",
		"outside": "$ORIGIN other.\nx CNAME .\n",
		"all":     "* CNAME .\n",
		"twice":   "x CNAME .\nx CNAME *.\n",
	} {
		_, err := dnsres.ParseRPZ(strings.NewReader(text), "rpz", "f.rpz")
		var ze *dnsres.ZoneError
		require.ErrorAs(t, err, &ze, name)
		assert.Equal(t, "f.rpz", ze.File)
	}
	_, err = dnsres.ParseRPZ(strings.NewReader("ok CNAME .\n\nbroken IN A 999.1.1.1\n"), "rpz", "f.rpz")
	assert.ErrorContains(t, err, "f.rpz:3:")
}

func withRPZ(p *dnsres.RPZ, tenants map[string]dnsres.TenantLists) fixtureOpt {
	return func(_ *dnsres.CacheConfig, pc *dnsres.PolicyConfig) {
		pc.RPZ = p
		pc.Tenants = tenants
	}
}

func TestRPZActionsThroughServer(t *testing.T) {
	z, err := dnsres.ParseRPZ(strings.NewReader(testRPZ), "rpz.local", "test.rpz")
	require.NoError(t, err)
	var p dnsres.RPZ
	p.Set(z)
	f := newFixture(t, withRPZ(&p, map[string]dnsres.TenantLists{
		"aoba": {Allow: []string{"ok.bad.example.test"}, Deny: []string{"alias.example.test"}},
	}))

	r := f.query(t, "127.0.1.5", "udp", q("x.bad.example.test.", dns.TypeA))
	assert.Equal(t, dns.RcodeNameError, r.Rcode)
	r = f.query(t, "127.0.1.5", "udp", q("nodata.example.test.", dns.TypeA))
	assert.Equal(t, dns.RcodeSuccess, r.Rcode)
	assert.Empty(t, r.Answer)
	r = f.query(t, "127.0.1.5", "udp", q("warn.example.test.", dns.TypeAAAA))
	require.Len(t, r.Answer, 1)
	assert.Equal(t, "2001:db8::200", r.Answer[0].(*dns.AAAA).AAAA.String())
	assert.Equal(t, "warn.example.test.", r.Answer[0].Header().Name)
	r = f.query(t, "127.0.1.5", "udp", q("redirect.example.test.", dns.TypeA))
	require.Len(t, r.Answer, 1)
	assert.Equal(t, "www.example.test.", r.Answer[0].(*dns.CNAME).Target)
	r = f.query(t, "127.0.1.5", "udp", q("tcp.example.test.", dns.TypeA))
	assert.True(t, r.Truncated, "tcp-only: TC=1 over UDP")
	// c2c.example.test is on the intel list, but the RPZ passes it through.
	r = f.query(t, "127.0.1.5", "udp", q("c2c.example.test.", dns.TypeA))
	require.Len(t, r.Answer, 1)
	assert.Equal(t, "192.0.2.66", r.Answer[0].(*dns.A).A.String())
	// rpz-drop: no answer.
	_, err = f.exchange("127.0.1.5", "udp", q("drop.example.test.", dns.TypeA))
	assert.Error(t, err, "dropped")

	// Tenant lists: aoba allows ok.bad.example.test (over the RPZ) and denies alias.
	r = f.query(t, "127.0.1.5", "udp", q("ok.bad.example.test.", dns.TypeA))
	assert.Equal(t, dns.RcodeNameError, r.Rcode, "the upstream has no such name: resolved, not blocked")
	r = f.query(t, "127.0.1.5", "udp", q("alias.example.test.", dns.TypeA))
	require.Len(t, r.Answer, 1)
	assert.Equal(t, "127.0.0.99", r.Answer[0].(*dns.A).A.String(), "sinkholed")

	// Report-only tenant midori: the RPZ only reports.
	r = f.query(t, "127.0.2.9", "udp", q("x.bad.example.test.", dns.TypeA))
	assert.Equal(t, dns.RcodeNameError, r.Rcode)
	r = f.query(t, "127.0.2.9", "udp", q("warn.example.test.", dns.TypeA))
	assert.Equal(t, dns.RcodeNameError, r.Rcode, "resolved for real: the upstream has no such name")

	ev := f.sink.Wait(10, 2*time.Second) // the dropped query has no answer and no event
	require.Len(t, ev, 10)
	byName := map[string]detect.Event{}
	for _, e := range ev {
		byName[e.Tenant+" "+e.DNS.QName] = e
	}
	e := byName["aoba x.bad.example.test."]
	assert.Equal(t, "dns-rpz", e.Verdict.Rule)
	assert.Equal(t, detect.ActionBlock, e.Verdict.Action)
	assert.Equal(t, "127.0.1.5", e.Terminal)
	assert.Equal(t, detect.ActionSinkhole, byName["aoba warn.example.test."].Verdict.Action)
	assert.Equal(t, "dns-tenant-deny", byName["aoba alias.example.test."].Verdict.Rule)
	assert.Equal(t, detect.ActionNone, byName["aoba c2c.example.test."].Verdict.Action)
	assert.Equal(t, detect.ActionNone, byName["aoba ok.bad.example.test."].Verdict.Action)
	assert.Equal(t, detect.ActionReport, byName["midori warn.example.test."].Verdict.Action)
	assert.Equal(t, detect.SeveritySucceeded, byName["midori warn.example.test."].Severity)
}

func TestRPZLoadKeepsPreviousVersion(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.rpz")
	require.NoError(t, os.WriteFile(a, []byte("evil.test CNAME .\n"), 0o644))
	var p dnsres.RPZ
	require.NoError(t, p.Load([]string{a}))
	require.NotNil(t, p.Match("evil.test"))
	require.NoError(t, os.WriteFile(a, []byte("evil.test CNAME .\nbroken A 1.2.3\n"), 0o644))
	err := p.Load([]string{a, filepath.Join(dir, "missing.rpz")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "a.rpz:2:")
	assert.Contains(t, err.Error(), "missing.rpz")
	assert.NotNil(t, p.Match("evil.test"), "previous version kept")
	assert.Len(t, p.Zones(), 1)
}

func FuzzParseRPZ(f *testing.F) {
	f.Add(testRPZ)
	f.Add("x CNAME .\n*.y CNAME *.\nz A 192.0.2.1\n")
	f.Add("$ORIGIN a.\n@ SOA a. b. 1 2 3 4 5\nq.a. CNAME rpz-drop.\n")
	f.Fuzz(func(t *testing.T, text string) {
		z, err := dnsres.ParseRPZ(strings.NewReader(text), "rpz", "fuzz.rpz")
		if err != nil {
			return
		}
		var p dnsres.RPZ
		p.Set(z)
		for _, n := range []string{"x", "a.y", "q", "z.rpz", ""} {
			if r := p.Match(n); r != nil && r.Action == 0 {
				t.Fatalf("rule without action: %+v", r)
			}
		}
	})
}
