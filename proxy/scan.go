package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/internal/clamd"
)

// Scanner scans a response body for malware. Implementations must be safe
// for concurrent use. An error means the scanner could not judge (it is
// down); the Server then fails closed or open (Config.ScanFailOpen).
type Scanner interface {
	Scan(ctx context.Context, body []byte) (ScanResult, error)
}

// ScanResult is a scanner's verdict on one body.
type ScanResult struct {
	// Infected is set when the body holds malware; Signature names it.
	Infected  bool
	Signature string
}

// ScannerFunc adapts a function to a Scanner.
type ScannerFunc func(ctx context.Context, body []byte) (ScanResult, error)

// Scan calls f(ctx, body).
func (f ScannerFunc) Scan(ctx context.Context, body []byte) (ScanResult, error) { return f(ctx, body) }

// ClamdScanner is the default Scanner: ClamAV's clamd over TCP or a unix
// socket (INSTREAM, sessions reused). Safe for concurrent use.
type ClamdScanner struct {
	c *clamd.Client
}

var _ Scanner = (*ClamdScanner)(nil)

// NewClamdScanner returns a scanner talking to clamd at address
// ("127.0.0.1:3310" or a unix socket path such as /run/clamav/clamd.ctl).
// timeout bounds one scan (zero: 60 s). It does not connect yet; see Ping.
func NewClamdScanner(address string, timeout time.Duration) (*ClamdScanner, error) {
	c, err := clamd.New(clamd.Config{Address: address, Timeout: timeout})
	if err != nil {
		return nil, err
	}
	return &ClamdScanner{c: c}, nil
}

// Scan sends body to clamd. A body longer than clamd's StreamMaxLength is
// reported as an error (not judged), so the fail-closed rule applies.
func (s *ClamdScanner) Scan(ctx context.Context, body []byte) (ScanResult, error) {
	res, err := s.c.ScanBytes(ctx, body)
	if err != nil {
		return ScanResult{}, err
	}
	switch res.Status {
	case clamd.Infected:
		return ScanResult{Infected: true, Signature: res.Signature}, nil
	case clamd.TooLarge:
		return ScanResult{}, errors.New("proxy: body larger than clamd's StreamMaxLength")
	}
	return ScanResult{}, nil
}

// Ping checks that clamd answers.
func (s *ClamdScanner) Ping(ctx context.Context) error { return s.c.Ping(ctx) }

// Close closes the kept clamd connections.
func (s *ClamdScanner) Close() error { return s.c.Close() }

// Rule ids of the scanner's verdicts.
const (
	RuleMalware     = "proxy-malware"
	RuleScannerDown = "proxy-scanner-unavailable"
)

// ScanStats counts scanner outcomes since the Server started.
type ScanStats struct {
	Scanned, Infected, Skipped, Failed, FailedOpen int64
}

type scanCounters struct {
	scanned, infected, skipped, failed, failedOpen atomic.Int64
}

// ScanStats returns the scanner counters.
func (s *Server) ScanStats() ScanStats {
	c := &s.scanCnt
	return ScanStats{Scanned: c.scanned.Load(), Infected: c.infected.Load(), Skipped: c.skipped.Load(),
		Failed: c.failed.Load(), FailedOpen: c.failedOpen.Load()}
}

// errTooBigToScan marks a body longer than ScanMaxBytes.
var errTooBigToScan = errors.New("proxy: body too large to scan")

// readForScan reads r up to max bytes. When r holds more, it returns the
// bytes read and errTooBigToScan; the caller relays them followed by the
// rest of r unscanned.
func readForScan(r io.Reader, max int64) ([]byte, error) {
	var b bytes.Buffer
	n, err := b.ReadFrom(io.LimitReader(r, max+1))
	if err != nil {
		return b.Bytes(), err
	}
	if n > max {
		return b.Bytes(), errTooBigToScan
	}
	return b.Bytes(), nil
}

// scanBody runs the scanner on body and returns a blocking verdict for a
// hit or (fail-closed) an unavailable scanner; ActionNone passes. The
// event gets a "scan" label.
func (s *Server) scanBody(body []byte, url string, ev *detect.Event) detect.Verdict {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ScanTimeout)
	defer cancel()
	res, err := s.cfg.Scanner.Scan(ctx, body)
	c := &s.scanCnt
	switch {
	case err != nil:
		c.failed.Add(1)
		if s.cfg.ScanFailOpen {
			c.failedOpen.Add(1)
			s.log.Warn("proxy: scanner unavailable; body passed unscanned (fail-open)", "url", url, "err", err)
			ev.Labels = append(ev.Labels, detect.Label{Key: "scan", Value: "error-passed"})
			return detect.Verdict{}
		}
		s.log.Warn("proxy: scanner unavailable; download blocked (fail-closed)", "url", url, "err", err)
		ev.Labels = append(ev.Labels, detect.Label{Key: "scan", Value: "error-blocked"})
		return detect.Verdict{Action: detect.ActionBlock, Rule: RuleScannerDown, Reason: "the malware scanner is unavailable"}
	case res.Infected:
		c.scanned.Add(1)
		c.infected.Add(1)
		ev.Labels = append(ev.Labels, detect.Label{Key: "scan", Value: "infected"})
		ev.Category = "malware"
		return detect.Verdict{Action: detect.ActionBlock, Rule: RuleMalware, RuleName: res.Signature,
			Reason: "malware " + res.Signature + " found in the download"}
	}
	c.scanned.Add(1)
	ev.Labels = append(ev.Labels, detect.Label{Key: "scan", Value: "clean"})
	return detect.Verdict{}
}
