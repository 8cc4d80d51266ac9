package notify_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/notify"
	"github.com/jichitai/seccloud/detect/notify/notifytest"
	"github.com/jichitai/seccloud/detect/rules"
	"github.com/jichitai/seccloud/tenant"
)

var t0 = time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)

var key = []byte("0123456789abcdef0123456789abcdef")

type clock struct{ t atomic.Int64 }

func newClock() *clock               { c := &clock{}; c.t.Store(t0.UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.t.Load()).UTC() }
func (c *clock) Set(d time.Duration) { c.t.Store(t0.Add(d).UnixNano()) }

// hook records webhook posts.
type hook struct {
	mu   sync.Mutex
	got  []notify.WebhookPayload
	fail atomic.Bool
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.fail.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var p notify.WebhookPayload
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	h.mu.Lock()
	h.got = append(h.got, p)
	h.mu.Unlock()
}

func (h *hook) posts() []notify.WebhookPayload {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]notify.WebhookPayload(nil), h.got...)
}

type env struct {
	clk  *clock
	m    *incident.Manager
	n    *notify.Notifier
	sink *notifytest.SMTPSink
	hook *hook
	hsrv *httptest.Server
	ack  *httptest.Server
	over atomic.Int32
}

func setup(t *testing.T, contacts []tenant.Contact, tlsSink bool) *env {
	t.Helper()
	e := &env{clk: newClock(), hook: &hook{}}
	var srvTLS *tls.Config
	email := &notify.Email{From: "soc@seccloud.example.jp", FromName: "セキュリティクラウド SOC"}
	if tlsSink {
		cfg, pool, err := notifytest.SelfSigned()
		require.NoError(t, err)
		srvTLS = cfg
		email.TLS = &tls.Config{RootCAs: pool, ServerName: "localhost"}
		email.RequireTLS = true
	}
	sink, err := notifytest.NewSMTPSink(srvTLS)
	require.NoError(t, err)
	t.Cleanup(func() { sink.Close() })
	e.sink = sink
	email.Addr = sink.Addr
	e.hsrv = httptest.NewServer(e.hook)
	t.Cleanup(e.hsrv.Close)
	for i := range contacts {
		if contacts[i].Webhook == "hook" {
			contacts[i].Webhook = e.hsrv.URL + "/hook"
		}
	}
	snap, err := tenant.NewSnapshot([]tenant.Tenant{{ID: "a", Name: "津市", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
		EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Contacts: contacts}}, tenant.Options{})
	require.NoError(t, err)
	// The ack server needs the notifier; build the mux first.
	mux := http.NewServeMux()
	e.ack = httptest.NewServer(mux)
	t.Cleanup(e.ack.Close)
	var nn *notify.Notifier
	m, err := incident.Open(incident.Config{Dir: t.TempDir(), Now: e.clk.Now, NoSync: true,
		Ladder: notify.LadderFunc(snap.ByID, nil, 0), Waker: notify.WakerFunc(func() {
			if nn != nil {
				nn.Wake()
			}
		})})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	e.m = m
	n, err := notify.New(notify.Config{Incidents: m, Key: key, AckURL: e.ack.URL + "/ack", Email: email,
		Now: e.clk.Now, TenantName: func(id string) string {
			if tn, ok := snap.ByID(id); ok {
				return tn.Name
			}
			return id
		}, OnOverdue: func(incident.Incident) { e.over.Add(1) }})
	require.NoError(t, err)
	nn = n
	mux.Handle("/ack", n.Handler())
	e.n = n
	return e
}

func ccAlert(t *testing.T, at time.Time) *rules.Alert {
	rs, err := rules.Parse("t.yml", strings.NewReader("id: seccloud-cc-resolve-connect\ntitle: C&C通信\nseccloud: {success: true}\ndetection: {s: {event.module: proxy}, condition: s}\n"))
	require.NoError(t, err)
	ev := detect.Event{Time: at, Module: "proxy", Tenant: "a", Client: netip.MustParseAddrPort("127.0.1.5:4000"), Terminal: "127.0.1.5",
		URL: "http://198.51.100.66/gate.php", Dest: netip.MustParseAddrPort("198.51.100.66:80"), HTTP: detect.HTTPInfo{Status: 200},
		Verdict: detect.Verdict{Action: detect.ActionAllow}}
	return &rules.Alert{Rule: rs[0], Tenant: "a", Terminal: "127.0.1.5", Count: 1, First: at, Last: at, Events: []detect.Event{ev}}
}

var linkRE = regexp.MustCompile(`受領確認: (\S+)`)

func kinds(inc incident.Incident) []string {
	var out []string
	for _, e := range inc.Timeline {
		out = append(out, e.Kind)
	}
	return out
}

// The scenario of the issue: level 3 → mail to the first contact at once;
// no ack → escalation to the next contact; the link acknowledges on POST
// only; the timeline shows every step.
func TestEscalationAndAck(t *testing.T) {
	e := setup(t, []tenant.Contact{
		{Name: "情報政策課 一郎", Email: "ichiro@city.tsu.example.jp"},
		{Name: "情報政策課 二郎", Webhook: "hook"},
		{Name: "課長 三郎", Email: "saburo@city.tsu.example.jp", Phone: "059-000-0000"},
	}, true)
	ctx := context.Background()
	id, err := e.m.Add(ccAlert(t, t0))
	require.NoError(t, err)
	inc, _ := e.m.Get(id)
	require.Equal(t, detect.SeveritySucceeded, inc.Severity)
	require.Len(t, inc.Ladder, 3)
	assert.Equal(t, []time.Duration{0, 4 * time.Minute, 8 * time.Minute}, []time.Duration{inc.Ladder[0].After, inc.Ladder[1].After, inc.Ladder[2].After})

	e.n.Step(ctx, e.clk.Now())
	mails := e.sink.Mails()
	require.Len(t, mails, 1)
	m := mails[0]
	assert.True(t, m.TLS, "STARTTLS used")
	assert.Equal(t, []string{"ichiro@city.tsu.example.jp"}, m.To)
	assert.True(t, strings.HasPrefix(m.Subject(), "【重要】セキュリティインシデントのお知らせ（危険度3）"+id), m.Subject())
	text := m.Text()
	assert.True(t, strings.HasPrefix(text, "津市 情報政策課 一郎 様"), text)
	assert.Contains(t, text, "危険度: 3（攻撃が成功（または成功の可能性大））")
	assert.Contains(t, text, "---- English ----")
	assert.Less(t, strings.Index(text, "判定の根拠"), strings.Index(text, "English"), "Japanese first")
	assert.Equal(t, id, m.Header("X-Seccloud-Incident"))
	inc, _ = e.m.Get(id)
	assert.Equal(t, incident.StateNotified, inc.State)

	// Nothing new before the next rung.
	e.clk.Set(3 * time.Minute)
	e.n.Step(ctx, e.clk.Now())
	assert.Len(t, e.sink.Mails(), 1)
	assert.Empty(t, e.hook.posts())
	// No ack after 4 minutes: the webhook of the second contact.
	e.clk.Set(4 * time.Minute)
	e.n.Step(ctx, e.clk.Now())
	posts := e.hook.posts()
	require.Len(t, posts, 1)
	assert.Contains(t, posts[0].Text, "【重要】危険度3 "+id)
	assert.Equal(t, id, posts[0].Incident.ID)
	assert.Equal(t, 3, posts[0].Incident.Severity)
	assert.NotEmpty(t, posts[0].Incident.Evidence)

	// The first contact follows the link: GET shows the page, does not ack.
	link := linkRE.FindStringSubmatch(text)[1]
	e.clk.Set(5 * time.Minute)
	resp, err := http.Get(link)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "受領を確認する")
	assert.Contains(t, string(body), id)
	inc, _ = e.m.Get(id)
	assert.Equal(t, incident.StateNotified, inc.State, "GET (a prefetching scanner) does not acknowledge")
	// POST acknowledges.
	u, _ := url.Parse(link)
	resp, err = http.PostForm(e.ack.URL+"/ack", url.Values{"t": {u.Query().Get("t")}})
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "受領を確認しました")
	inc, _ = e.m.Get(id)
	assert.Equal(t, incident.StateAcknowledged, inc.State)

	// Acknowledged: no further escalation, no missed deadline.
	e.clk.Set(20 * time.Minute)
	e.n.Step(ctx, e.clk.Now())
	assert.Len(t, e.sink.Mails(), 1)
	assert.Equal(t, int32(0), e.over.Load())
	inc, _ = e.m.Get(id)
	assert.Equal(t, []string{"opened", "notify", "notify", "ack"}, kinds(inc))
	ack := inc.Timeline[3]
	assert.Equal(t, "情報政策課 一郎 <ichiro@city.tsu.example.jp>", ack.By)
	assert.Equal(t, "link", ack.Channel)
	assert.Equal(t, t0.Add(5*time.Minute), ack.Time)

	// The same link again: refused (409) and recorded.
	resp, err = http.PostForm(e.ack.URL+"/ack", url.Values{"t": {u.Query().Get("t")}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
	inc, _ = e.m.Get(id)
	assert.Equal(t, "ack_refused", inc.Timeline[len(inc.Timeline)-1].Kind)
}

func TestFailuresRetriedEscalatedAndDeadline(t *testing.T) {
	e := setup(t, []tenant.Contact{
		{Name: "一郎", Email: "ichiro@city.tsu.example.jp"},
		{Name: "二郎", Webhook: "hook"},
	}, false)
	ctx := context.Background()
	e.sink.SetFail(true)
	e.hook.fail.Store(true)
	id, _ := e.m.Add(ccAlert(t, t0))
	e.n.Step(ctx, e.clk.Now())
	e.clk.Set(30 * time.Second)
	e.n.Step(ctx, e.clk.Now()) // within RetryEvery: no new attempt
	e.clk.Set(time.Minute)
	e.n.Step(ctx, e.clk.Now()) // retry
	e.clk.Set(4 * time.Minute)
	e.n.Step(ctx, e.clk.Now()) // retry email, webhook of the next contact
	inc, _ := e.m.Get(id)
	assert.Equal(t, incident.StateOpen, inc.State)
	assert.Equal(t, []string{"opened", "notify_failed", "notify_failed", "notify_failed", "notify_failed"}, kinds(inc))
	assert.Contains(t, inc.Timeline[1].Text, "451")
	assert.Contains(t, inc.Timeline[3].Text+inc.Timeline[4].Text, "503 Service Unavailable", "the webhook step ran while the email step was failing")
	// The smarthost recovers.
	e.sink.SetFail(false)
	e.clk.Set(5 * time.Minute)
	e.n.Step(ctx, e.clk.Now())
	assert.Len(t, e.sink.Mails(), 1)
	// Deadline: recorded once, OnOverdue once.
	e.clk.Set(15 * time.Minute)
	e.n.Step(ctx, e.clk.Now())
	e.clk.Set(16 * time.Minute)
	e.n.Step(ctx, e.clk.Now())
	assert.Equal(t, int32(1), e.over.Load())
	inc, _ = e.m.Get(id)
	n := 0
	for _, k := range kinds(inc) {
		if k == incident.KindDeadlineMissed {
			n++
		}
	}
	assert.Equal(t, 1, n)
	// A phone call acknowledges.
	require.NoError(t, e.n.AckPhone(id, "二郎", "電話で伝達 16:05"))
	inc, _ = e.m.Get(id)
	assert.Equal(t, incident.StateAcknowledged, inc.State)
	assert.Equal(t, "phone", inc.Timeline[len(inc.Timeline)-1].Channel)
}

func TestTokensRefused(t *testing.T) {
	e := setup(t, []tenant.Contact{{Name: "一郎", Email: "ichiro@city.tsu.example.jp"}}, false)
	id, _ := e.m.Add(ccAlert(t, t0))
	e.n.Step(context.Background(), e.clk.Now())
	link := linkRE.FindStringSubmatch(e.sink.Mails()[0].Text())[1]
	u, _ := url.Parse(link)
	tok := u.Query().Get("t")
	post := func(tok string) int {
		resp, err := http.PostForm(e.ack.URL+"/ack", url.Values{"t": {tok}})
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	get := func(q string) int {
		resp, err := http.Get(e.ack.URL + "/ack?" + q)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	forged := tok[:len(tok)-2] + "AA"
	if forged == tok {
		forged = tok[:len(tok)-2] + "BB"
	}
	assert.Equal(t, http.StatusForbidden, post(forged))
	assert.Equal(t, http.StatusForbidden, post("garbage"))
	assert.Equal(t, http.StatusForbidden, get("t=x.y"))
	assert.Equal(t, http.StatusForbidden, post(""))
	// Expired: the clock moves past the 24 h TTL.
	e.clk.Set(25 * time.Hour)
	assert.Equal(t, http.StatusGone, post(tok))
	assert.Equal(t, http.StatusGone, get("t="+url.QueryEscape(tok)))
	inc, _ := e.m.Get(id)
	assert.NotEqual(t, incident.StateAcknowledged, inc.State)
	last := inc.Timeline[len(inc.Timeline)-1]
	assert.Equal(t, incident.KindAckRefused, last.Kind)
	assert.Contains(t, last.Text, "expired")
	assert.Equal(t, uint64(6), e.n.Stats().Refused)
	resp, err := http.DefaultClient.Do(must(http.NewRequest(http.MethodDelete, e.ack.URL+"/ack", nil)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestBelowMinSeverityNotNotified(t *testing.T) {
	e := setup(t, []tenant.Contact{{Name: "一郎", Email: "ichiro@city.tsu.example.jp"}}, false)
	a := ccAlert(t, t0)
	a.Events[0].Verdict.Action = detect.ActionBlock // stopped: level 1
	id, _ := e.m.Add(a)
	e.n.Step(context.Background(), e.clk.Now())
	assert.Empty(t, e.sink.Mails())
	inc, _ := e.m.Get(id)
	assert.Equal(t, detect.SeverityStopped, inc.Severity)
}

func TestRequireTLSRefusesPlainSmarthost(t *testing.T) {
	sink, err := notifytest.NewSMTPSink(nil)
	require.NoError(t, err)
	defer sink.Close()
	em := &notify.Email{Addr: sink.Addr, From: "soc@example.jp", RequireTLS: true}
	err = em.Send(context.Background(), &notify.Message{To: "x@example.jp"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "STARTTLS")
	assert.Empty(t, sink.Mails())
}

func TestLadder(t *testing.T) {
	cs := []tenant.Contact{{Name: "a", Email: "a@x"}, {Name: "b", Email: "b@x", Webhook: "https://h/b"}, {Name: "c", Phone: "1"}, {Name: "d", Email: "d@x"}, {Name: "e", Email: "e@x"}, {Name: "f", Email: "f@x"}}
	got := notify.Ladder(cs, []time.Duration{2 * time.Minute, 5 * time.Minute}, 15*time.Minute)
	var offs []string
	for _, s := range got {
		offs = append(offs, s.Contact+"/"+s.Channel+"@"+s.After.String())
	}
	assert.Equal(t, []string{"a/email@0s", "b/email@2m0s", "b/webhook@2m0s", "d/email@12m0s", "e/email@14m0s", "f/email@14m0s"}, offs,
		"phone-only contacts have no step; offsets are pulled inside the deadline")
}

func TestNewValidates(t *testing.T) {
	m, err := incident.Open(incident.Config{Dir: t.TempDir()})
	require.NoError(t, err)
	defer m.Close()
	_, err = notify.New(notify.Config{Incidents: m, Key: []byte("short"), AckURL: "https://soc.example.jp/ack"})
	assert.ErrorContains(t, err, "Key")
	_, err = notify.New(notify.Config{Incidents: m, Key: key, AckURL: "soc.example.jp/ack"})
	assert.ErrorContains(t, err, "AckURL")
	_, err = notify.New(notify.Config{Key: key, AckURL: "https://soc.example.jp/ack"})
	assert.ErrorContains(t, err, "Incidents")
}

// From the alert that makes an incident level 3 to the first notification
// accepted by the smarthost, with Run driving the notifier on real time.
// The figure is logged (no threshold: the machine is shared).
func TestFirstNotificationLatency(t *testing.T) {
	e := setup(t, []tenant.Contact{{Name: "一郎", Email: "ichiro@city.tsu.example.jp"}}, true)
	got := make(chan time.Time, 1)
	e.sink.OnMail(func(notifytest.Mail) { got <- time.Now() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { _ = e.n.Run(ctx); close(done) }()
	// Let Run pass its first Step so the measure starts from Wake.
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	_, err := e.m.Add(ccAlert(t, t0))
	require.NoError(t, err)
	select {
	case at := <-got:
		t.Logf("judgement → first mail accepted by the smarthost: %v", at.Sub(start))
	case <-time.After(20 * time.Second):
		t.Fatal("no notification")
	}
	cancel()
	<-done
}
