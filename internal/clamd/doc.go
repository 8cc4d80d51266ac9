// Package clamd is a small client for ClamAV's clamd: INSTREAM scans over
// TCP or a unix socket, sent in chunks, with the size limit reported as its
// own result (TooLarge), connections reused through IDSESSION, PING and
// VERSION for health checks, and context deadlines on every call.
//
//	c, err := clamd.New(clamd.Config{Address: "/run/clamav/clamd.ctl"})
//	res, err := c.Scan(ctx, body)
//	switch {
//	case errors.Is(err, clamd.ErrUnavailable): // scanner down: fail closed or open
//	case err != nil:                           // clamd refused, or body failed
//	case res.Status == clamd.Infected:         // res.Signature names it
//	case res.Status == clamd.TooLarge:         // not (fully) scanned
//	}
//
// Package clamdtest starts a real clamd with a tiny test database for tests.
// The proxy and the mail relay both use this package.
package clamd
