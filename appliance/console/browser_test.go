package console

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect/incident"
)

const chromiumPath = "/usr/bin/chromium"

// screenshotDir is $SECCLOUD_TEST_OUT/console (kept as CI artifacts) or a
// temporary directory.
func screenshotDir(t *testing.T) string {
	dir := t.TempDir()
	if out := os.Getenv("SECCLOUD_TEST_OUT"); out != "" {
		dir = filepath.Join(out, "console")
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	return dir
}

// distinctColours counts the distinct colours of a PNG (up to limit).
func distinctColours(t *testing.T, b []byte, limit int) int {
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	seen := map[[4]uint32]bool{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if len(seen) >= limit {
				return len(seen)
			}
		}
	}
	return len(seen)
}

var _ image.Image // image/png registers the decoder through image

// TestBrowser drives Debian's chromium over loopback: a tenant admin logs
// in, sees only its own incidents, acknowledges one, releases a
// quarantined mail with a reason, gets its monthly report; then logs out,
// and the operator logs in and sees every tenant. Each main page is
// screenshotted and checked not blank.
func TestBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing in CI: scripts/test.sh installs the Debian package chromium", chromiumPath)
		}
		t.Skipf("%s not installed (apt-get install chromium, or run scripts/test.sh); the browser test needs it", chromiumPath)
	}
	e := newEnv(t, nil)
	outDir := screenshotDir(t)

	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("lang", "ja"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	// The first Run starts the browser; it must not carry a timeout.
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate("about:blank")))
	// A guard against a hung browser, not a speed check: with -race on a
	// loaded 2-core machine the whole walk takes a few minutes.
	ctx, cancel := context.WithTimeout(bctx, 5*time.Minute)
	defer cancel()

	base := e.srv.URL
	shot := func(name string) {
		t.Helper()
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(outDir, name+".png"), b, 0o644))
		n := distinctColours(t, b, 64)
		assert.GreaterOrEqual(t, n, 16, "%s.png looks blank: %d colours", name, n)
	}
	html := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		require.NoError(t, err)
		return s
	}
	// tryHTML is html for polling: "" while the page is being replaced (a
	// node read during navigation is gone).
	tryHTML := func() string {
		s, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		if err != nil {
			return ""
		}
		return s
	}
	login := func(user string) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(base+"/login"),
			chromedp.WaitVisible(chromedp.CSS(`input[name="user"]`)),
			chromedp.SendKeys(chromedp.CSS(`input[name="user"]`), user),
			chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), testPassword),
			chromedp.Click(chromedp.CSS(`form.login button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS(`span.user`)),
		))
	}

	// The login page, in Japanese.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.CSS("form.login"))))
	assert.Contains(t, html(), "ログイン")
	shot("01-login")

	// Tenant admin: only its own incidents.
	login("aoba-admin")
	page := html()
	assert.Contains(t, page, "ダッシュボード")
	assert.Contains(t, page, "本日")
	shot("02-dashboard-aoba-admin")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/incidents"), chromedp.WaitVisible(chromedp.CSS("#incidents"))))
	page = html()
	for _, id := range e.ids["aoba"] {
		assert.Contains(t, page, id)
	}
	for _, id := range e.ids["midori"] {
		assert.NotContains(t, page, id)
	}
	assert.NotContains(t, page, `data-tenant="midori"`)
	shot("03-incidents-aoba-admin")

	// Acknowledge one, with one click on its page.
	id := e.ids["aoba"][0]
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a[href="/incidents/`+id+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#ack")),
		chromedp.Click(chromedp.CSS("#ack")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
	))
	state, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#state")))
	require.NoError(t, err)
	assert.Equal(t, "受領確認済み", strings.TrimSpace(state))
	inc, _ := e.inc.Get(id)
	assert.Equal(t, incident.StateAcknowledged, inc.State)
	shot("04-incident-acknowledged")

	// Another tenant's incident by URL: not found.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/incidents/"+e.ids["midori"][0]), chromedp.WaitVisible(chromedp.CSS("h1"))))
	assert.Contains(t, html(), "見つかりません")
	assert.True(t, e.auditHas("aoba-admin", "incident.view", "denied", "incident:"+e.ids["midori"][0]))

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/events"), chromedp.WaitVisible(chromedp.CSS("#events"))))
	assert.NotContains(t, html(), "secret-midori")
	shot("05-events-aoba-admin")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/tenants"), chromedp.WaitVisible(chromedp.CSS("dl.facts"))))
	assert.Contains(t, html(), "security@aoba.example.jp")
	shot("06-settings-aoba-admin")

	// Release a quarantined mail with a reason; the mail's markup shows as text.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/quarantine"), chromedp.WaitVisible(chromedp.CSS("#quarantine"))))
	page = html()
	assert.NotContains(t, page, "q-midori-1")
	shot("07-quarantine-aoba-admin")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a[href="/quarantine/q-aoba-1"]`)),
		chromedp.WaitVisible(chromedp.CSS("#release")),
		chromedp.SendKeys(chromedp.CSS(`form[action$="/release"] input[name="reason"]`), "取引先からの正規の請求書と確認"),
		chromedp.Click(chromedp.CSS("#release")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
	))
	subject, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#subject")))
	require.NoError(t, err)
	assert.Contains(t, subject, `<script>alert("subj")</script>`, "shown as text")
	assert.Equal(t, []string{"q-aoba-1"}, e.quar.released)
	shot("08-quarantine-released")

	// The monthly report, own tenant only.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/reports"),
		chromedp.WaitVisible(chromedp.CSS("#report")),
	))
	shot("09-reports-aoba-admin")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#report")), chromedp.WaitVisible(chromedp.CSS("body"))))
	require.Eventually(t, func() bool { return strings.Contains(tryHTML(), "tenant=aoba format=html") }, 10*time.Second, 100*time.Millisecond)

	// File a settings-change request with an attachment.
	attach := filepath.Join(t.TempDir(), "除外申請.pdf")
	pdf := []byte("%PDF-1.4\n% test attachment\n")
	require.NoError(t, os.WriteFile(attach, pdf, 0o600))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/requests"),
		chromedp.WaitVisible(chromedp.CSS("#new-request")),
		chromedp.SetValue(chromedp.CSS(`#new-request select[name="kind"]`), "change"),
		chromedp.SendKeys(chromedp.CSS(`#new-request input[name="subject"]`), "WAFの除外設定をお願いします"),
		chromedp.SendKeys(chromedp.CSS(`#new-request textarea[name="body"]`), "申請フォーム /apply で誤検知が出ています。申請書を添付します。"),
		chromedp.SetUploadFiles(chromedp.CSS(`#new-request input[type="file"]`), []string{attach}),
		chromedp.Click(chromedp.CSS("#send-request")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
	))
	reqID, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#request-id")))
	require.NoError(t, err)
	reqID = strings.TrimSpace(reqID)
	filed, err := e.reqs.Get(reqID)
	require.NoError(t, err)
	require.Len(t, filed.Attachments, 1)
	assert.Equal(t, "除外申請.pdf", filed.Attachments[0].Name)
	assert.Equal(t, int64(len(pdf)), filed.Attachments[0].Size)
	assert.Contains(t, html(), "除外申請.pdf")
	shot("13-request-filed-aoba-admin")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/requests"), chromedp.WaitVisible(chromedp.CSS("#requests"))))
	assert.Contains(t, html(), reqID)
	shot("14-requests-aoba-admin")
	e.waitMails("soc-desk@cloud.example.jp", 1)

	// The site traffic page with its purge button.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/sites"), chromedp.WaitVisible(chromedp.CSS("table.traffic"))))
	page = html()
	assert.Contains(t, page, "www.aoba.example.jp")
	assert.NotContains(t, page, "www.midori.example.jp")
	shot("15-sites-aoba-admin")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`form.purge input[value="prefix"]`)),
		chromedp.Click(chromedp.CSS(`form.purge button`)),
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
	))
	assert.Equal(t, []string{"prefix:https://www.aoba.example.jp/"}, e.purge.got())

	// Log out with the button, then the operator sees every tenant.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/dashboard"),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS("form.login")),
	))
	login("soc")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/incidents"), chromedp.WaitVisible(chromedp.CSS("#incidents"))))
	page = html()
	for _, id := range append(e.ids["aoba"], e.ids["midori"]...) {
		assert.Contains(t, page, id)
	}
	assert.Contains(t, page, "みどり町")
	shot("10-incidents-operator")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/dashboard"), chromedp.WaitVisible(chromedp.CSS("ul.health"))))
	shot("11-dashboard-operator")

	// The operator sees the request, comments and moves it on.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/requests"),
		chromedp.WaitVisible(chromedp.CSS("#requests")),
		chromedp.Click(chromedp.CSS(`a[href="/requests/`+reqID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#comment-form")),
		chromedp.SendKeys(chromedp.CSS(`#comment-form textarea[name="text"]`), "承知しました。本日17時までに設定します。"),
		chromedp.SetValue(chromedp.CSS(`#comment-form select[name="status"]`), "in_progress"),
		chromedp.Click(chromedp.CSS("#send-comment")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
	))
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#request-status")))
	require.NoError(t, err)
	assert.Equal(t, "対応中", strings.TrimSpace(status))
	shot("16-request-operator-commented")
	e.waitMails("security@aoba.example.jp", 1)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/lang?to=en&back=/incidents"), chromedp.WaitVisible(chromedp.CSS("#incidents"))))
	assert.Contains(t, html(), `lang="en"`)
	shot("12-incidents-operator-en")

	// The tenant sees the operator's comment.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/lang?to=ja&back=/dashboard"),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS("form.login")),
	))
	login("aoba-admin")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/requests/"+reqID), chromedp.WaitVisible(chromedp.CSS("#thread"))))
	thread, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#thread")))
	require.NoError(t, err)
	assert.Contains(t, thread, "承知しました。本日17時までに設定します。")
	assert.Contains(t, thread, "対応中")
	shot("17-request-tenant-sees-comment")
	t.Logf("screenshots in %s", outDir)
}
