package waf

import (
	"context"
	"errors"
	"net/http"
)

// reqState is what the data path learns about one request; it travels in
// the request context from ServeHTTP to the transport and back.
type reqState struct {
	pool     *pool
	site     *siteConfig // per-site origin auth and transport
	origin   *origin     // the origin that answered, or the last one tried
	attempts int
	ref      string // set when we wrote an error page (no origin answered)
	errMsg   string
}

type stateKey struct{}

// retryTransport sends a request to an origin of the site's pool and, for
// idempotent requests without a body, retries once per other origin when
// the attempt fails before any response byte arrived.
type retryTransport struct {
	s    *Server
	base http.RoundTripper
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(stateKey{}).(*reqState)
	if st == nil {
		return nil, errors.New("waf: request without state")
	}
	var tried []*origin
	retriable := idempotent(req)
	for {
		now := t.s.cfg.Now()
		o := st.pool.pick(t.s.cfg.Origins.Balance, now.UnixNano(), tried)
		if o == nil {
			return nil, errNoOrigin
		}
		tried = append(tried, o)
		st.origin, st.attempts = o, st.attempts+1
		out := req
		if len(tried) > 1 {
			out = req.Clone(req.Context())
		}
		out.URL.Scheme, out.URL.Host = o.url.Scheme, o.url.Host
		o.active.Add(1)
		base := t.base
		if st.site != nil && st.site.tr != nil {
			base = st.site.tr
		}
		resp, err := base.RoundTrip(out)
		o.active.Add(-1)
		if err == nil {
			o.succeeded()
			return resp, nil
		}
		if req.Context().Err() != nil {
			return nil, err // the client went away: not the origin's fault
		}
		if o.failed(t.s.cfg.Now(), t.s.cfg.Origins.MaxFails, t.s.cfg.Origins.EjectFor) {
			t.s.log.Warn("waf: origin ejected", "site", st.pool.host, "origin", o.name,
				"for", t.s.cfg.Origins.EjectFor, "err", err)
		}
		if !retriable || len(tried) >= len(st.pool.origins) {
			return nil, err
		}
	}
}

var errNoOrigin = errors.New("waf: no origin left to try")

// idempotent reports whether req may be sent again to another origin: GET,
// HEAD or OPTIONS without a body.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody
}

// isTimeout reports whether err is an origin timeout (→ 504).
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
