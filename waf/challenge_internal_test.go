package waf

import (
	"fmt"
	"io"
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
	"github.com/jichitai/seccloud/tenant"
)

type evRecorder struct {
	mu sync.Mutex
	ev []detect.Event
}

func (r *evRecorder) Emit(e detect.Event) {
	r.mu.Lock()
	r.ev = append(r.ev, e)
	r.mu.Unlock()
}

func (r *evRecorder) last() detect.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ev[len(r.ev)-1]
}

// TestCookieChallenge: during adaptive protection a client over its fair
// share gets the cookie challenge (303 to the same URL with a signed
// cookie) instead of a bare 429; coming back with the cookie lets it
// through; the cookie is bound to the address and expires; POSTs and
// sites with NoChallenge still get 429.
func TestCookieChallenge(t *testing.T) {
	const host = "www.aoba.example.jp"
	dir := challengeSite(t, host, "ok")
	var mu sync.Mutex
	clk := time.Unix(1_800_000_000, 0)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clk }
	newSrv := func(noChallenge bool) (*Server, *evRecorder) {
		return attackedSite(t, dir, host, DDoSConfig{AdaptiveMinRate: 5, BaselineHalfLife: 5 * time.Second, NoChallenge: noChallenge, ChallengeTTL: time.Minute}, now)
	}
	s, rec := newSrv(false)
	mu.Lock()
	clk = clk.Add(62 * time.Second)
	mu.Unlock()

	do := func(s *Server, method, from, path, cookie string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "http://"+host+path, nil)
		r.RemoteAddr = from + ":40000"
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	bot := "127.0.3.7"
	// spend the bot's share of this window
	var w *httptest.ResponseRecorder
	for range 50 {
		if w = do(s, "GET", bot, "/news?id=1", ""); w.Code != http.StatusOK {
			break
		}
	}
	require.Equal(t, http.StatusSeeOther, w.Code, "over its share: challenged")
	assert.Equal(t, "/news?id=1", w.Header().Get("Location"))
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	assert.Contains(t, w.Body.String(), "アクセスを確認しています")
	assert.Contains(t, w.Body.String(), `href="/news?id=1"`)
	ev := rec.last()
	assert.Equal(t, detect.ActionDrop, ev.Verdict.Action)
	assert.Equal(t, "waf-ddos-adaptive", ev.Verdict.Rule)
	v, _ := ev.Label("ddos")
	assert.Equal(t, "challenge-sent", v)
	cookies := w.Result().Cookies()
	require.Len(t, cookies, 1)
	ck := cookies[0]
	assert.Equal(t, challengeCookie, ck.Name)
	assert.True(t, ck.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, ck.SameSite)
	pair := ck.Name + "=" + ck.Value

	// a client that keeps cookies (a browser) comes back and is served
	w = do(s, "GET", bot, "/news?id=1", pair)
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "ok", w.Body.String())
	ev = rec.last()
	v, _ = ev.Label("ddos")
	assert.Equal(t, "challenge-passed", v)
	w = do(s, "HEAD", bot, "/news?id=2", pair)
	assert.Equal(t, http.StatusOK, w.Code)

	// the cookie is worth nothing from another address, tampered or for
	// another site's key
	other := "127.0.3.8"
	for range 50 {
		if w = do(s, "GET", other, "/", ""); w.Code != http.StatusOK {
			break
		}
	}
	require.Equal(t, http.StatusSeeOther, w.Code)
	assert.Equal(t, http.StatusSeeOther, do(s, "GET", other, "/", pair).Code, "cookie of another address")
	tampered := pair[:len(pair)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(pair, "AA")]
	assert.Equal(t, http.StatusSeeOther, do(s, "GET", bot, "/", tampered).Code, "tampered cookie")
	s2, _ := newSrv(false) // another random key
	for range 50 {
		if w = do(s2, "GET", bot, "/", ""); w.Code != http.StatusOK {
			break
		}
	}
	assert.Equal(t, http.StatusSeeOther, do(s2, "GET", bot, "/", pair).Code, "cookie signed by another key")

	// never a redirect to another host
	w = do(s, "GET", "127.0.3.9", "/", "")
	for range 50 {
		if w = do(s, "GET", "127.0.3.9", "//evil.example/x", ""); w.Code != http.StatusOK {
			break
		}
	}
	require.Equal(t, http.StatusSeeOther, w.Code)
	assert.Equal(t, "/", w.Header().Get("Location"))

	// POST over the share: 429 (a redirect would lose the body)
	assert.Equal(t, http.StatusTooManyRequests, do(s, "POST", bot, "/form", "").Code)

	// the cookie expires
	mu.Lock()
	clk = clk.Add(2 * time.Minute)
	mu.Unlock()
	assert.False(t, s.chal.passed(func() *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", pair)
		return r
	}(), netip.MustParseAddr(bot), host), "expired")

	// NoChallenge: the bare 429
	s3, _ := newSrv(true)
	for range 50 {
		if w = do(s3, "GET", bot, "/", ""); w.Code != http.StatusOK {
			break
		}
	}
	assert.Equal(t, http.StatusTooManyRequests, w.Code)
}

// challengeSite is a directory with one site, host, whose origin answers
// body (not cacheable).
func challengeSite(t *testing.T, host, body string) tenant.Directory {
	t.Helper()
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(o.Close)
	dir, err := tenant.NewSnapshot([]tenant.Tenant{{ID: "aoba", Name: "青葉市",
		Networks: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")}, EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Sites: []tenant.Site{{Host: host, Origins: []string{o.Listener.Addr().String()}}}}}, tenant.Options{})
	require.NoError(t, err)
	return dir
}

// attackedSite starts a Server (clock now) whose site host is in
// adaptive protection: a baseline of 20 req/s for a minute, then two
// seconds of a flood from 50 clients (127.0.3.1-50).
func attackedSite(t *testing.T, dir tenant.Directory, host string, ddos DDoSConfig, now func() time.Time) (*Server, *evRecorder) {
	t.Helper()
	rec := &evRecorder{}
	s, err := New(Config{Directory: dir, Sink: rec, Now: now, Origins: OriginConfig{HealthInterval: -1}, DDoS: ddos})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	sl := s.ddos.site(host)
	clk := now()
	for sec := range 60 {
		for i := range 20 {
			sl.hit(netip.MustParseAddr(fmt.Sprintf("127.0.1.%d", i+1)), clk.Add(time.Duration(sec)*time.Second+time.Duration(i)*10*time.Millisecond), &s.ddos.cfg)
		}
	}
	for sec := 60; sec < 62; sec++ {
		for k := range 100 {
			for i := range 50 {
				sl.hit(netip.MustParseAddr(fmt.Sprintf("127.0.3.%d", i+1)), clk.Add(time.Duration(sec)*time.Second+time.Duration(k)*10*time.Millisecond), &s.ddos.cfg)
			}
		}
	}
	require.True(t, sl.attack, "site in protection")
	return s, rec
}

func TestChallengeConfig(t *testing.T) {
	_, err := newChallenger(&DDoSConfig{ChallengeKey: []byte("short")}, time.Now)
	assert.ErrorContains(t, err, "at least 16")
	_, err = newChallenger(&DDoSConfig{ChallengeTTL: -time.Second}, time.Now)
	assert.Error(t, err)
	c, err := newChallenger(&DDoSConfig{ChallengeKey: []byte("0123456789abcdef")}, time.Now)
	require.NoError(t, err)
	assert.Equal(t, DefaultChallengeTTL, c.ttl)
}

// FuzzChallengeCookie: no cookie value but a signed one passes, and
// parsing never fails on garbage.
func FuzzChallengeCookie(f *testing.F) {
	f.Add("AAAAAGkgfQAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("")
	f.Add("%%%")
	c, err := newChallenger(&DDoSConfig{ChallengeKey: []byte("0123456789abcdef0123")}, func() time.Time { return time.Unix(1_800_000_000, 0) })
	require.NoError(f, err)
	client := netip.MustParseAddr("192.0.2.1")
	good := c.token(client, "www.aoba.example.jp")
	// proof-of-work mode: only "token.n" with the signed token and a
	// solution passes
	w, err := newChallenger(&DDoSConfig{ChallengeKey: []byte("0123456789abcdef0123"), ChallengeWork: 8}, func() time.Time { return time.Unix(1_800_000_000, 0) })
	require.NoError(f, err)
	f.Add(good + ".0")
	f.Add(good + "." + solve(good, 8))
	f.Add(good + ".-1")
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", challengeCookie+"="+v)
		if c.passed(r, client, "www.aoba.example.jp") {
			assert.Equal(t, good, v, "only the signed value passes")
		}
		if w.passed(r, client, "www.aoba.example.jp") {
			tok, n, ok := strings.Cut(v, ".")
			assert.True(t, ok && tok == good && workDone(tok, n, 8), "only the signed value with a solution passes: %q", v)
		}
	})
}
