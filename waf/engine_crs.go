package waf

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/jichitai/seccloud/waf/inspect"
)

// Defaults of CRSConfig and SiteRules.
const (
	DefaultParanoiaLevel    = 1
	DefaultAnomalyThreshold = 5
	DefaultMemoSize         = 1 << 16
	// criticalScore is what one finding of our own detectors adds to the
	// anomaly score (CRS's critical_anomaly_score).
	criticalScore = 5
)

// CRSConfig configures the default Engine: OWASP CRS v4 (the copy
// embedded in github.com/corazawaf/coraza-coreruleset/v4) run by Coraza
// v3, plus our decoding and detection layer (package waf/inspect) and a
// fast path. ONE Coraza WAF instance serves all sites; the per-site
// settings are applied per transaction.
type CRSConfig struct {
	// Logger logs rule-loading problems; nil discards.
	Logger *slog.Logger
	// Default is the rules profile of sites not listed in Sites.
	Default SiteRules
	// Sites holds per-site profiles keyed like Config.Sites (the site's
	// Host as written in the tenant). Keys are normalised to lower-case
	// A-labels (IDNA lookup rules), so "www.市役所.jp", "WWW.市役所.JP" and
	// "www.xn--7sto6a74d.jp" name one site (two keys naming one site are
	// an error); Request.Site is normalised the same way.
	Sites map[string]SiteRules
	// Directives are extra SecLang directives loaded after CRS (the
	// operator's own rules); empty means none.
	Directives string
	// Plain runs Coraza + CRS only: no decoding layer, no fast path. It is
	// the baseline the README compares against.
	Plain bool
	// NoFastPath turns the fast path off (Coraza runs on every request).
	NoFastPath bool
	// MemoSize bounds the fast path's memo of clean request parts; 0
	// means DefaultMemoSize (65,536 entries).
	MemoSize int
}

// SiteRules is one site's rules profile. The zero value is paranoia
// level 1, anomaly threshold 5, blocking, no exclusions.
type SiteRules struct {
	// ParanoiaLevel is CRS's blocking paranoia level, 1-4; 0 means 1.
	ParanoiaLevel int
	// AnomalyThreshold is the inbound anomaly score at which a request is
	// blocked; 0 means 5 (one critical rule).
	AnomalyThreshold int
	// DetectOnly passes requests that would be blocked and logs them
	// (Decision.Action Detect).
	DetectOnly bool
	// Exclusions switch rules off for this site.
	Exclusions []Exclusion
}

// Exclusion switches a rule (or range of rules) off for a site: for the
// whole rule or only one target (e.g. "ARGS:comment"), everywhere or
// only under a path prefix.
type Exclusion struct {
	// RuleID is the rule's id (CRS ids, or ours 990000-990999). Required.
	RuleID int
	// RuleIDTo, when > RuleID, makes a range RuleID-RuleIDTo.
	RuleIDTo int
	// Target limits the exclusion to one variable, "ARGS:name",
	// "REQUEST_COOKIES:name", "REQUEST_HEADERS:name"; "" means the whole
	// rule.
	Target string
	// PathPrefix limits the exclusion to request paths starting with it;
	// "" means every path.
	PathPrefix string
}

// CRSEngine is the default Engine. It is safe for concurrent use.
type CRSEngine struct {
	waf     coraza.WAF
	plain   bool
	fast    bool
	idx     map[string]int // site key -> profile index (0 = Default)
	prof    []SiteRules
	memo    *lru.Cache[string, bool]
	log     *slog.Logger
	canonOK bool
	scan    *inspect.Scanner
	// respClean memoises clean response verdicts by hash.
	respClean *lru.Cache[uint64, struct{}]
	respSeed  maphash.Seed
	// overCount counts bodies with too many unknown pairs (engine_body.go).
	overCount atomic.Uint64
}

var (
	_ Engine            = (*CRSEngine)(nil)
	_ ResponseInspector = (*CRSEngine)(nil)
)

// argLimitRule refuses (413) a body with more values than one Coraza run
// reads (directives). Its id is below 949000 so that Inspect treats it as
// a rule that denies by itself.
const argLimitRule = 209001

// site profile ids of our generated rules start here (CRS uses < 1,000,000).
const exclRuleBase = 9100000

// NewCRSEngine loads CRS once and returns the engine.
func NewCRSEngine(cfg CRSConfig) (*CRSEngine, error) {
	e := &CRSEngine{plain: cfg.Plain, fast: !cfg.Plain && !cfg.NoFastPath, idx: map[string]int{}, log: cfg.Logger}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	check := func(name string, r *SiteRules) {
		if r.ParanoiaLevel == 0 {
			r.ParanoiaLevel = DefaultParanoiaLevel
		}
		if r.AnomalyThreshold == 0 {
			r.AnomalyThreshold = DefaultAnomalyThreshold
		}
		if r.ParanoiaLevel < 1 || r.ParanoiaLevel > 4 {
			errs = append(errs, fmt.Errorf("waf: CRSConfig.%s.ParanoiaLevel %d is not 1-4", name, r.ParanoiaLevel))
		}
		if r.AnomalyThreshold < 0 {
			errs = append(errs, fmt.Errorf("waf: CRSConfig.%s.AnomalyThreshold is negative (%d)", name, r.AnomalyThreshold))
		}
		for i, x := range r.Exclusions {
			if x.RuleID <= 0 {
				errs = append(errs, fmt.Errorf("waf: CRSConfig.%s.Exclusions[%d]: RuleID is required", name, i))
			}
			if strings.ContainsAny(x.Target+x.PathPrefix, "\"'\\\n\r, ") {
				errs = append(errs, fmt.Errorf("waf: CRSConfig.%s.Exclusions[%d]: Target/PathPrefix has a forbidden character", name, i))
			}
			if x.PathPrefix != "" && !strings.HasPrefix(x.PathPrefix, "/") {
				errs = append(errs, fmt.Errorf("waf: CRSConfig.%s.Exclusions[%d]: PathPrefix must start with '/'", name, i))
			}
		}
	}
	def := cfg.Default
	check("Default", &def)
	e.prof = append(e.prof, def)
	keys := make([]string, 0, len(cfg.Sites))
	for k := range cfg.Sites {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r := cfg.Sites[k]
		check("Sites["+strconv.Quote(k)+"]", &r)
		key, err := normSiteKey(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("waf: CRSConfig.Sites[%q]: %w", k, err))
			continue
		}
		if _, dup := e.idx[key]; dup {
			errs = append(errs, fmt.Errorf("waf: CRSConfig.Sites[%q]: the same site as another key (%s)", k, key))
			continue
		}
		e.idx[key] = len(e.prof)
		e.prof = append(e.prof, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var root fs.FS = coreruleset.FS
	if !e.plain {
		// CRS's @rx rules run with our operator (engine_rx.go)
		registerRxOperator()
		root = rxFS{root}
	}
	w, err := coraza.NewWAF(coraza.NewWAFConfig().
		WithRootFS(root).
		WithDirectives(e.directives(cfg.Directives)))
	if err != nil {
		return nil, fmt.Errorf("waf: loading CRS: %w", err)
	}
	e.waf = w
	n := cfg.MemoSize
	if n <= 0 {
		n = DefaultMemoSize
	}
	e.memo, _ = lru.New[string, bool](n)
	e.respClean, _ = lru.New[uint64, struct{}](4096)
	e.respSeed = maphash.MakeSeed()
	e.scan = inspect.NewScanner(n)
	if e.fast {
		// The fast path evaluates query parameters inside a canonical
		// request; it is only sound if that request alone is clean.
		e.canonOK = true
		for i := range e.prof {
			if !e.clean(i, "GET", "/", "HTTP/1.1", "localhost", canonHeader) ||
				!e.clean(i, "POST", "/", "HTTP/1.1", "localhost", canonFormHeader) {
				e.canonOK = false
			}
		}
	}
	return e, nil
}

var canonHeader = http.Header{"User-Agent": {"Mozilla/5.0"}, "Accept": {"*/*"}}

// directives builds the shared WAF's configuration.
func (e *CRSEngine) directives(extra string) string {
	var b strings.Builder
	b.WriteString(`Include @coraza.conf-recommended
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 1073741824
SecRequestBodyNoFilesLimit 1073741824
SecRequestBodyInMemoryLimit 1073741824
SecRequestBodyLimitAction Reject
SecResponseBodyAccess On
SecResponseBodyMimeType text/plain text/html text/xml application/xml application/xhtml+xml application/json
SecResponseBodyLimit 1048576
SecResponseBodyLimitAction ProcessPartial
SecAuditEngine Off
SecRxPreFilter On
Include @crs-setup.conf.example
`)
	if !e.plain {
		// Coraza reads at most SecArgumentsLimit (1,000) values of a body
		// and drops the rest: a payload after 1,000 padding values would
		// pass unseen (TestDeepArguments). A body that reaches the full run
		// with more values than that is refused instead (fail closed); the
		// body fast path inspects larger bodies whose values are mostly
		// known (engine_body.go). Raising the limit is no answer: Coraza's
		// cost grows faster than linearly with the values of one
		// transaction (6,000 new values 4 s, 40,000 37 s on this machine).
		fmt.Fprintf(&b, "SecRule ARGUMENTS_LIMIT_REACHED \"@eq 1\" \"id:%d,phase:2,t:none,log,deny,status:413,msg:'more values than can be inspected'\"\n", argLimitRule)
	}
	// Binary bodies are kept raw: never parsed as forms (coraza#1628).
	b.WriteString(`SecRule REQUEST_HEADERS:Content-Type "@rx ^application/octet-stream" "id:9000001,phase:1,pass,nolog,t:none,t:lowercase,ctl:requestBodyProcessor=RAW"
`)
	// The body fast path's check of the raw REQUEST_BODY rules: the body
	// is kept raw (no ARGS) when TX:seccloud_rawbody is set.
	b.WriteString(`SecRule TX:seccloud_rawbody "@eq 1" "id:9000002,phase:1,pass,nolog,t:none,ctl:requestBodyProcessor=RAW"
`)
	id := exclRuleBase
	for i, p := range e.prof {
		for _, x := range p.Exclusions {
			rng := strconv.Itoa(x.RuleID)
			if x.RuleIDTo > x.RuleID {
				rng += "-" + strconv.Itoa(x.RuleIDTo)
			}
			ctl := "ctl:ruleRemoveById=" + rng
			if x.Target != "" {
				ctl = "ctl:ruleRemoveTargetById=" + rng + ";" + x.Target
			}
			id++
			if x.PathPrefix == "" {
				fmt.Fprintf(&b, "SecRule TX:seccloud_site \"@eq %d\" \"id:%d,phase:1,pass,nolog,t:none,%s\"\n", i, id, ctl)
			} else {
				fmt.Fprintf(&b, "SecRule TX:seccloud_site \"@eq %d\" \"id:%d,phase:1,pass,nolog,t:none,chain\"\n  SecRule REQUEST_FILENAME \"@beginsWith %s\" \"t:none,%s\"\n", i, id, x.PathPrefix, ctl)
			}
		}
	}
	b.WriteString("Include @owasp_crs/*.conf\n")
	b.WriteString(extra)
	return b.String()
}

// profile returns the index of site's profile. site is normalised like
// the keys of CRSConfig.Sites: "WWW.市役所.jp" finds "www.xn--7sto6a74d.jp".
func (e *CRSEngine) profile(site string) int {
	if i, ok := e.idx[site]; ok {
		return i
	}
	if k, ok := renormSiteKey(site); ok {
		if i, ok := e.idx[k]; ok {
			return i
		}
	}
	return 0
}

// Inspect implements Engine.
func (e *CRSEngine) Inspect(ctx context.Context, req *Request) (Decision, error) {
	pi := e.profile(req.Site)
	p := &e.prof[pi]
	var d Decision
	path, query, _ := strings.Cut(req.URI, "?")
	if !e.plain {
		fs := e.scan.Scan(&inspect.Request{Method: req.Method, URI: req.URI, Header: req.Header, Body: req.Body})
		for _, f := range fs {
			if excluded(p, f.ID, path) {
				continue
			}
			data := f.Where.String()
			if f.Name != "" {
				data += ":" + f.Name
			}
			d.Matches = append(d.Matches, Match{ID: f.ID, Msg: f.Msg + " (" + string(f.Class) + ")", Data: data + " " + strconv.Quote(f.Match), Severity: 2})
			d.Score += criticalScore
		}
	}
	if err := ctx.Err(); err != nil {
		// the client left: no verdict (the server answers 503, never
		// passes), and no Coraza run for nobody
		return Decision{}, fmt.Errorf("waf: inspection abandoned: %w", err)
	}
	skip := e.fast && e.canonOK && (e.fastClean(pi, req, path, query) || e.fastCleanBody(pi, req, path, query))
	if !skip {
		m, score, prose, in, err := e.run(pi, req.Method, req.URI, req.Proto, req.Host, req.Header, req.Body, req.Client, false)
		if err != nil {
			return Decision{}, err
		}
		ours := len(d.Matches)
		d.Matches = append(m, d.Matches...)
		if !e.plain && ours == 0 {
			score -= prose
		}
		d.Score += score
		if in != nil && in.RuleID < 949000 {
			// a rule that denies by itself (e.g. 400 for a body that
			// does not parse), not the anomaly evaluation
			d.Status = in.Status
			d.Action = Block
		}
	}
	if d.Score >= p.AnomalyThreshold && d.Score > 0 {
		d.Action = Block
		d.Status = 0 // an attack: 403, even if a parser also failed
	}
	if d.Action == Block && p.DetectOnly {
		d.Action, d.Status = Detect, 0
	}
	return d, nil
}

// proseRules are CRS rules known to fire on ordinary text (a sentence
// starting with "ls" or "zsh", "union ... select" in prose, an e-mail
// address read as SQL by libinjection, "JavaScript:" as a word, \uXXXX
// escapes in JSON-ish values). When our own layer — which decodes the
// value and parses it with stricter grammars — finds nothing anywhere in
// the request, their score is not counted: they need a second opinion.
// Every other CRS rule counts as it is.
var proseRules = map[int]bool{
	942100: true, // libinjection SQLi
	942190: true, // MSSQL code execution / information gathering (union..select in prose)
	932250: true, // Unix command at the start of a value
	932260: true, // Unix command (direct)
	941210: true, // obfuscated "javascript:"
	920540: true, // Unicode escape (we decode it ourselves)
	942200: true, // PL2: any "a,b" list ending in a hex digit (coreruleset#4660)
}

// severityScore is CRS's anomaly score for a rule severity.
func severityScore(sev int) int {
	switch sev {
	case 2:
		return 5
	case 3:
		return 4
	case 4:
		return 3
	case 5:
		return 2
	}
	return 0
}

func excluded(p *SiteRules, id int, path string) bool {
	for _, x := range p.Exclusions {
		hi := x.RuleID
		if x.RuleIDTo > hi {
			hi = x.RuleIDTo
		}
		if id >= x.RuleID && id <= hi && x.Target == "" && strings.HasPrefix(path, x.PathPrefix) {
			return true
		}
	}
	return false
}

// txState reaches Coraza's transaction variables (TX collection).
type txState interface {
	Variables() plugintypes.TransactionVariables
}

// run runs Coraza on one request and returns the matched rules with a
// message, the inbound anomaly score and the interruption.
func (e *CRSEngine) run(pi int, method, uri, proto, host string, h http.Header, body []byte, client interface{ String() string }, raw bool) ([]Match, int, int, *types.Interruption, error) {
	p := &e.prof[pi]
	tx := e.waf.NewTransaction()
	defer func() {
		tx.ProcessLogging()
		_ = tx.Close()
	}()
	if st, ok := tx.(txState); ok {
		v := st.Variables().TX()
		pl := strconv.Itoa(p.ParanoiaLevel)
		v.Set("blocking_paranoia_level", []string{pl})
		v.Set("detection_paranoia_level", []string{pl})
		v.Set("inbound_anomaly_score_threshold", []string{strconv.Itoa(max(p.AnomalyThreshold, 1))})
		v.Set("seccloud_site", []string{strconv.Itoa(pi)})
		if raw {
			v.Set("seccloud_rawbody", []string{"1"})
		}
	} else {
		return nil, 0, 0, nil, errors.New("waf: coraza transaction without variables")
	}
	addr, port := "", 0
	if client != nil {
		if s := client.String(); s != "" && s != "invalid AddrPort" {
			if i := strings.LastIndexByte(s, ':'); i > 0 {
				addr = strings.Trim(s[:i], "[]")
				port, _ = strconv.Atoi(s[i+1:])
			}
		}
	}
	tx.ProcessConnection(addr, port, "", 0)
	tx.ProcessURI(uri, method, proto)
	for k, vs := range h {
		for _, v := range vs {
			tx.AddRequestHeader(k, v)
		}
	}
	if host != "" {
		tx.AddRequestHeader("Host", host)
		tx.SetServerName(host)
	}
	in := tx.ProcessRequestHeaders()
	if in == nil {
		if len(body) > 0 {
			var err error
			if in, _, err = tx.WriteRequestBody(body); err != nil {
				return nil, 0, 0, nil, fmt.Errorf("waf: coraza request body: %w", err)
			}
		}
		if in == nil {
			var err error
			if in, err = tx.ProcessRequestBody(); err != nil {
				return nil, 0, 0, nil, fmt.Errorf("waf: coraza request body: %w", err)
			}
		}
	}
	var ms []Match
	prose := 0
	for _, mr := range tx.MatchedRules() {
		r := mr.Rule()
		id := r.ID()
		if mr.Message() == "" || id < 910000 || id >= 949000 && id < 950000 || id >= 980000 {
			continue
		}
		data := mr.Data()
		if len(data) > 200 {
			data = data[:200]
		}
		ms = append(ms, Match{ID: id, Msg: mr.Message(), Data: data, Severity: int(r.Severity())})
		if proseRules[id] {
			prose += severityScore(int(r.Severity())) * max(1, len(mr.MatchedDatas()))
		}
	}
	score := 0
	if st, ok := tx.(txState); ok {
		if v := st.Variables().TX().Get("blocking_inbound_anomaly_score"); len(v) > 0 {
			score, _ = strconv.Atoi(v[0])
		}
	}
	if in != nil && in.RuleID < 949000 && len(ms) == 0 {
		ms = append(ms, Match{ID: in.RuleID, Msg: "request refused by rule " + strconv.Itoa(in.RuleID), Severity: 2})
	}
	return ms, score, prose, in, nil
}

// clean runs Coraza on a synthetic request and reports whether no rule
// with a message matched and nothing interrupted.
func (e *CRSEngine) clean(pi int, method, uri, proto, host string, h http.Header) bool {
	ms, score, _, in, err := e.run(pi, method, uri, proto, host, h, nil, nil, false)
	return err == nil && len(ms) == 0 && score == 0 && in == nil
}

// InspectResponse implements ResponseInspector: CRS's response rules
// (RESPONSE-95x: SQL, Java, PHP, IIS and Ruby errors, web shells, data
// leaks; phases 3 and 4) and, unless Plain, our leak patterns (database
// errors, system files, stack traces) run on the head of a text response,
// so that an origin that answered with a database error is reported with
// the CRS ids SOC analysts know. The response rules see the response
// headers and body after a canonical GET of the same path (the request
// itself was inspected already). Clean verdicts are memoised by a hash of
// site, path, status, content type and body, so a page served again
// (byte-identical) costs one hash.
func (e *CRSEngine) InspectResponse(req *Request, status int, header http.Header, body []byte) []Match {
	if len(body) == 0 {
		return nil
	}
	pi := e.profile(req.Site)
	path, _, _ := strings.Cut(req.URI, "?")
	if !strings.HasPrefix(path, "/") {
		path = "/"
	}
	var h maphash.Hash
	h.SetSeed(e.respSeed)
	fmt.Fprintf(&h, "%d\x00%s\x00%d\x00%s\x00", pi, path, status, header.Get("Content-Type"))
	_, _ = h.Write(body)
	key := h.Sum64()
	if _, ok := e.respClean.Get(key); ok {
		return nil
	}
	ms, err := e.runResponse(pi, path, status, header, body)
	if err != nil {
		e.log.Warn("waf: response rules", "err", err)
	}
	if !e.plain {
		ms = append(ms, inspectLeak(body)...)
	}
	if len(ms) == 0 && err == nil {
		e.respClean.Add(key, struct{}{})
	}
	return ms
}

// runResponse runs CRS's response phases on one response, after a
// canonical GET of path, and returns the response rules that matched.
func (e *CRSEngine) runResponse(pi int, path string, status int, header http.Header, body []byte) ([]Match, error) {
	p := &e.prof[pi]
	tx := e.waf.NewTransaction()
	defer func() {
		tx.ProcessLogging()
		_ = tx.Close()
	}()
	st, ok := tx.(txState)
	if !ok {
		return nil, errors.New("waf: coraza transaction without variables")
	}
	v := st.Variables().TX()
	pl := strconv.Itoa(p.ParanoiaLevel)
	v.Set("blocking_paranoia_level", []string{pl})
	v.Set("detection_paranoia_level", []string{pl})
	v.Set("seccloud_site", []string{strconv.Itoa(pi)})
	// the canonical request must not stop the transaction before the
	// response phases
	v.Set("inbound_anomaly_score_threshold", []string{"100000"})
	tx.ProcessConnection("", 0, "", 0)
	tx.ProcessURI(path, "GET", "HTTP/1.1")
	for k, vs := range canonHeader {
		for _, x := range vs {
			tx.AddRequestHeader(k, x)
		}
	}
	tx.AddRequestHeader("Host", "localhost")
	tx.SetServerName("localhost")
	if in := tx.ProcessRequestHeaders(); in != nil {
		return nil, nil
	}
	if in, err := tx.ProcessRequestBody(); in != nil || err != nil {
		return nil, err
	}
	for k, vs := range header {
		for _, x := range vs {
			tx.AddResponseHeader(k, x)
		}
	}
	tx.ProcessResponseHeaders(status, "HTTP/1.1")
	if tx.IsResponseBodyAccessible() && tx.IsResponseBodyProcessable() {
		if _, _, err := tx.WriteResponseBody(body); err != nil {
			return nil, fmt.Errorf("waf: coraza response body: %w", err)
		}
		if _, err := tx.ProcessResponseBody(); err != nil {
			return nil, fmt.Errorf("waf: coraza response body: %w", err)
		}
	}
	var out []Match
	for _, mr := range tx.MatchedRules() {
		id := mr.Rule().ID()
		if mr.Message() == "" || id < 950000 || id >= 959000 {
			continue
		}
		data := mr.Data()
		if len(data) > 200 {
			data = data[:200]
		}
		out = append(out, Match{ID: id, Msg: mr.Message(), Data: data, Severity: int(mr.Rule().Severity())})
	}
	return out, nil
}
