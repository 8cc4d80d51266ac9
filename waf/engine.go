package waf

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/jichitai/seccloud/detect"
)

// Engine inspects requests before they are proxied. The Server buffers
// the request body (at most InspectionConfig.MaxBody bytes; larger bodies
// are refused with 413 before the engine is called), calls Inspect and
// acts on the Decision: Block gives 403 with a reference, Detect and Pass
// are proxied; the matches go into the request's event.
//
// Implementations must be safe for concurrent use. The Request and its
// Header and Body must not be modified nor kept after Inspect returns.
type Engine interface {
	Inspect(ctx context.Context, req *Request) (Decision, error)
}

// ResponseInspector is an optional interface of an Engine: the Server
// passes the start (InspectionConfig.ResponseBytes) of every origin
// response with a text type (text/*, JSON, XML, JavaScript) and no
// Content-Encoding to InspectResponse — never cache hits, binary or
// compressed responses —, with Request.Matched set when the request's
// Decision had matches (an attack that was let through, e.g. in
// detection-only mode), so that an origin that answered an injection with
// a database error or leaked data is told apart from one that did not.
// The returned matches are added to the event. It runs after the
// response was sent: it reports, it cannot block.
type ResponseInspector interface {
	InspectResponse(req *Request, status int, header http.Header, body []byte) []Match
}

// Request is what an Engine inspects: one HTTP request, its body already
// read and limited by the Server.
type Request struct {
	// Site is the key of the site (tenant.Site.Host, e.g.
	// "www.city.example.jp" or "*.bousai.example.jp"); engines use it to
	// pick the site's paranoia level, threshold and exclusions.
	Site string
	// Method, URI (request target as received, e.g. "/a?b=c") and Proto
	// ("HTTP/1.1", "HTTP/2.0").
	Method, URI, Proto string
	// Host is the Host header.
	Host string
	// Header holds the request headers (Host is in Host only).
	Header http.Header
	// Body is the whole request body (nil when there is none).
	Body []byte
	// Client is the client's address.
	Client netip.AddrPort
	// Matched is set for ResponseInspector.InspectResponse: the request's
	// Decision had matches (an attack that was let through). Engines
	// ignore it in Inspect.
	Matched bool
}

// EngineAction is what an Engine decided.
type EngineAction uint8

// The engine actions. The zero value is Pass.
const (
	// Pass: nothing (or not enough) matched.
	Pass EngineAction = iota
	// Detect: the request would be blocked, but the site runs in
	// detection-only mode; it is proxied and logged.
	Detect
	// Block: refuse the request (403, or Decision.Status).
	Block
)

// String returns "pass", "detect" or "block".
func (a EngineAction) String() string {
	switch a {
	case Pass:
		return "pass"
	case Detect:
		return "detect"
	case Block:
		return "block"
	}
	return "engineaction(" + strconv.Itoa(int(a)) + ")"
}

// Match is one rule that matched.
type Match struct {
	// ID is the rule id (CRS ids such as 942100; our own detectors use
	// ids 990000-990999, see waf/README.md).
	ID int
	// Msg is the rule's message; Data its log data (what matched, where).
	Msg, Data string
	// Severity is the rule's severity: 2 critical, 3 error, 4 warning,
	// 5 notice (syslog numbering, as CRS uses it).
	Severity int
}

// Decision is the result of one inspection. The zero value passes.
type Decision struct {
	Action EngineAction
	// Score is the inbound anomaly score.
	Score int
	// Matches are the rules that matched, in order.
	Matches []Match
	// Status is the HTTP status to answer a Block with; 0 means 403.
	Status int
}

// InspectionConfig tunes how the Server feeds its Engine.
type InspectionConfig struct {
	// MaxBody is the largest request body buffered for inspection; a
	// larger body (by Content-Length or as read) is refused with 413
	// before the engine runs, never inspected in part. 0 means
	// DefaultMaxInspectBody (1 MiB); negative is an error.
	MaxBody int64
	// ResponseBytes is how much of an origin's text response (not cache
	// hits, binary or compressed ones) is handed to a ResponseInspector;
	// the rest is not inspected. 0 means DefaultInspectResponseBytes
	// (64 KiB); negative disables response inspection.
	ResponseBytes int
	// FailOpen proxies the request when the engine returns an error; the
	// default (false) answers 503 — the request was not inspected.
	FailOpen bool
}

// Defaults of InspectionConfig.
const (
	DefaultMaxInspectBody       = 1 << 20
	DefaultInspectResponseBytes = 64 << 10
)

func (c *InspectionConfig) defaults() error {
	if c.MaxBody < 0 {
		return fmt.Errorf("waf: Config.Inspection.MaxBody is negative (%d)", c.MaxBody)
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxInspectBody
	}
	if c.ResponseBytes == 0 {
		c.ResponseBytes = DefaultInspectResponseBytes
	}
	return nil
}

var (
	pageBlocked = page{Status: http.StatusForbidden,
		TitleJA: "アクセスが拒否されました", TitleEN: "Access denied",
		ReasonJA: "このリクエストは、サイトを守るための検査により拒否されました。誤りと思われる場合は、参照番号を添えてサイトの管理者にお問い合わせください。",
		ReasonEN: "This request was refused by the site's protection. If you think this is a mistake, contact the site's administrator quoting the reference."}
	pageBodyTooLarge = page{Status: http.StatusRequestEntityTooLarge,
		TitleJA: "送信データが大きすぎます", TitleEN: "Request too large",
		ReasonJA: "送信されたデータが上限を超えたため、受け付けられませんでした。",
		ReasonEN: "The data sent is larger than this site accepts."}
	pageInspectFailed = page{Status: http.StatusServiceUnavailable,
		TitleJA: "ただいま処理できません", TitleEN: "Service unavailable",
		ReasonJA: "リクエストを検査できませんでした。しばらくしてから再度アクセスしてください。",
		ReasonEN: "The request could not be inspected. Please try again in a while."}
	pageBadRequest = page{Status: http.StatusBadRequest,
		TitleJA: "不正なリクエストです", TitleEN: "Bad request",
		ReasonJA: "リクエストの形式が正しくないため、受け付けられませんでした。",
		ReasonEN: "The request is malformed."}
)

// inspection is the outcome of inspecting one request in ServeHTTP.
type inspection struct {
	req      *Request
	dec      Decision
	err      error
	stopped  bool // we answered; do not proxy
	status   int
	ref      string
	respHits []Match
}

// inspect runs the engine on r. It returns the (possibly re-bodied)
// request to proxy and the inspection; when insp.stopped the answer was
// written.
func (s *Server) inspect(w http.ResponseWriter, r *http.Request, siteKey string) (*http.Request, *inspection) {
	e := s.cfg.Engine
	if e == nil {
		return r, nil
	}
	ic := &s.cfg.Inspection
	insp := &inspection{}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > ic.MaxBody {
			return r, insp.answer(w, pageBodyTooLarge, "")
		}
		if bb, ok := r.Body.(*bufferedBody); ok && bb.Len() == len(bb.b) {
			// already in memory (the gate read a form): used as it is
			if int64(len(bb.b)) > ic.MaxBody {
				return r, insp.answer(w, pageBodyTooLarge, "")
			}
			body = bb.b
		} else {
			b, err := readBody(r.Body, r.ContentLength, ic.MaxBody)
			if err != nil {
				insp.err = fmt.Errorf("waf: reading the request body: %w", err)
				return r, insp.answer(w, pageBadRequest, "")
			}
			if int64(len(b)) > ic.MaxBody {
				return r, insp.answer(w, pageBodyTooLarge, "")
			}
			body = b
			r.Body.Close()
			r2 := *r
			r2.Body = newBufferedBody(b)
			r2.ContentLength = int64(len(b))
			r2.GetBody = func() (io.ReadCloser, error) { return newBufferedBody(b), nil }
			r = &r2
		}
	}
	req := &Request{
		Site: siteKey, Method: r.Method, URI: r.RequestURI, Proto: r.Proto, Host: r.Host,
		Header: r.Header, Body: body, Client: clientAddr(r),
	}
	if req.URI == "" {
		req.URI = r.URL.RequestURI()
	}
	if len(r.TransferEncoding) > 0 {
		req.Header = r.Header.Clone()
		for _, te := range r.TransferEncoding {
			req.Header.Add("Transfer-Encoding", te)
		}
	}
	insp.req = req
	dec, err := e.Inspect(r.Context(), req)
	if err != nil {
		insp.err = err
		if !ic.FailOpen {
			return r, insp.answer(w, pageInspectFailed, "")
		}
		return r, insp
	}
	insp.dec = dec
	if dec.Action == Block {
		p := pageBlocked
		if dec.Status != 0 && dec.Status != http.StatusForbidden {
			p.Status = dec.Status
		}
		return r, insp.answer(w, p, "")
	}
	return r, insp
}

// bufferedBody is a request body held in memory (read by the gate's form
// check or for the inspection). The inspection uses its bytes as they are,
// so a body is read and buffered once.
type bufferedBody struct {
	*bytes.Reader
	b []byte
}

func newBufferedBody(b []byte) *bufferedBody { return &bufferedBody{Reader: bytes.NewReader(b), b: b} }

// Close implements io.Closer.
func (*bufferedBody) Close() error { return nil }

// readBody reads at most limit+1 bytes of rc into one buffer sized from
// the declared length (hint, -1 when unknown), so a body is not copied
// while it grows.
func readBody(rc io.Reader, hint, limit int64) ([]byte, error) {
	n := int64(4 << 10)
	if hint >= 0 {
		n = min(hint, limit) + 1
	}
	b := make([]byte, 0, n)
	lr := io.LimitReader(rc, limit+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func (insp *inspection) answer(w http.ResponseWriter, p page, _ string) *inspection {
	insp.ref = newRef()
	insp.stopped = true
	insp.status = p.Status
	writePage(w, p, insp.ref)
	return insp
}

// annotate adds the inspection's outcome to the request's event.
func (insp *inspection) annotate(ev *detect.Event) {
	if insp == nil {
		return
	}
	if insp.ref != "" {
		ev.ID = insp.ref
	}
	d := insp.dec
	all := append(append([]Match(nil), d.Matches...), insp.respHits...)
	if len(all) > 0 {
		ids := make([]string, 0, len(all))
		msgs := make([]string, 0, len(all))
		for _, m := range all {
			ids = append(ids, strconv.Itoa(m.ID))
			if m.Msg != "" {
				msgs = append(msgs, strconv.Itoa(m.ID)+": "+m.Msg)
			}
		}
		ev.Verdict.Rule = strings.Join(ids, ",")
		ev.Verdict.Reason = strings.Join(msgs, "; ")
		ev.Labels = append(ev.Labels, detect.Label{Key: "waf_rules", Value: ev.Verdict.Rule})
		if len(insp.respHits) > 0 {
			ev.Labels = append(ev.Labels, detect.Label{Key: "waf_response_leak", Value: "true"})
		}
	}
	ev.Verdict.Score = d.Score
	ev.Labels = append(ev.Labels, detect.Label{Key: "waf_action", Value: d.Action.String()},
		detect.Label{Key: "waf_score", Value: strconv.Itoa(d.Score)})
	switch {
	case insp.stopped && insp.status == http.StatusRequestEntityTooLarge:
		ev.HTTP.Status, ev.Type, ev.Outcome = insp.status, "denied", "failure"
		ev.Verdict.Action, ev.Verdict.Rule = detect.ActionBlock, "waf-body-limit"
		ev.Verdict.Reason = "request body over the inspection limit"
	case insp.stopped && insp.err != nil:
		ev.HTTP.Status, ev.Outcome = insp.status, "failure"
		ev.Verdict.Action = detect.ActionBlock
		ev.Message = insp.err.Error()
	case insp.stopped:
		ev.HTTP.Status, ev.Type, ev.Outcome = insp.status, "denied", "success"
		ev.Verdict.Action = detect.ActionBlock
		ev.Category = "intrusion_detection"
		ev.Labels = append(ev.Labels, detect.Label{Key: "origin_answered", Value: "false"})
	case d.Action == Detect:
		ev.Verdict.Action = detect.ActionReport
		ev.Category = "intrusion_detection"
		ev.Labels = append(ev.Labels, detect.Label{Key: "origin_answered", Value: strconv.FormatBool(ev.HTTP.Status != 0 && ev.Outcome == "success")})
	default:
		if insp.err != nil {
			ev.Message = "not inspected (fail open): " + insp.err.Error()
		}
		if len(insp.respHits) > 0 {
			// a request that looked clean got an answer that leaks
			// (database error, stack trace, system file): reported
			ev.Verdict.Action = detect.ActionReport
			ev.Category = "intrusion_detection"
			ev.Labels = append(ev.Labels, detect.Label{Key: "origin_answered", Value: "true"})
		}
	}
}

// wantResponse reports whether origin responses should be shown to the
// engine's ResponseInspector.
func (s *Server) wantResponse(insp *inspection) (ResponseInspector, bool) {
	if insp == nil || insp.stopped || insp.req == nil || s.cfg.Inspection.ResponseBytes < 0 {
		return nil, false
	}
	ri, ok := s.cfg.Engine.(ResponseInspector)
	return ri, ok
}

// teeWriter keeps the first bytes of a text response for a
// ResponseInspector; it decides when the head is written (text type, no
// Content-Encoding, not a cache hit) and otherwise passes through. It
// sits under the respWriter, so the proxy's error handler still finds
// its *respWriter.
type teeWriter struct {
	http.ResponseWriter
	max     int
	code    int
	keep    bool
	decided bool
	buf     []byte
}

var teePool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

func (t *teeWriter) decide() {
	if t.decided {
		return
	}
	t.decided = true
	h := t.ResponseWriter.Header()
	if ce := h.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return // compressed: not decoded here
	}
	if !isTextual(h.Get("Content-Type")) {
		return
	}
	for _, cs := range h.Values("Cache-Status") {
		if strings.Contains(cs, "; hit") {
			return // served from the cache: inspected when it was fetched
		}
	}
	t.keep = true
	t.buf = (*teePool.Get().(*[]byte))[:0]
}

func (t *teeWriter) WriteHeader(code int) {
	if t.code == 0 && code >= 200 {
		t.code = code
		t.decide()
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *teeWriter) Write(b []byte) (int, error) {
	if t.code == 0 {
		t.code = http.StatusOK
		t.decide()
	}
	if room := t.max - len(t.buf); t.keep && room > 0 {
		t.buf = append(t.buf, b[:min(room, len(b))]...)
	}
	return t.ResponseWriter.Write(b)
}

func (t *teeWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// responseWriter returns the writer to proxy into: w itself, or a
// teeWriter when responses are inspected, and the function to call once
// the response was sent. It runs the ResponseInspector on the kept head,
// unless ourPage: the gateway answered with its own error page (502 or
// 504, no origin answered), which is not the origin's response.
func (s *Server) responseWriter(w http.ResponseWriter, insp *inspection) (http.ResponseWriter, func(ourPage bool)) {
	ri, ok := s.wantResponse(insp)
	if !ok {
		return w, func(bool) {}
	}
	t := &teeWriter{ResponseWriter: w, max: s.cfg.Inspection.ResponseBytes}
	return t, func(ourPage bool) {
		if !t.keep {
			return
		}
		if len(t.buf) > 0 && !ourPage {
			req := *insp.req
			req.Matched = len(insp.dec.Matches) > 0
			insp.respHits = ri.InspectResponse(&req, t.code, w.Header(), t.buf)
		}
		if cap(t.buf) <= 256<<10 {
			b := t.buf[:0]
			teePool.Put(&b)
		}
		t.buf = nil
	}
}

// isTextual reports whether a response of this content type is worth
// scanning for leaks.
func isTextual(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct == ""
	}
	return strings.HasPrefix(mt, "text/") || strings.Contains(mt, "json") || strings.Contains(mt, "xml") || strings.Contains(mt, "javascript")
}

// sortMatches orders matches by id (stable for equal ids).
func sortMatches(m []Match) {
	sort.SliceStable(m, func(i, j int) bool { return m[i].ID < m[j].ID })
}
