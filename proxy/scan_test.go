package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/internal/clamd/clamdtest"
	"github.com/jichitai/seccloud/proxy"
)

// downloads serves the EICAR file, a clean file, a chunked EICAR and a body
// larger than the scan limit.
func downloads() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/eicar.com":
			fmt.Fprint(w, clamdtest.EICAR)
		case "/chunked-eicar":
			w.Write([]byte("X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR"))
			w.(http.Flusher).Flush()
			w.Write([]byte("-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"))
		case "/big-eicar":
			fmt.Fprint(w, clamdtest.EICAR, strings.Repeat(" ", 5000))
		default:
			fmt.Fprint(w, "a perfectly clean document")
		}
	})
}

func TestScanEICAR(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{})
	scanner, err := proxy.NewClamdScanner(d.Socket, 0)
	require.NoError(t, err)
	t.Cleanup(func() { scanner.Close() })
	require.NoError(t, scanner.Ping(context.Background()))

	// Plain HTTP.
	o := origin(t, "127.0.0.1:0", downloads())
	e := startProxy(t, proxy.Config{Scanner: scanner, ScanMaxBytes: 4096})
	c := e.client(termA)
	for _, path := range []string{"/eicar.com", "/chunked-eicar"} {
		resp, body := get(t, c, o.URL+path)
		assert.Equal(t, 403, resp.StatusCode, path)
		assert.Contains(t, body, "マルウェアを検知したためダウンロードを止めました", path)
		assert.Contains(t, body, clamdtest.EICARName, path)
		assert.NotContains(t, body, "EICAR-STANDARD", path)
	}
	resp, body := get(t, c, o.URL+"/clean")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "a perfectly clean document", body)
	// Larger than ScanMaxBytes: passes unscanned, labelled.
	resp, body = get(t, c, o.URL+"/big-eicar")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, body, "EICAR-STANDARD")

	evs := e.sink.waitEvents(t, 4)
	var blocked, skipped int
	for _, ev := range evs {
		if ev.Verdict.Rule == proxy.RuleMalware {
			blocked++
			assert.Equal(t, clamdtest.EICARName, ev.Verdict.RuleName)
			assert.Equal(t, "denied", ev.Type)
			assert.Equal(t, "infected", label(ev, "scan"))
			assert.Equal(t, "aoba", ev.Tenant)
		}
		if label(ev, "scan") == "skipped-too-large" {
			skipped++
		}
	}
	assert.Equal(t, 2, blocked)
	assert.Equal(t, 1, skipped)
	st := e.srv.ScanStats()
	assert.Equal(t, int64(2), st.Infected)
	assert.Equal(t, int64(1), st.Skipped)

	// Inspected HTTPS.
	ei := startInspect(t, downloads(), func(c *proxy.Config) { c.Scanner = scanner })
	hc := ei.httpsClient(ei.caPool, false)
	resp, body = get(t, hc, ei.url("files.example.test", "/eicar.com"))
	assert.Equal(t, 403, resp.StatusCode)
	assert.Contains(t, body, clamdtest.EICARName)
	assert.NotContains(t, body, "EICAR-STANDARD")
	resp, body = get(t, hc, ei.url("files.example.test", "/chunked-eicar"))
	assert.Equal(t, 403, resp.StatusCode)
	resp, body = get(t, hc, ei.url("files.example.test", "/clean"))
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "a perfectly clean document", body)
	assert.Equal(t, int64(2), ei.srv.ScanStats().Infected)
}

func TestScannerDown(t *testing.T) {
	down := proxy.ScannerFunc(func(context.Context, []byte) (proxy.ScanResult, error) {
		return proxy.ScanResult{}, errors.New("clamd: unavailable: connection refused")
	})
	o := origin(t, "127.0.0.1:0", downloads())

	closed := startProxy(t, proxy.Config{Scanner: down})
	resp, body := get(t, closed.client(termA), o.URL+"/clean")
	assert.Equal(t, 503, resp.StatusCode, "fail-closed by default")
	assert.Contains(t, body, "ウイルス検査ができませんでした")
	assert.Equal(t, int64(1), closed.srv.ScanStats().Failed)

	open := startProxy(t, proxy.Config{Scanner: down, ScanFailOpen: true})
	resp, body = get(t, open.client(termA), o.URL+"/clean")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "a perfectly clean document", body)
	assert.Equal(t, int64(1), open.srv.ScanStats().FailedOpen)
	ev := open.sink.waitEvents(t, 1)[0]
	assert.Equal(t, "error-passed", label(ev, "scan"))

	// A real clamd that stops: fail-closed.
	d := clamdtest.Start(t, clamdtest.Options{})
	scanner, err := proxy.NewClamdScanner(d.Addr, 0)
	require.NoError(t, err)
	t.Cleanup(func() { scanner.Close() })
	e := startProxy(t, proxy.Config{Scanner: scanner})
	resp, _ = get(t, e.client(termA), o.URL+"/clean")
	assert.Equal(t, 200, resp.StatusCode)
	d.Stop()
	resp, _ = get(t, e.client(termA), o.URL+"/clean")
	assert.Equal(t, 503, resp.StatusCode)
}
