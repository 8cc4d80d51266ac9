package waf

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// workFixture: a site in adaptive protection with the proof-of-work
// challenge of bits bits, and a function spending a client's share.
func workFixture(t *testing.T, bits int) (s *Server, host string, do func(from, path, cookie string) *httptest.ResponseRecorder) {
	t.Helper()
	host = "bousai.aoba.example.jp"
	dir := challengeSite(t, host, "避難所一覧 ok")
	var mu sync.Mutex
	clk := time.Unix(1_800_000_000, 0)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clk }
	s, _ = attackedSite(t, dir, host, DDoSConfig{AdaptiveMinRate: 5, BaselineHalfLife: 5 * time.Second, ChallengeTTL: time.Minute, ChallengeWork: bits}, now)
	mu.Lock()
	clk = clk.Add(62 * time.Second)
	mu.Unlock()
	do = func(from, path, cookie string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "http://"+host+path, nil)
		r.RemoteAddr = from + ":40000"
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	return s, host, do
}

var seedRE = regexp.MustCompile(`var seed = "([A-Za-z0-9_-]+)"`)

// solve finds the proof of work as the page's script does.
func solve(seed string, bits int) string {
	for n := 0; ; n++ {
		if workDone(seed, strconv.Itoa(n), bits) {
			return strconv.Itoa(n)
		}
	}
}

// TestWorkChallenge: with ChallengeWork a client over its share gets the
// proof-of-work page (503, no-store, script under a CSP nonce, no cookie
// given away); the seed with a solution passes, the bare seed, a wrong
// number or the solution from another address do not.
func TestWorkChallenge(t *testing.T) {
	const bits = 12
	_, _, do := workFixture(t, bits)
	bot := "127.0.3.7"
	var w *httptest.ResponseRecorder
	for range 50 {
		if w = do(bot, "/shelters", ""); w.Code != http.StatusOK {
			break
		}
	}
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	assert.Empty(t, w.Result().Cookies(), "no cookie without the work")
	body := w.Body.String()
	assert.Contains(t, body, "アクセスを確認しています")
	csp := w.Header().Get("Content-Security-Policy")
	nonce := regexp.MustCompile(`'nonce-([^']+)'`).FindStringSubmatch(csp)
	require.Len(t, nonce, 2, csp)
	assert.Contains(t, body, `<script nonce="`+nonce[1]+`">`)
	m := seedRE.FindStringSubmatch(body)
	require.Len(t, m, 2, "the seed in the page")
	seed := m[1]
	n := solve(seed, bits)

	assert.Equal(t, http.StatusOK, do(bot, "/shelters", challengeCookie+"="+seed+"."+n).Code, "solved")
	assert.Equal(t, http.StatusServiceUnavailable, do(bot, "/shelters", challengeCookie+"="+seed).Code, "the bare seed")
	wrong := 0
	for workDone(seed, strconv.Itoa(wrong), bits) {
		wrong++
	}
	assert.Equal(t, http.StatusServiceUnavailable, do(bot, "/shelters", challengeCookie+"="+seed+"."+strconv.Itoa(wrong)).Code, "not a solution")
	other := "127.0.3.8"
	for range 50 {
		if w = do(other, "/", ""); w.Code != http.StatusOK {
			break
		}
	}
	assert.Equal(t, http.StatusServiceUnavailable, do(other, "/", challengeCookie+"="+seed+"."+n).Code, "another address")
}

func TestWorkChallengeConfig(t *testing.T) {
	_, err := newChallenger(&DDoSConfig{ChallengeWork: 25}, time.Now)
	assert.ErrorContains(t, err, "ChallengeWork")
	_, err = newChallenger(&DDoSConfig{ChallengeWork: -1}, time.Now)
	assert.Error(t, err)
	assert.False(t, workDone("x", "", 8))
	assert.False(t, workDone("x", "12a", 8))
	assert.False(t, workDone("x", "1234567890123", 8))
}

// TestWorkChallengeBrowser: Debian's chromium runs the page's script
// (its own SHA-256), sets the cookie, reloads and gets the site.
func TestWorkChallengeBrowser(t *testing.T) {
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing in CI: scripts/test.sh installs the Debian package chromium", chromium)
		}
		t.Skipf("%s not installed (apt-get install chromium)", chromium)
	}
	const bits = 14
	s, host, do := workFixture(t, bits)
	for range 50 { // chromium connects from 127.0.0.1: spend its share
		if do("127.0.0.1", "/", "").Code != http.StatusOK {
			break
		}
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	_, port, _ := strings.Cut(ts.Listener.Addr().String(), ":")
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("host-resolver-rules", "MAP "+host+" 127.0.0.1"),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate("about:blank")))
	// a guard against a hung browser, not a speed check
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+host+":"+port+"/shelters")))
	var text string
	for ctx.Err() == nil && !strings.Contains(text, "避難所一覧 ok") {
		time.Sleep(100 * time.Millisecond)
		if s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); err == nil {
			text = s
		}
	}
	assert.Contains(t, text, "避難所一覧 ok", "the browser solved the challenge and got the page")
	cookie, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	require.NoError(t, err)
	seed, n, ok := strings.Cut(strings.TrimPrefix(cookie, challengeCookie+"="), ".")
	require.True(t, ok, cookie)
	assert.True(t, workDone(seed, n, bits), "the script's SHA-256 agrees with Go's: %s", cookie)
}
