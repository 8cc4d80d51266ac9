package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/notify"
	"github.com/jichitai/seccloud/detect/notify/notifytest"
	"github.com/jichitai/seccloud/dnsres/dnsrestest"
)

func TestEscalationDelayDefault(t *testing.T) {
	assert.Equal(t, notify.DefaultEscalateAfter, config.DefaultEscalationDelay)
}

// TestCCIncidentNotifiedAndAcknowledged drives the in-process appliance over
// loopback with real clients only: a terminal of tenant A (127.0.1.5)
// resolves cc.example through the appliance's DNS resolver (forwarding to a
// local authority that answers 127.0.0.77; tenant A is report-only, so the
// answer is passed and logged), then fetches http://127.0.0.77/ through the
// appliance's proxy. The default rule seccloud-cc-resolve-connect must open
// one level-3 incident, the notifier must mail tenant A's contact through
// the local SMTP sink, and POSTing the mail's link must acknowledge it.
func TestCCIncidentNotifiedAndAcknowledged(t *testing.T) {
	cc, err := net.Listen("tcp", "127.0.0.77:0")
	if err != nil {
		t.Skipf("cannot bind 127.0.0.77: %v", err)
	}
	ccSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "beacon ok")
	})}
	go func() { _ = ccSrv.Serve(cc) }()
	t.Cleanup(func() { ccSrv.Close() })

	auth := dnsrestest.NewAuthority(t, "127.0.0.1:0", map[string]string{
		"cc.example.": "$TTL 300\n@ IN SOA ns.cc.example. h.cc.example. 1 3600 600 86400 300\n" +
			"@ IN NS ns.cc.example.\nns IN A 127.0.0.53\n@ IN A 127.0.0.77\n",
	})
	smtp, err := notifytest.NewSMTPSink(nil)
	require.NoError(t, err)
	t.Cleanup(func() { smtp.Close() })

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cc-domains.txt"), []byte("# C&C\ncc.example\n"), 0o600))
	cfgPath := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`version: 1
data_dir: data
listen: {console: "127.0.0.1:0", dns: "127.0.0.1:0", proxy: "127.0.0.1:0"}
functions: {mail: false, waf: false}
dns: {upstreams: ["%s"]}
intel: {domains: [cc-domains.txt]}
notify: {smtp: "%s", from: soc@cloud.example}
tenants:
  - id: aoba
    name: あおば市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    policy: {report_only: true}
    contacts:
      - {name: 情報政策課, email: security@aoba.example}
      - {name: 副課長, email: deputy@aoba.example}
`, auth.Addr, smtp.Addr)), 0o600))

	a, err := New(Options{ConfigPath: cfgPath, Log: io.Discard})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, 10*time.Second) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	base := "http://" + a.ConsoleAddr()
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	key, err := os.ReadFile(filepath.Join(dir, "data", "notify.key"))
	require.NoError(t, err)
	assert.Len(t, key, 32)
	st, err := os.Stat(filepath.Join(dir, "data", "notify.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	dnsAddr := a.funcs[1].svc.(*dnsService).srv.Addr().String()
	proxyAddr := a.funcs[0].svc.(*proxyService).addr
	terminal := &net.UDPAddr{IP: net.ParseIP("127.0.1.5")}

	// 1. the terminal resolves the C&C name.
	c := &dns.Client{Net: "udp", Dialer: &net.Dialer{LocalAddr: terminal}, Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("cc.example.", dns.TypeA)
	r, _, err := c.Exchange(m, dnsAddr)
	require.NoError(t, err)
	require.Equal(t, dns.RcodeSuccess, r.Rcode)
	require.Len(t, r.Answer, 1)
	require.Equal(t, "127.0.0.77", r.Answer[0].(*dns.A).A.String())

	// 2. it connects to the address through the proxy.
	pu, _ := url.Parse("http://" + proxyAddr)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:       http.ProxyURL(pu),
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.1.5")}}).DialContext,
	}}
	resp, err := hc.Get("http://" + cc.Addr().String() + "/beacon")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))

	// 3. a level-3 incident, read through the console's API.
	var serious incident.Incident
	require.Eventually(t, func() bool {
		for _, inc := range listIncidents(t, base) {
			if inc.Rule == "seccloud-cc-resolve-connect" && inc.Severity == detect.SeveritySucceeded {
				serious = inc
				return true
			}
		}
		return false
	}, 15*time.Second, 50*time.Millisecond)
	assert.Equal(t, "aoba", serious.Tenant)
	assert.Equal(t, "127.0.1.5", serious.Terminal)

	// 4. the first contact is mailed a link; POSTing it acknowledges.
	var mail notifytest.Mail
	require.Eventually(t, func() bool {
		for _, ml := range smtp.Mails() {
			if len(ml.To) == 1 && ml.To[0] == "security@aoba.example" && strings.Contains(ml.Text(), serious.ID) {
				mail = ml
				return true
			}
		}
		return false
	}, 15*time.Second, 50*time.Millisecond)
	link := regexp.MustCompile(regexp.QuoteMeta(base+"/ack?t=") + `[A-Za-z0-9_\-.~%]+`).FindString(mail.Text())
	require.NotEmpty(t, link, "no ack link in:\n%s", mail.Text())
	lu, err := url.Parse(link)
	require.NoError(t, err)
	resp, err = http.PostForm(base+"/ack", url.Values{"t": {lu.Query().Get("t")}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	found := false
	for _, inc := range listIncidents(t, base) {
		if inc.ID == serious.ID {
			found = true
			assert.Equal(t, incident.StateAcknowledged, inc.State)
			var kinds []string
			for _, e := range inc.Timeline {
				kinds = append(kinds, e.Kind)
			}
			assert.Subset(t, kinds, []string{incident.KindOpened, incident.KindNotify, incident.KindAck})
		}
	}
	assert.True(t, found)
}

// TestReloadBadIntelOrRules: a reload naming an indicator file with a bad
// line, or a rules directory with a bad rule, is refused with file:line and
// the running intel set and rules stay; a good reload swaps both.
func TestReloadBadIntelOrRules(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "rules"), 0o750))
	write("intel.txt", "cc.example\n")
	write("rules/ok.yml", "title: t\nid: x-ok\nlogsource: {product: seccloud, service: dns}\ndetection:\n  s: {dns.question.name: a.example}\n  condition: s\nlevel: low\n")
	conf := func(extra string) string {
		return "version: 1\ndata_dir: data\nlisten: {console: \"127.0.0.1:0\"}\nintel: {domains: [intel.txt]}\n" + extra
	}
	write("c.yaml", conf(""))
	a, err := New(Options{ConfigPath: filepath.Join(dir, "c.yaml"), Log: io.Discard})
	require.NoError(t, err)
	defer func() {
		a.ln.Close()
		require.NoError(t, a.events.close(context.Background()))
	}()
	det := a.events.det
	_, ok := det.intel.Load().Domain("www.cc.example")
	require.True(t, ok)
	defaults := det.engine.Rules()

	write("intel.txt", "cc.example\nthis is bad\n")
	res, err := a.Reload("test")
	require.Error(t, err)
	require.False(t, res.OK)
	assert.Contains(t, strings.Join(res.Errors, "\n"), "intel.txt:2:")
	_, ok = det.intel.Load().Domain("cc.example")
	assert.True(t, ok, "old intel set kept")

	write("intel.txt", "other.example\n")
	write("c.yaml", conf("detect: {rules_dir: rules}\n"))
	write("rules/bad.yml", "title: b\nid: x-bad\nlogsource: {product: seccloud}\ndetection:\n  condition: nope\n")
	res, err = a.Reload("test")
	require.Error(t, err)
	assert.Contains(t, strings.Join(res.Errors, "\n"), "bad.yml")
	assert.Same(t, defaults, det.engine.Rules(), "old rules kept")
	_, ok = det.intel.Load().Domain("cc.example")
	assert.True(t, ok, "old intel set kept")

	require.NoError(t, os.Remove(filepath.Join(dir, "rules", "bad.yml")))
	res, err = a.Reload("test")
	require.NoError(t, err, "%v", res.Errors)
	assert.Equal(t, 1, det.engine.Rules().Len())
	_, ok = det.intel.Load().Domain("other.example")
	assert.True(t, ok)
}

func listIncidents(t *testing.T, base string) []incident.Incident {
	t.Helper()
	resp, err := http.Get(base + "/api/incidents")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var list []incident.Incident
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	return list
}
