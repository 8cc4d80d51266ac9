package rspamd_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
	"github.com/jichitai/seccloud/mailrelay/rspamd"
	"github.com/jichitai/seccloud/mailrelay/spam"
	"github.com/jichitai/seccloud/tenant"
)

const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

func message(subject, body string) string {
	return "From: Tanaka <tanaka@partner.example.com>\r\nTo: user@a.example.jp\r\nSubject: " + subject +
		"\r\nDate: Mon, 2 Nov 2026 10:00:00 +0900\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "") + "@partner.example.com>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n" + body + "\r\n"
}

func symbol(r rspamd.Result, name string) *rspamd.Symbol {
	for i := range r.Symbols {
		if r.Symbols[i].Name == name {
			return &r.Symbols[i]
		}
	}
	return nil
}

// The daemon: the SMTP context headers reach rspamd, scores and actions
// come back, and a Settings-ID changes the result.
func TestScanAgainstRspamd(t *testing.T) {
	url := sharedRspamd(t)
	c, err := rspamd.New(rspamd.Config{URL: url, Hostname: "relay.seccloud.test"})
	require.NoError(t, err)
	ctx := context.Background()
	req := rspamd.Request{Data: []byte(message("XYZZY offer", "hello")), IP: netip.MustParseAddr("192.0.2.7"),
		Helo: "mx.partner.example.com", From: "bounce@partner.example.com",
		Rcpt: []string{"u1@a.example.jp", "u2@a.example.jp"}, QueueID: "Q123"}

	r, err := c.Scan(ctx, req)
	require.NoError(t, err)
	env := symbol(r, "SECCLOUD_ENV")
	require.NotNil(t, env, "%+v", r.Symbols)
	assert.ElementsMatch(t, []string{"ip=192.0.2.7", "helo=mx.partner.example.com", "from=bounce@partner.example.com",
		"rcpt=u1@a.example.jp", "rcpt=u2@a.example.jp", "qid=Q123"}, env.Options)
	require.NotNil(t, symbol(r, "SECCLOUD_TEST_SPAM"))
	assert.GreaterOrEqual(t, r.Score, 10.0)
	assert.Less(t, r.Score, 15.0)
	assert.Equal(t, "add header", r.Action)
	assert.Equal(t, 15.0, r.RequiredScore)

	// Settings: "lenient" disables the rule, "strict" lowers reject to 5.
	req.SettingsID = "lenient"
	r, err = c.Scan(ctx, req)
	require.NoError(t, err)
	assert.Nil(t, symbol(r, "SECCLOUD_TEST_SPAM"))
	assert.Less(t, r.Score, 4.0)
	assert.Equal(t, "no action", r.Action)
	req.SettingsID = "strict"
	r, err = c.Scan(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, "reject", r.Action)
	assert.Equal(t, 5.0, r.RequiredScore)

	// GTUBE: rspamd's reject.
	req.SettingsID = ""
	req.Data = []byte(message("test", gtube))
	r, err = c.Scan(ctx, req)
	require.NoError(t, err)
	assert.Equal(t, "reject", r.Action)
}

// relay is a mailrelay.Server with two tenants whose mail servers are
// sinks, configured by mod.
type relay struct {
	srv          *mailrelay.Server
	addr         string
	sinkA, sinkB *mailrelaytest.Sink
	events       *events
}

type events struct {
	mu sync.Mutex
	ev []detect.Event
}

func (l *events) Emit(e detect.Event) { l.mu.Lock(); l.ev = append(l.ev, e); l.mu.Unlock() }

func (l *events) label(msgid, tenant, key string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.ev {
		if e.Dataset == "mail.message" && e.Email.MessageID == msgid && e.Tenant == tenant {
			v, _ := e.Label(key)
			return v
		}
	}
	return ""
}

func newRelay(t *testing.T, mod func(*mailrelay.Config)) *relay {
	t.Helper()
	r := &relay{events: &events{}}
	var err error
	for _, p := range []**mailrelaytest.Sink{&r.sinkA, &r.sinkB} {
		*p, err = mailrelaytest.NewSink()
		require.NoError(t, err)
		s := *p
		t.Cleanup(func() { s.Close() })
	}
	dir, err := tenant.NewSnapshot([]tenant.Tenant{
		{ID: "a", Name: "A", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")}, MailDomains: []string{"a.example.jp"}, MailServers: []string{r.sinkA.Addr}, Policy: tenant.Policy{EgressOptional: true}},
		{ID: "b", Name: "B", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.2.0/24")}, MailDomains: []string{"b.example.jp"}, MailServers: []string{r.sinkB.Addr}, Policy: tenant.Policy{EgressOptional: true}},
	}, tenant.Options{})
	require.NoError(t, err)
	cfg := mailrelay.Config{Hostname: "relay.seccloud.test", Directory: dir, Queue: mailrelay.QueueConfig{Dir: t.TempDir()},
		Delivery:   mailrelay.DeliveryConfig{Workers: 2, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond},
		Quarantine: mailrelay.QuarantineConfig{Dir: t.TempDir()}, Sink: r.events}
	mod(&cfg)
	r.srv, err = mailrelay.New(cfg)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r.addr = l.Addr().String()
	go r.srv.Serve(l)
	t.Cleanup(func() { r.srv.Close() })
	return r
}

// send runs one SMTP transaction from 127.0.0.9 (the internet) and
// returns the final reply.
func send(t *testing.T, addr string, rcpts []string, data string) (int, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(c)
	read := func() (int, string) {
		var last string
		for {
			l, err := br.ReadString('\n')
			require.NoError(t, err)
			last = strings.TrimRight(l, "\r\n")
			if len(last) < 4 || last[3] == ' ' {
				break
			}
		}
		var code int
		fmt.Sscanf(last, "%d", &code)
		return code, last
	}
	cmd := func(s string, want int) {
		fmt.Fprintf(c, "%s\r\n", s)
		code, text := read()
		require.Equal(t, want, code, "%s -> %s", s, text)
	}
	read()
	cmd("EHLO mx.partner.example.com", 250)
	cmd("MAIL FROM:<tanaka@partner.example.com>", 250)
	for _, r := range rcpts {
		cmd("RCPT TO:<"+r+">", 250)
	}
	cmd("DATA", 354)
	fmt.Fprintf(c, "%s.\r\n", data)
	return read()
}

func wait(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Through the relay: rspamd scores each tenant's share with that
// tenant's Settings-ID, against that tenant's spam levels.
func TestRelayScoresWithRspamd(t *testing.T) {
	url, stop := startRspamd(t)
	rs, err := rspamd.New(rspamd.Config{URL: url, Settings: map[string]string{"a": "lenient"}})
	require.NoError(t, err)
	r := newRelay(t, func(c *mailrelay.Config) {
		c.Content.Scorer = rs
		c.Content.Tenants = map[string]mailrelay.Policy{"a": {Spam: mailrelay.Levels{Tag: 0.5}}}
	})

	// a: XYZZY rule off by its settings; b: 10 points ≥ quarantine (6).
	code, text := send(t, r.addr, []string{"u1@a.example.jp", "v1@b.example.jp"}, message("XYZZY deal", "hello"))
	require.Equal(t, 250, code, text)
	assert.Contains(t, text, "queued as")
	assert.Contains(t, text, "quarantined as")
	got := r.sinkA.Wait(wait(t), 1)
	require.Len(t, got, 1)
	assert.Equal(t, []string{"u1@a.example.jp"}, got[0].To)
	assert.Contains(t, string(got[0].Data), "X-Spam-Status: ")
	assert.NotContains(t, string(got[0].Data), "SECCLOUD_TEST_SPAM")
	q := r.srv.Quarantine().List(mailrelay.QuarantineFilter{Tenant: "b"})
	require.Len(t, q, 1)
	assert.Equal(t, "spam", q[0].Reason)
	assert.Equal(t, []string{"v1@b.example.jp"}, q[0].To)
	assert.GreaterOrEqual(t, q[0].Score, 10.0)
	assert.Contains(t, q[0].Detail, "SECCLOUD_TEST_SPAM")
	assert.Equal(t, "rspamd", r.events.label("<XYZZYdeal@partner.example.com>", "b", "spam_scorer"))
	assert.Empty(t, r.sinkB.Messages())

	// GTUBE scores above reject (15): 550.
	code, text = send(t, r.addr, []string{"v1@b.example.jp"}, message("gtube", gtube))
	assert.Equal(t, 550, code, text)

	// rspamd down: deferred (the default), never passed unscored.
	stop()
	code, text = send(t, r.addr, []string{"v1@b.example.jp"}, message("while down", "hello"))
	assert.Equal(t, 451, code, text)
}

// UseActions: rspamd's action under the tenant's settings decides.
func TestRelayRspamdActions(t *testing.T) {
	url := sharedRspamd(t)
	rs, err := rspamd.New(rspamd.Config{URL: url, UseActions: true, Settings: map[string]string{"b": "strict"}})
	require.NoError(t, err)
	r := newRelay(t, func(c *mailrelay.Config) {
		c.Content.Scorer = rs
		// Levels would quarantine a at 6 points: the action wins.
		c.Content.Default.Spam = mailrelay.Levels{Tag: 1, Quarantine: 2, Reject: 3}
	})
	// a: 10 points = "add header" (quarantine); b: strict → reject.
	code, text := send(t, r.addr, []string{"u1@a.example.jp"}, message("XYZZY one", "hello"))
	require.Equal(t, 250, code, text)
	assert.Contains(t, text, "quarantined as")
	code, text = send(t, r.addr, []string{"v1@b.example.jp"}, message("XYZZY two", "hello"))
	assert.Equal(t, 550, code, text)
	// Clean mail: "no action" → delivered although its few points
	// would reach the strict levels above.
	code, text = send(t, r.addr, []string{"u1@a.example.jp"}, message("minutes", "お世話になっております。"))
	require.Equal(t, 250, code, text)
	require.Len(t, r.sinkA.Wait(wait(t), 1), 1)
}

// As a plain Filter.
func TestRspamdAsFilter(t *testing.T) {
	url := sharedRspamd(t)
	rs, err := rspamd.New(rspamd.Config{URL: url})
	require.NoError(t, err)
	r := newRelay(t, func(c *mailrelay.Config) { c.Filters = []mailrelay.Filter{rs} })
	code, text := send(t, r.addr, []string{"u1@a.example.jp"}, message("gtube", gtube))
	assert.Equal(t, 550, code, text)
	assert.Contains(t, text, "rspamd reject")
	code, text = send(t, r.addr, []string{"u1@a.example.jp"}, message("XYZZY filter", "hello"))
	require.Equal(t, 250, code, text)
	assert.Contains(t, text, "quarantined as")
}

// Scanner down or slow, without the daemon: a server that never answers
// in time and a closed port.
func TestScannerDownBehaviour(t *testing.T) {
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	t.Cleanup(func() { close(block); slow.Close() })
	rs, err := rspamd.New(rspamd.Config{URL: slow.URL, Timeout: 200 * time.Millisecond})
	require.NoError(t, err)
	_, err = rs.Scan(context.Background(), rspamd.Request{Data: []byte("x")})
	require.ErrorIs(t, err, context.DeadlineExceeded)

	closed := "http://127.0.0.1:" + fmt.Sprint(freePort(t))
	down, err := rspamd.New(rspamd.Config{URL: closed})
	require.NoError(t, err)

	sc, err := spam.New(spam.Config{})
	require.NoError(t, err)
	cases := []struct {
		name     string
		scorer   mailrelay.SpamScorer
		fallback mailrelay.ScorerFallback
		code     int
		label    string
	}{
		{"timeout defers", rs, mailrelay.FallbackTempFail, 451, ""},
		{"down defers", down, mailrelay.FallbackTempFail, 451, ""},
		{"down allow", down, mailrelay.FallbackAllow, 250, "unavailable"},
		{"down builtin", down, mailrelay.FallbackBuiltin, 250, "builtin"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRelay(t, func(c *mailrelay.Config) {
				c.Content.Scorer, c.Content.ScorerDown, c.Content.Spam = tc.scorer, tc.fallback, sc
			})
			m := message(strings.ReplaceAll(tc.name, " ", "-"), "hello")
			code, text := send(t, r.addr, []string{"u1@a.example.jp"}, m)
			require.Equal(t, tc.code, code, text)
			id := "<" + strings.ReplaceAll(tc.name, " ", "-") + "@partner.example.com>"
			switch tc.label {
			case "unavailable":
				assert.Equal(t, "unavailable", r.events.label(id, "a", "spam_score"))
			case "builtin":
				assert.NotEmpty(t, r.events.label(id, "a", "spam_score"))
				assert.NotEmpty(t, r.events.label(id, "a", "spam_scorer_error"))
			}
			if tc.code == 250 {
				require.Len(t, r.sinkA.Wait(wait(t), 1), 1)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "127.0.0.1:11333", "http://"} {
		_, err := rspamd.New(rspamd.Config{URL: u})
		assert.Error(t, err, u)
	}
	_, err := rspamd.New(rspamd.Config{URL: "http://127.0.0.1:11333", Timeout: -1})
	assert.Error(t, err)
	c, err := rspamd.New(rspamd.Config{URL: "http://127.0.0.1:11333", Settings: map[string]string{"a": "sa"}, DefaultSettings: "def"})
	require.NoError(t, err)
	assert.Equal(t, "sa", c.SettingsID("a"))
	assert.Equal(t, "def", c.SettingsID("b"))
	c, _ = rspamd.New(rspamd.Config{URL: "http://127.0.0.1:11333", TenantSettings: true})
	assert.Equal(t, "b", c.SettingsID("b"))
}

// BenchmarkScan: one /checkv2 round trip for a ~10 KiB message against
// the test daemon (one normal worker), from parallel clients.
func BenchmarkScan(b *testing.B) {
	url := sharedRspamd(b)
	c, err := rspamd.New(rspamd.Config{URL: url})
	require.NoError(b, err)
	body := strings.Repeat("お世話になっております。来週の打合せの資料を共有フォルダに置きました。 Minutes and agenda follow.\r\n", 80)
	req := rspamd.Request{Data: []byte(message("weekly minutes", body)), IP: netip.MustParseAddr("192.0.2.7"),
		Helo: "mx.partner.example.com", From: "tanaka@partner.example.com", Rcpt: []string{"u1@a.example.jp"}}
	b.SetBytes(int64(len(req.Data)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Scan(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
