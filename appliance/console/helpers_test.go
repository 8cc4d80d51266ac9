package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/notify/notifytest"
	"github.com/jichitai/seccloud/detect/rules"
	"github.com/jichitai/seccloud/detect/store"
	"github.com/jichitai/seccloud/tenant"
)

// cheapArgon2 keeps tests fast; production uses DefaultArgon2.
var cheapArgon2 = Argon2Params{Time: 1, Memory: 64, Threads: 1, KeyLen: 32, SaltLen: 16}

const testPassword = "correct horse battery"

// env is a console over real incident, store and tenant packages, served
// on loopback.
type env struct {
	t     testing.TB
	c     *Console
	srv   *httptest.Server
	inc   *incident.Manager
	st    *store.Store
	acc   *Accounts
	audit *Audit
	ids   map[string][]string // tenant → incident ids
	quar  *memQuarantine
	reqs  *Requests
	sink  *notifytest.SMTPSink
	purge *fakePurger
	dir   string
}

func testTenants(t testing.TB) *tenant.Live {
	snap, err := tenant.NewSnapshot([]tenant.Tenant{
		{ID: "aoba", Name: "あおば市", NameEN: "Aoba City", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
			MailDomains: []string{"aoba.example.jp"}, EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
			Sites:    []tenant.Site{{Host: "www.aoba.example.jp", Origins: []string{"http://127.0.1.80:8080"}}},
			Contacts: []tenant.Contact{{Name: "あおば市 情報政策課", Email: "security@aoba.example.jp", Phone: "+81-59-000-0001"}}},
		{ID: "midori", Name: "みどり町", NameEN: "Midori Town", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.2.0/24")},
			MailDomains: []string{"midori.example.jp"}, EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
			Sites:    []tenant.Site{{Host: "www.midori.example.jp", Origins: []string{"http://127.0.2.80:8080"}}},
			Contacts: []tenant.Contact{{Name: "みどり町 総務課", Email: "soumu@midori.example.jp"}}},
	}, tenant.Options{})
	require.NoError(t, err)
	return tenant.NewLive(snap)
}

func testRule(t testing.TB, id, title string, success bool) *rules.Rule {
	src := "id: " + id + "\ntitle: " + title + "\n"
	if success {
		src += "seccloud: {success: true}\n"
	}
	src += "detection: {s: {event.module: proxy}, condition: s}\n"
	rs, err := rules.Parse("t.yml", strings.NewReader(src))
	require.NoError(t, err)
	return rs[0]
}

func newEnv(t testing.TB, mod func(*Config)) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, ids: map[string][]string{}, dir: dir}
	var err error
	e.inc, err = incident.Open(incident.Config{Dir: filepath.Join(dir, "incidents"), NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { e.inc.Close() })
	e.st, err = store.Open(store.Config{Dir: filepath.Join(dir, "events")})
	require.NoError(t, err)
	t.Cleanup(func() { e.st.Close() })
	e.acc, err = OpenAccounts(AccountsConfig{Path: filepath.Join(dir, AccountsFile), Argon2: cheapArgon2})
	require.NoError(t, err)
	e.audit, err = OpenAudit(filepath.Join(dir, AuditFile))
	require.NoError(t, err)
	t.Cleanup(func() { e.audit.Close() })
	require.NoError(t, e.acc.Add("soc", "", RoleOperator, testPassword))
	require.NoError(t, e.acc.Add("aoba-admin", "aoba", RoleAdmin, testPassword))
	require.NoError(t, e.acc.Add("aoba-view", "aoba", RoleViewer, testPassword))
	require.NoError(t, e.acc.Add("midori-admin", "midori", RoleAdmin, testPassword))

	now := time.Now()
	var evs []detect.Event
	for _, tn := range []string{"aoba", "midori"} {
		for i, r := range []*rules.Rule{testRule(t, "cc-"+tn, "C&C通信 ("+tn+")", true), testRule(t, "scan-"+tn, "スキャン", false)} {
			term := "127.0." + map[string]string{"aoba": "1", "midori": "2"}[tn] + "." + string(rune('5'+i))
			ev := detect.Event{Time: now.Add(-time.Duration(i+1) * time.Minute), Module: "proxy", Tenant: tn, Terminal: term,
				Client: netip.MustParseAddrPort(term + ":40000"), URL: "http://198.51.100.66/gate.php", DestDomain: "cc.example",
				Dest: netip.MustParseAddrPort("198.51.100.66:80"), Severity: detect.Severity(3 - 2*i),
				Verdict: detect.Verdict{Action: detect.ActionAllow}}
			if i == 1 {
				ev.Verdict.Action = detect.ActionBlock
			}
			evs = append(evs, ev)
			id, err := e.inc.Add(&rules.Alert{Rule: r, Tenant: tn, Terminal: term, Count: 1, First: ev.Time, Last: ev.Time, Events: []detect.Event{ev}})
			require.NoError(t, err)
			e.ids[tn] = append(e.ids[tn], id)
		}
	}
	evs = append(evs, detect.Event{Time: now.Add(-30 * time.Second), Module: "dns", Tenant: "midori", Terminal: "127.0.2.9",
		DNS: detect.DNSInfo{QName: "secret-midori.example."}, Verdict: detect.Verdict{Action: detect.ActionSinkhole}, Severity: 1})
	require.NoError(t, e.st.WriteEvents(context.Background(), evs))

	e.quar = newMemQuarantine()
	e.reqs, err = OpenRequests(RequestsConfig{Dir: filepath.Join(dir, "requests")})
	require.NoError(t, err)
	e.sink, err = notifytest.NewSMTPSink(nil)
	require.NoError(t, err)
	t.Cleanup(func() { e.sink.Close() })
	e.purge = &fakePurger{}
	cfg := Config{Requests: e.reqs, Mailer: &SMTPMailer{Addr: e.sink.Addr, From: "soc@cloud.example.jp"},
		OperatorMail: "soc-desk@cloud.example.jp", BaseURL: "https://console.example.jp",
		SiteTraffic: fakeTraffic{}, Purger: e.purge, MaxUpload: 1 << 20,
		SessionsPath: filepath.Join(dir, SessionsFile),
		Quarantine:   e.quar, Accounts: e.acc, Audit: e.audit, Incidents: e.inc, Tenants: testTenants(t), Events: e.st, Reports: fakeReports{},
		Health: func() []Component {
			return []Component{{Name: "function/proxy", Status: "up", OK: true}, {Name: "function/dns", Status: "up", OK: true}}
		}}
	if mod != nil {
		mod(&cfg)
	}
	e.c, err = New(cfg)
	require.NoError(t, err)
	e.srv = httptest.NewServer(e.c.Handler())
	t.Cleanup(e.srv.Close)
	t.Cleanup(e.c.mailing.Wait)
	return e
}

// fakeTraffic stands in for detect/report's rollups: each site of a
// tenant has, on the day d days before today, 1000+d requests, a
// tenth of them cache hits, and d attacks (site names as given).
type fakeTraffic struct{}

func (fakeTraffic) SiteDays(tenantID string, days []time.Time) ([]SiteDay, error) {
	hosts := map[string]string{"aoba": "www.aoba.example.jp", "midori": "www.midori.example.jp"}
	var out []SiteDay
	for i, d := range days {
		n := int64(1000 + i)
		out = append(out, SiteDay{Site: hosts[tenantID], Day: d.Format("2006-01-02"), Requests: n, Bytes: n * 2048, CacheHits: n / 10, Attacks: int64(i)})
	}
	return out, nil
}

// fakePurger records the purges it is asked for.
type fakePurger struct {
	mu   sync.Mutex
	urls []string // "url:" or "prefix:" + target
}

func (p *fakePurger) Purge(u string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.urls = append(p.urls, "url:"+u)
	return 1, nil
}

func (p *fakePurger) PurgePrefix(u string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.urls = append(p.urls, "prefix:"+u)
	return 3, nil
}

func (p *fakePurger) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.urls...)
}

// mailsTo returns the sink's mails to addr.
func (e *env) mailsTo(addr string) []notifytest.Mail {
	var out []notifytest.Mail
	for _, m := range e.sink.Mails() {
		for _, to := range m.To {
			if to == addr {
				out = append(out, m)
			}
		}
	}
	return out
}

// client is a browser-like HTTP client with a cookie jar that does not
// follow redirects.
type client struct {
	t    testing.TB
	e    *env
	http *http.Client
	csrf string // the session's CSRF token (from the API login)
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: e.t, e: e, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get fetches a path; returns status and body.
func (c *client) get(path string) (int, string) {
	c.t.Helper()
	res, err := c.http.Get(c.e.srv.URL + path)
	require.NoError(c.t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func (c *client) postForm(path string, v url.Values) (int, string, http.Header) {
	c.t.Helper()
	res, err := c.http.PostForm(c.e.srv.URL+path, v)
	require.NoError(c.t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

// loginForm logs in through the login page as a browser would.
func (c *client) loginForm(user, password string) int {
	c.t.Helper()
	_, body := c.get("/login")
	m := csrfField.FindStringSubmatch(body)
	require.NotNil(c.t, m, "login form has a CSRF field")
	code, _, _ := c.postForm("/login", url.Values{"csrf": {m[1]}, "user": {user}, "password": {password}})
	return code
}

// pageCSRF returns the CSRF token shown on a page.
func (c *client) pageCSRF(path string) string {
	c.t.Helper()
	_, body := c.get(path)
	m := csrfField.FindStringSubmatch(body)
	require.NotNil(c.t, m, "page %s has a CSRF field", path)
	return m[1]
}

// api calls the JSON API; body may be nil.
func (c *client) api(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(c.t, err)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, c.e.srv.URL+path, rd)
	require.NoError(c.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	res, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (c *client) apiLogin(user, password string) int {
	c.t.Helper()
	code, b := c.api("POST", "/api/v1/session", map[string]string{"user": user, "password": password})
	if code == http.StatusOK {
		var me Me
		require.NoError(c.t, json.Unmarshal(b, &me))
		c.csrf = me.CSRF
	}
	return code
}

// auditHas reports whether the audit log has an entry matching all the
// given fields ("" matches anything).
func (e *env) auditHas(user, action, outcome, target string) bool {
	list, err := e.audit.Entries(func(a *AuditEntry) bool {
		return (user == "" || a.User == user) && (action == "" || a.Action == action) &&
			(outcome == "" || a.Outcome == outcome) && (target == "" || a.Target == target)
	})
	require.NoError(e.t, err)
	return len(list) > 0
}

func alertFor(r *rules.Rule, tn, term string, at time.Time) *rules.Alert {
	ev := detect.Event{Time: at, Module: "proxy", Tenant: tn, Terminal: term, URL: "http://198.51.100.66/<script>",
		Verdict: detect.Verdict{Action: detect.ActionAllow, Reason: "<b>bold</b>"}}
	return &rules.Alert{Rule: r, Tenant: tn, Terminal: term, Count: 1, First: at, Last: at, Events: []detect.Event{ev}}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// fakeReports stands in for detect/report: it writes which report was
// asked for, so tests see what the scope passed down.
type fakeReports struct{}

func (fakeReports) Monthly(w io.Writer, month, tenant, format string) error {
	if tenant == "" {
		tenant = "CLOUD"
	}
	_, err := fmt.Fprintf(w, "report month=%s tenant=%s format=%s", month, tenant, format)
	return err
}

// memQuarantine is an in-memory QuarantineStore for the console's tests
// (the appliance wires mailrelay.Quarantine; see appliance/internal/app).
type memQuarantine struct {
	mu       sync.Mutex
	items    map[string]QuarantinedMail
	released []string
}

func newMemQuarantine() *memQuarantine {
	now := time.Now().UTC()
	q := &memQuarantine{items: map[string]QuarantinedMail{}}
	for _, m := range []QuarantinedMail{
		{ID: "q-aoba-1", Tenant: "aoba", Direction: "inbound", Time: now.Add(-time.Hour), From: "bad@evil.example",
			To: []string{"staff@aoba.example.jp"}, Subject: `請求書 <script>alert("subj")</script>`, Reason: "virus", Rule: "clamav",
			Headers: []MailHeader{{"Subject", `請求書 <script>alert("subj")</script>`}, {"X-Evil", `"><img src=x onerror=alert(1)>`}},
			Text:    `<html><body onload="alert(1)"><a href="javascript:alert(2)">click</a></body></html>`, Attachments: []string{`"><svg onload=alert(1)>.exe`}},
		{ID: "q-midori-1", Tenant: "midori", Direction: "inbound", Time: now, From: "spam@spam.example",
			To: []string{"soumu@midori.example.jp"}, Subject: "midori secret subject", Reason: "spam"},
	} {
		q.items[m.ID] = m
	}
	return q
}

func (q *memQuarantine) List(tenant string) ([]QuarantinedMail, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []QuarantinedMail
	for _, m := range q.items {
		if tenant == "" || m.Tenant == tenant {
			m.Headers, m.Text = nil, ""
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out, nil
}

func (q *memQuarantine) Get(id string) (QuarantinedMail, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	m, ok := q.items[id]
	if !ok {
		return m, ErrNotFound
	}
	return m, nil
}

func (q *memQuarantine) Release(ctx context.Context, id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	m, ok := q.items[id]
	if !ok {
		return ErrNotFound
	}
	now := time.Now()
	m.Released = &now
	q.items[id] = m
	q.released = append(q.released, id)
	return nil
}

func (q *memQuarantine) Delete(id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.items[id]; !ok {
		return ErrNotFound
	}
	delete(q.items, id)
	return nil
}
