package dnsres

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/dnsres/dga"
	"github.com/jichitai/seccloud/tenant"
)

// Defaults of DetectorConfig.
const (
	DefaultDetectWindow       = time.Minute
	DefaultTunnelUnique       = 60
	DefaultTunnelLabelLen     = 40
	DefaultTunnelEntropy      = 3.6
	DefaultNXDomainStorm      = 100
	DefaultDetectMaxTracked   = 100_000
	defaultTunnelMinSubdomain = 20 // characters of subdomain before entropy counts
)

// DefaultAllowDomains are registered domains (and everything below them)
// never judged by the Detector: content-delivery and cloud platforms whose
// host names are random by design, and whose clients ask for many unique
// subdomains.
var DefaultAllowDomains = []string{
	"cloudfront.net", "amazonaws.com", "akamaiedge.net", "akamai.net", "akamaihd.net", "akamaized.net",
	"akadns.net", "edgekey.net", "edgesuite.net", "azureedge.net", "azurefd.net", "azurewebsites.net",
	"cloudapp.net", "cloudapp.azure.com", "trafficmanager.net", "windows.net", "msedge.net", "office.net",
	"office365.com", "microsoft.com", "live.com", "googleusercontent.com", "googlevideo.com", "gstatic.com",
	"ggpht.com", "gvt1.com", "gvt2.com", "1e100.net", "googleapis.com", "google.com", "doubleclick.net",
	"fastly.net", "fastlylb.net", "cloudflare.net", "cloudflare.com", "cdn77.org", "llnwd.net",
	"edgecastcdn.net", "apple.com", "aaplimg.com", "icloud.com", "mzstatic.com", "herokuapp.com",
	"appspot.com", "githubusercontent.com", "github.io", "spamhaus.org", "sophosxl.net", "trendmicro.com",
	"mcafee.com", "e5.sk", "dnswl.org", "surbl.org", "uribl.com", "barracudacentral.org", "arpa",
	"msftncsi.com", "msftconnecttest.com",
}

// DetectorConfig configures a Detector. Every zero value selects the
// documented default.
type DetectorConfig struct {
	// Model scores names for DGA-likeness; nil means dga.Default() (the
	// shipped model).
	Model *dga.Model
	// DGAThreshold is the P(DGA) at or above which a name is judged
	// DGA-like; zero means the model's own threshold (chosen for ≤ 0.5 %
	// false positives, see dga/README.md). Negative turns DGA scoring off.
	DGAThreshold float64
	// AllowDomains are domains never judged (names equal to or below
	// them). Nil means DefaultAllowDomains; an empty non-nil slice means
	// none.
	AllowDomains []string
	// Window is the counting window of the per-client statistics; zero
	// means DefaultDetectWindow (one minute).
	Window time.Duration
	// TunnelUnique is the number of distinct names one client asks below
	// one registered domain in a window that, when at least 30 % of the
	// queries have long or high-entropy labels or are TXT/NULL, is judged
	// tunnelling. Zero means DefaultTunnelUnique; negative turns tunnel
	// detection off.
	TunnelUnique int
	// TunnelLabelLen is the label length from which a label counts as
	// long; zero means DefaultTunnelLabelLen.
	TunnelLabelLen int
	// TunnelEntropy is the Shannon entropy (bits per character) of the
	// subdomain part (20+ characters) from which it counts as encoded
	// data; zero means DefaultTunnelEntropy.
	TunnelEntropy float64
	// NXDomainStorm is the number of NXDOMAIN answers to one client in a
	// window that is reported as a storm; zero means DefaultNXDomainStorm;
	// negative turns storm detection off.
	NXDomainStorm int
	// Block answers DGA-like names and names under a domain judged a
	// tunnel with NXDOMAIN instead of reporting them only. Tenants in
	// report-only mode (tenant.Policy.ReportOnly) are never blocked.
	// False (the default) reports only.
	Block bool
	// BlockTenants restricts Block to these tenant ids; empty means every
	// tenant.
	BlockTenants []string
	// Sink receives the window alerts (tunnel, NXDOMAIN storm): one event
	// per client and domain (or client) and window. Per-query DGA verdicts
	// go into the query-log event instead. Nil discards. Must not block.
	Sink detect.Sink
	// MaxTracked bounds the per-client statistics kept (entries of client
	// × domain); when full, a shard's statistics are reset. Zero means
	// DefaultDetectMaxTracked.
	MaxTracked int
}

// Detector is the detection step of the handler chain and an Observer
// of the server: it scores question names for DGA-likeness, keeps
// per-client statistics of the subdomains asked below each registered
// domain (tunnelling) and of the NXDOMAIN answers (storms, typical of a
// DGA bot searching for its server), and emits verdicts with scores.
// By default it reports only; see DetectorConfig.Block.
//
// Use it twice: Chain(..., det.Middleware) and ServerConfig.Observer: det.
// Safe for concurrent use.
type Detector struct {
	cfg    DetectorConfig
	model  *dga.Model
	thr    float64
	allow  map[string]struct{}
	block  map[string]bool
	seed   maphash.Seed
	memo   [detShards]memoShard
	tunnel [detShards]tunnelShard
	storm  [detShards]stormShard
	perShd int
}

const (
	detShards   = 16
	memoPerShd  = 4096
	maxUniqHash = 4096
)

type memoShard struct {
	mu sync.Mutex
	m  map[uint64]memoEntry
}

type memoEntry struct {
	score  float32
	regLen uint8 // length of the registered domain at the end of the dotted name; 0: none
	allow  bool
}

type tunnelShard struct {
	mu sync.Mutex
	m  map[uint64]*tunnelState
}

type tunnelState struct {
	start      time.Time
	queries    int
	txt        int
	suspicious int
	uniq       map[uint64]struct{}
	flagged    time.Time // when judged a tunnel (zero: not)
	alerted    bool
	maxScore   int
}

type stormShard struct {
	mu sync.Mutex
	m  map[netip.Addr]*stormState
}

type stormState struct {
	start   time.Time
	nx, dga int
	alerted bool
}

// NewDetector validates cfg and returns a Detector.
func NewDetector(cfg DetectorConfig) (*Detector, error) {
	if cfg.Window < 0 {
		return nil, errors.New("dnsres: DetectorConfig.Window is negative")
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultDetectWindow
	}
	if cfg.TunnelUnique == 0 {
		cfg.TunnelUnique = DefaultTunnelUnique
	}
	if cfg.TunnelLabelLen == 0 {
		cfg.TunnelLabelLen = DefaultTunnelLabelLen
	}
	if cfg.TunnelLabelLen < 0 || cfg.TunnelLabelLen > 63 {
		return nil, fmt.Errorf("dnsres: DetectorConfig.TunnelLabelLen %d not in 1..63", cfg.TunnelLabelLen)
	}
	if cfg.TunnelEntropy == 0 {
		cfg.TunnelEntropy = DefaultTunnelEntropy
	}
	if cfg.TunnelEntropy < 0 {
		return nil, errors.New("dnsres: DetectorConfig.TunnelEntropy is negative")
	}
	if cfg.NXDomainStorm == 0 {
		cfg.NXDomainStorm = DefaultNXDomainStorm
	}
	if cfg.MaxTracked < 0 {
		return nil, errors.New("dnsres: DetectorConfig.MaxTracked is negative")
	}
	if cfg.MaxTracked == 0 {
		cfg.MaxTracked = DefaultDetectMaxTracked
	}
	if cfg.DGAThreshold > 1 {
		return nil, fmt.Errorf("dnsres: DetectorConfig.DGAThreshold %v is above 1", cfg.DGAThreshold)
	}
	if cfg.Sink == nil {
		cfg.Sink = detect.Discard
	}
	d := &Detector{cfg: cfg, model: cfg.Model, seed: maphash.MakeSeed(), perShd: max(1, cfg.MaxTracked/detShards)}
	if d.model == nil {
		m, err := dga.Default()
		if err != nil {
			return nil, fmt.Errorf("dnsres: detector: %w", err)
		}
		d.model = m
	}
	d.thr = cfg.DGAThreshold
	if d.thr == 0 {
		d.thr = d.model.Threshold()
	}
	allow := cfg.AllowDomains
	if allow == nil {
		allow = DefaultAllowDomains
	}
	d.allow = make(map[string]struct{}, len(allow))
	for _, a := range allow {
		a = normName(a)
		if a == "" {
			return nil, errors.New("dnsres: DetectorConfig.AllowDomains has an empty name")
		}
		d.allow[a] = struct{}{}
	}
	if len(cfg.BlockTenants) > 0 {
		d.block = make(map[string]bool, len(cfg.BlockTenants))
		for _, t := range cfg.BlockTenants {
			d.block[t] = true
		}
	}
	for i := range d.memo {
		d.memo[i].m = make(map[uint64]memoEntry)
		d.tunnel[i].m = make(map[uint64]*tunnelState)
		d.storm[i].m = make(map[netip.Addr]*stormState)
	}
	return d, nil
}

// normName lower-cases a presentation name and removes the trailing dot.
func normName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	for len(b) > 0 && b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	return string(b)
}

// blocks reports whether the detector blocks for tenant t.
func (d *Detector) blocks(t *tenant.Tenant) bool {
	if !d.cfg.Block || t == nil || t.Policy.ReportOnly {
		return false
	}
	return d.block == nil || d.block[t.ID]
}

// judge returns the memoised DGA judgement of the dotted name.
func (d *Detector) judge(name []byte) memoEntry {
	h := maphash.Bytes(d.seed, name)
	sh := &d.memo[h%detShards]
	sh.mu.Lock()
	e, ok := sh.m[h]
	sh.mu.Unlock()
	if ok {
		return e
	}
	// Allow-listed: the name or one of its parents.
	for i := 0; i < len(name); i++ {
		if i == 0 || name[i-1] == '.' {
			if _, ok := d.allow[string(name[i:])]; ok {
				e.allow = true
				break
			}
		}
	}
	s := string(name)
	if !e.allow {
		if _, reg, ok := dga.Split(s); ok {
			e.regLen = uint8(len(reg))
			if d.thr >= 0 {
				e.score = float32(d.model.Score(s).Score)
			}
		}
	}
	sh.mu.Lock()
	if len(sh.m) >= memoPerShd {
		clear(sh.m)
	}
	sh.m[h] = e
	sh.mu.Unlock()
	return e
}

// Middleware returns the detection step in front of next. Queries that
// already carry a verdict (e.g. from Policy) are counted but not judged
// again.
func (d *Detector) Middleware(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) (int, error) {
		v := d.Check(r)
		if v.Action == detect.ActionNone || r.Verdict.Action != detect.ActionNone {
			return next.ServeDNS(ctx, w, r)
		}
		if v.Action == detect.ActionReport {
			r.Verdict, r.Severity = v, detect.SeverityReached
			return next.ServeDNS(ctx, w, r)
		}
		r.Verdict, r.Severity, r.Source = v, detect.SeverityReached, "policy"
		m := new(dns.Msg)
		m.Rcode = dns.RcodeNameError
		return m.Rcode, w.WriteMsg(m)
	})
}

// Check judges one query without answering it: it updates the
// statistics (emitting a window alert to the sink when a tunnel is
// found) and returns the verdict — ActionNone, ActionReport, or
// ActionBlock when the tenant is blocked (see DetectorConfig.Block). It
// is what Middleware does before answering, usable offline with requests
// from NewRequest (e.g. to replay a query log).
func (d *Detector) Check(r *Request) detect.Verdict {
	var buf [256]byte
	n, ok := dottedName(&buf, r.wireName())
	if !ok {
		return detect.Verdict{}
	}
	name := buf[:n]
	e := d.judge(name)
	if e.allow || e.regLen == 0 {
		return detect.Verdict{}
	}
	var v detect.Verdict
	if d.cfg.TunnelUnique > 0 {
		v = d.countTunnel(r, name, int(e.regLen))
	}
	if v.Rule == "" && d.thr >= 0 && float64(e.score) >= d.thr {
		reg := string(name[n-int(e.regLen):])
		v = detect.Verdict{Rule: "dns-dga", RuleName: "DGA-like domain name", Score: int(math.Round(float64(e.score) * 100)),
			Reason: "query for " + r.Name() + ": " + reg + " looks machine-generated (DGA score " +
				strconv.FormatFloat(float64(e.score), 'f', 2, 64) + ")"}
	}
	if v.Rule == "" {
		return detect.Verdict{}
	}
	v.Action = detect.ActionReport
	if d.blocks(r.Tenant) {
		v.Action = detect.ActionBlock
	}
	return v
}

// countTunnel updates the statistics of (client, registered domain) with
// one query for name and returns a tunnel verdict (without action) when
// the pair is judged a tunnel.
func (d *Detector) countTunnel(r *Request, name []byte, regLen int) detect.Verdict {
	sub := len(name) - regLen - 1 // subdomain part, without the dot
	if sub <= 0 {
		return detect.Verdict{}
	}
	reg := name[len(name)-regLen:]
	key := maphash.Bytes(d.seed, reg) ^ maphash.Comparable(d.seed, r.Client.Addr())*0x9e3779b97f4a7c15
	suspicious := d.suspicious(name[:sub])
	txtNull := r.Type == dns.TypeTXT || r.Type == dns.TypeNULL
	now := r.Start
	sh := &d.tunnel[key%detShards]
	sh.mu.Lock()
	st := sh.m[key]
	if st == nil && !suspicious && !txtNull {
		// Statistics start with the first query that could be tunnelling:
		// ordinary names cost one lookup.
		sh.mu.Unlock()
		return detect.Verdict{}
	}
	subHash := maphash.Bytes(d.seed, name[:sub])
	if st == nil || now.Sub(st.start) >= d.cfg.Window {
		if st == nil {
			if len(sh.m) >= d.perShd {
				d.evictTunnel(sh, now)
			}
			st = &tunnelState{uniq: make(map[uint64]struct{})}
			sh.m[key] = st
		}
		// A tunnel stays flagged for the next window too.
		if !st.flagged.IsZero() && now.Sub(st.flagged) >= 2*d.cfg.Window {
			st.flagged = time.Time{}
		}
		st.start, st.queries, st.txt, st.suspicious, st.alerted, st.maxScore = now, 0, 0, 0, false, 0
		clear(st.uniq)
	}
	st.queries++
	if txtNull {
		st.txt++
	}
	if suspicious {
		st.suspicious++
	}
	if len(st.uniq) < maxUniqHash {
		st.uniq[subHash] = struct{}{}
	}
	uniq := len(st.uniq)
	score := d.tunnelScore(uniq, st.queries, st.suspicious, st.txt)
	alert := false
	if score >= 60 {
		if st.flagged.IsZero() {
			st.flagged = now
		}
		if !st.alerted {
			st.alerted, alert = true, true
		}
		st.maxScore = max(st.maxScore, score)
	}
	flagged := !st.flagged.IsZero()
	queries, txt, susp := st.queries, st.txt, st.suspicious
	sh.mu.Unlock()
	if !flagged {
		return detect.Verdict{}
	}
	regS := string(reg)
	v := detect.Verdict{Rule: "dns-tunnel", RuleName: "DNS tunnelling", Score: max(score, 60),
		Reason: "client " + r.Client.Addr().String() + " asked " + strconv.Itoa(uniq) + " distinct names below " + regS +
			" in " + d.cfg.Window.String() + " (" + strconv.Itoa(susp) + " with long or high-entropy labels, " +
			strconv.Itoa(txt) + " TXT/NULL, " + strconv.Itoa(queries) + " queries)"}
	if alert {
		d.emitWindowAlert(r, v, regS)
	}
	return v
}

// tunnelScore combines the window counters into 0..100.
func (d *Detector) tunnelScore(uniq, queries, suspicious, txt int) int {
	t := d.cfg.TunnelUnique
	if uniq < t {
		return 0
	}
	frac := func(k int) float64 { return float64(k) / float64(queries) }
	score := 0.0
	// Many distinct short names alone are no tunnel (a proxy or mail
	// server resolving for many users looks the same): the names must
	// carry data, or be asked as TXT/NULL.
	if frac(suspicious) < 0.3 && frac(txt) < 0.3 {
		return 0
	}
	score = 60 + 20*math.Max(frac(suspicious), frac(txt))
	score += 20 * math.Min(1, float64(uniq-t)/float64(4*t))
	return int(math.Min(100, score))
}

// suspicious reports whether a subdomain part looks like encoded data: a
// label of TunnelLabelLen or more, or 20+ characters of high entropy.
func (d *Detector) suspicious(sub []byte) bool {
	if len(sub) < defaultTunnelMinSubdomain && len(sub) < d.cfg.TunnelLabelLen {
		return false // the common case: short names
	}
	run := 0
	var counts [256]uint16
	chars := 0
	for _, c := range sub {
		if c == '.' {
			run = 0
			continue
		}
		run++
		if run >= d.cfg.TunnelLabelLen {
			return true
		}
		counts[c]++
		chars++
	}
	if chars < defaultTunnelMinSubdomain {
		return false
	}
	var ent float64
	for _, k := range counts {
		if k > 0 {
			p := float64(k) / float64(chars)
			ent -= p * math.Log2(p)
		}
	}
	return ent >= d.cfg.TunnelEntropy
}

// evictTunnel drops expired statistics of a full shard, or all of them.
func (d *Detector) evictTunnel(sh *tunnelShard, now time.Time) {
	for k, st := range sh.m {
		if now.Sub(st.start) >= 2*d.cfg.Window {
			delete(sh.m, k)
		}
	}
	if len(sh.m) >= d.perShd {
		clear(sh.m)
	}
}

// Observe counts NXDOMAIN answers per client and reports storms (it is
// the server's Observer).
func (d *Detector) Observe(r *Request, rcode int) {
	if d.cfg.NXDomainStorm < 0 || rcode != dns.RcodeNameError || r.Source == "policy" {
		return
	}
	isDGA := false
	if d.thr >= 0 {
		var buf [256]byte
		if n, ok := dottedName(&buf, r.wireName()); ok {
			e := d.judge(buf[:n])
			isDGA = !e.allow && float64(e.score) >= d.thr
		}
	}
	addr := r.Client.Addr()
	sh := &d.storm[maphash.Comparable(d.seed, addr)%detShards]
	now := r.Start
	sh.mu.Lock()
	st := sh.m[addr]
	if st == nil {
		if len(sh.m) >= d.perShd {
			for k, s := range sh.m {
				if now.Sub(s.start) >= d.cfg.Window {
					delete(sh.m, k)
				}
			}
			if len(sh.m) >= d.perShd {
				clear(sh.m)
			}
		}
		st = &stormState{start: now}
		sh.m[addr] = st
	}
	if now.Sub(st.start) >= d.cfg.Window {
		*st = stormState{start: now}
	}
	st.nx++
	if isDGA {
		st.dga++
	}
	fire := st.nx >= d.cfg.NXDomainStorm && !st.alerted
	if fire {
		st.alerted = true
	}
	nx, dg := st.nx, st.dga
	sh.mu.Unlock()
	if !fire {
		return
	}
	score := 60 + int(40*float64(dg)/float64(nx))
	v := detect.Verdict{Action: detect.ActionReport, Rule: "dns-nxdomain-storm", RuleName: "NXDOMAIN storm", Score: score,
		Reason: "client " + addr.String() + " got " + strconv.Itoa(nx) + " NXDOMAIN answers within " + d.cfg.Window.String() +
			" (" + strconv.Itoa(dg) + " for DGA-like names)"}
	d.emitWindowAlert(r, v, "")
}

// emitWindowAlert sends one aggregated alert (tunnel or storm) to the sink.
func (d *Detector) emitWindowAlert(r *Request, v detect.Verdict, domain string) {
	if v.Action == detect.ActionNone {
		v.Action = detect.ActionReport
		if d.blocks(r.Tenant) {
			v.Action = detect.ActionBlock
		}
	}
	e := detect.Event{
		Time: r.Start, Module: "dns", Dataset: "dns.detection", Kind: "alert",
		Category: "intrusion_detection", Type: "indicator", Action: "dns_" + v.Rule[len("dns-"):],
		Outcome: "success", Client: r.Client, Terminal: r.Client.Addr().String(),
		Verdict: v, Severity: detect.SeverityReached,
		DNS: detect.DNSInfo{QName: r.Name(), QType: typeString(r.Type)},
	}
	if domain != "" {
		e.Labels = []detect.Label{{Key: "dns_domain", Value: domain}}
	}
	if r.Tenant != nil {
		e.Tenant = r.Tenant.ID
	}
	d.cfg.Sink.Emit(e)
}
