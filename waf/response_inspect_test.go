package waf_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf"
)

// leakEngine passes every request and reports every response it is shown
// as a leak (rule 950100, as CRS does for a 5xx answer), counting them.
type leakEngine struct{ shown atomic.Int64 }

var (
	_ waf.Engine            = (*leakEngine)(nil)
	_ waf.ResponseInspector = (*leakEngine)(nil)
)

func (*leakEngine) Inspect(context.Context, *waf.Request) (waf.Decision, error) {
	return waf.Decision{}, nil
}

func (e *leakEngine) InspectResponse(_ *waf.Request, status int, _ http.Header, _ []byte) []waf.Match {
	e.shown.Add(1)
	return []waf.Match{{ID: 950100, Msg: "The Application Returned a 500-Level Status Code", Data: http.StatusText(status)}}
}

// TestResponseInspectionSkipsOwnErrorPage: when no origin answers, the
// client gets the gateway's own 502 page; it is not the origin's response
// and must not be shown to the ResponseInspector (CRS reported it as an
// application error, rule 950100, and the event as a response leak).
func TestResponseInspectionSkipsOwnErrorPage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		origin func(t testing.TB) string
		status int
		shown  int64
	}{
		{"origin down: our 502 page", deadAddr, http.StatusBadGateway, 0},
		{"origin answers", func(t testing.TB) string { return newOrigin(t, "o1").addr() }, http.StatusOK, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &leakEngine{}
			rec := &recorder{}
			dir := directory(t, tenant.Site{Host: siteHost, Origins: []string{tc.origin(t)}})
			s := newServer(t, waf.Config{Directory: dir, Sink: rec, Engine: e, Origins: waf.OriginConfig{HealthInterval: -1},
				DDoS: waf.DDoSConfig{Disabled: true}})
			addr := start(t, s, false)

			resp, _ := get(t, &http.Client{}, "GET", addr, siteHost, "/")
			require.Equal(t, tc.status, resp.StatusCode)
			ev := rec.wait(t, 1)[0]
			assert.Equal(t, tc.shown, e.shown.Load(), "responses shown to the inspector")
			leak, _ := ev.Label("waf_response_leak")
			if tc.shown == 0 {
				assert.Empty(t, leak)
				assert.Empty(t, ev.Verdict.Rule)
				assert.NotEqual(t, detect.ActionReport, ev.Verdict.Action)
			} else {
				assert.Equal(t, "true", leak)
				assert.Equal(t, "950100", ev.Verdict.Rule)
			}
		})
	}
}
