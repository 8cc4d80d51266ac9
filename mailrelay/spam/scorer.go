package spam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/mail"
	"net/netip"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/mailrelay/internal/mailparse"
)

// Resolver is the DNS lookup the DNSBL checks need; *net.Resolver
// satisfies it.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Zone is one DNS block list.
type Zone struct {
	// Name is the zone, e.g. "zen.spamhaus.org" (no trailing dot needed).
	Name string
	// Domains makes it a domain list (queried with the sender domain and
	// URL hosts) rather than an IP list (queried with the reversed
	// client address).
	Domains bool
	// Points added on a listing (default 3).
	Points float64
}

// Config configures a Scorer. Every field is optional.
type Config struct {
	// Model is the text classifier; nil = DefaultModel().
	Model *Model
	// Zones are the DNS block lists; none = no DNSBL lookups.
	Zones []Zone
	// Resolver answers DNSBL queries; nil = net.DefaultResolver.
	Resolver Resolver
	// DNSTimeout bounds all DNSBL lookups of one message (default 2 s);
	// a zone that does not answer in time adds nothing.
	DNSTimeout time.Duration
	// Intel, when set, is checked for the URL hosts and the sender
	// domains (rule INTEL_URL / INTEL_SENDER).
	Intel *intel.Live
	// Now returns the time (default time.Now), for date checks.
	Now func() time.Time
	// Logger; nil = discard.
	Logger *slog.Logger
}

// Input is one message to score.
type Input struct {
	// Raw is the message, header and body.
	Raw []byte
	// Client is the SMTP client address (for IP block lists); zero =
	// none.
	Client netip.Addr
	// EnvelopeFrom is the MAIL FROM address.
	EnvelopeFrom string
	// SPF, DKIM and DMARC are the authentication results ("pass",
	// "fail", "softfail", "none", ...); "" = not checked.
	SPF, DKIM, DMARC string
}

// Hit is one rule that matched.
type Hit struct {
	Rule   string  `json:"rule"`
	Points float64 `json:"points"`
	Detail string  `json:"detail,omitempty"`
}

// Report is the outcome of scoring a message.
type Report struct {
	// Score is the sum of the points of Hits (the classifier's included
	// as rule BAYES).
	Score float64 `json:"score"`
	// Prob is the classifier's P(spam).
	Prob float64 `json:"prob"`
	// Hits are the rules that matched, highest points first.
	Hits []Hit `json:"hits"`
	// Bulk is the advertising / bulk-mail analysis.
	Bulk Bulk `json:"bulk"`
}

// Rules returns the names of the rules hit, in order.
func (r *Report) Rules() []string {
	out := make([]string, len(r.Hits))
	for i, h := range r.Hits {
		out[i] = h.Rule
	}
	return out
}

// Scorer scores messages: classifier, header and structure heuristics,
// DNSBL, threat intelligence, and advertising marks. Safe for concurrent
// use.
type Scorer struct {
	cfg Config
}

// New returns a Scorer. It fails only when the default model cannot be
// read or a zone is invalid.
func New(cfg Config) (*Scorer, error) {
	if cfg.Model == nil {
		m, err := DefaultModel()
		if err != nil {
			return nil, err
		}
		cfg.Model = m
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.DNSTimeout <= 0 {
		cfg.DNSTimeout = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for i, z := range cfg.Zones {
		z.Name = strings.Trim(strings.ToLower(z.Name), ".")
		if z.Name == "" || strings.ContainsAny(z.Name, " /\\") {
			return nil, fmt.Errorf("spam: Zones[%d]: bad zone name %q", i, z.Name)
		}
		if z.Points == 0 {
			z.Points = 3
		}
		cfg.Zones[i] = z
	}
	return &Scorer{cfg: cfg}, nil
}

// Classifier points: 2.5 × logit, clipped to [-5, 12]; P(spam) 0.9 gives
// 5.5 points, 0.99 gives 11.5.
func bayesPoints(logit float64) float64 {
	return math.Max(-5, math.Min(12, 2.5*logit))
}

// Score scores in. Errors are never returned for lookups that fail: a
// DNSBL that does not answer adds nothing (and is logged).
func (s *Scorer) Score(ctx context.Context, in Input) Report {
	m := mailparse.Parse(in.Raw, mailparse.Limits{})
	return s.ScoreParsed(ctx, in, m)
}

// ScoreParsed is Score for a message the caller has already parsed
// (mailrelay parses once for all its checks); in.Raw is not read again.
func (s *Scorer) ScoreParsed(ctx context.Context, in Input, m *mailparse.Message) Report {
	return s.score(ctx, in, m)
}

func (s *Scorer) score(ctx context.Context, in Input, m *mailparse.Message) Report {
	var r Report
	hit := func(rule string, pts float64, detail string) {
		r.Hits = append(r.Hits, Hit{Rule: rule, Points: pts, Detail: detail})
	}
	res := s.cfg.Model.Classify(tokensOf(m))
	r.Prob = res.Prob
	var top []string
	for _, c := range res.Top {
		top = append(top, fmt.Sprintf("%s(%+.2f)", c.Token, c.Weight))
	}
	hit("BAYES", math.Round(bayesPoints(res.Logit)*100)/100, fmt.Sprintf("P(spam)=%.3f %s", res.Prob, strings.Join(top, " ")))
	s.headerRules(m, in, hit)
	s.urlRules(m, hit)
	s.authRules(in, hit)
	if len(s.cfg.Zones) > 0 {
		s.dnsbl(ctx, in, m, hit)
	}
	r.Bulk = bulkOf(m)
	sort.SliceStable(r.Hits, func(i, j int) bool { return r.Hits[i].Points > r.Hits[j].Points })
	for _, h := range r.Hits {
		r.Score += h.Points
	}
	r.Score = math.Round(r.Score*100) / 100
	return r
}

var freemail = map[string]bool{"gmail.com": true, "yahoo.co.jp": true, "yahoo.com": true, "hotmail.com": true, "outlook.com": true,
	"outlook.jp": true, "hotmail.co.jp": true, "icloud.com": true, "aol.com": true, "mail.ru": true, "qq.com": true, "163.com": true,
	"docomo.ne.jp": true, "ezweb.ne.jp": true, "au.com": true, "softbank.ne.jp": true, "i.softbank.jp": true, "gmx.com": true, "yandex.ru": true}

func addrDomain(a string) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return strings.ToLower(strings.Trim(a[i+1:], "> \t"))
	}
	return ""
}

func parseAddr(v string) (name, addr string) {
	if a, err := mail.ParseAddress(v); err == nil {
		return a.Name, a.Address
	}
	if i, j := strings.LastIndexByte(v, '<'), strings.LastIndexByte(v, '>'); i >= 0 && j > i {
		return strings.Trim(strings.TrimSpace(v[:i]), `"`), v[i+1 : j]
	}
	return "", strings.TrimSpace(v)
}

func (s *Scorer) headerRules(m *mailparse.Message, in Input, hit func(string, float64, string)) {
	h := m.Header
	from := h.Get("From")
	if from == "" {
		hit("MISSING_FROM", 2, "")
	}
	if !h.Has("Date") {
		hit("MISSING_DATE", 1, "")
	} else if d, err := mail.ParseDate(h.Get("Date")); err != nil {
		hit("INVALID_DATE", 0.5, h.Get("Date"))
	} else if now := s.cfg.Now(); d.After(now.Add(48 * time.Hour)) {
		hit("DATE_IN_FUTURE", 1.5, "")
	}
	if !h.Has("Message-ID") {
		hit("MISSING_MID", 1, "")
	}
	if h.Count("From") > 1 || h.Count("Subject") > 1 || h.Count("Date") > 1 {
		hit("DUPLICATE_HEADER", 2, "more than one From/Subject/Date")
	}
	name, addr := parseAddr(from)
	fd := addrDomain(addr)
	// A display name that is itself an address of another domain.
	if _, na := parseAddr(name); strings.Contains(name, "@") && addrDomain(na) != "" && addrDomain(na) != fd {
		hit("FROM_NAME_ADDR_MISMATCH", 2.5, name)
	}
	if rt := h.Get("Reply-To"); rt != "" && fd != "" {
		_, ra := parseAddr(rt)
		rd := addrDomain(ra)
		if rd != "" && registered(rd) != registered(fd) {
			pts := 1.0
			if freemail[rd] && !freemail[fd] {
				pts = 2
			}
			hit("REPLYTO_MISMATCH", pts, "From "+fd+", Reply-To "+rd)
		}
	}
	if ed := addrDomain(in.EnvelopeFrom); ed != "" && fd != "" && freemail[fd] && registered(ed) != registered(fd) {
		hit("FORGED_FREEMAIL", 2, "From "+fd+" sent with MAIL FROM "+ed)
	}
	subj := m.Subject
	if strings.Count(subj, "!")+strings.Count(subj, "！") >= 3 {
		hit("SUBJ_EXCLAIM", 0.5, "")
	}
	if letters, upper := caps(subj); letters >= 10 && upper*10 >= letters*8 {
		hit("SUBJ_ALL_CAPS", 1, "")
	}
	if m.HTMLOnly {
		hit("HTML_ONLY", 0.5, "")
	}
	if len(m.Defects) > 0 {
		hit("MIME_DEFECT", 0.5, strings.Join(m.Defects, ", "))
	}
}

func caps(s string) (letters, upper int) {
	for _, r := range s {
		if r < unicode.MaxASCII && unicode.IsLetter(r) {
			letters++
			if unicode.IsUpper(r) {
				upper++
			}
		}
	}
	return
}

var shorteners = map[string]bool{"bit.ly": true, "tinyurl.com": true, "t.co": true, "goo.gl": true, "ow.ly": true, "is.gd": true,
	"buff.ly": true, "rebrand.ly": true, "cutt.ly": true, "t.ly": true, "shorturl.at": true, "x.gd": true, "tiny.cc": true,
	"rb.gy": true, "v.gd": true, "s.id": true, "bl.ink": true, "lnkd.in": true, "qr.paps.jp": true, "00m.in": true}

func (s *Scorer) urlRules(m *mailparse.Message, hit func(string, float64, string)) {
	var short, ipurl string
	for _, u := range m.URLs {
		host := mailparse.URLHost(u)
		if shorteners[host] && short == "" {
			short = host
		}
		if _, err := netip.ParseAddr(host); err == nil && ipurl == "" {
			ipurl = host
		}
	}
	if short != "" {
		hit("URL_SHORTENER", 1.5, short)
	}
	if ipurl != "" {
		hit("URL_IP_HOST", 2, ipurl)
	}
	if s.cfg.Intel == nil {
		return
	}
	set := s.cfg.Intel.Load()
	if set == nil {
		return
	}
	for _, u := range m.URLs {
		if ind, ok := set.URL(u); ok {
			hit("INTEL_URL", 8, u+" ("+ind.Source+")")
			break
		}
		if ind, ok := set.Domain(mailparse.URLHost(u)); ok {
			hit("INTEL_URL", 8, mailparse.URLHost(u)+" ("+ind.Source+")")
			break
		}
	}
	_, fa := parseAddr(m.Header.Get("From"))
	for _, d := range []string{addrDomain(fa)} {
		if d == "" {
			continue
		}
		if ind, ok := set.Domain(d); ok {
			hit("INTEL_SENDER", 8, d+" ("+ind.Source+")")
			break
		}
	}
}

func (s *Scorer) authRules(in Input, hit func(string, float64, string)) {
	switch in.SPF {
	case "fail":
		hit("SPF_FAIL", 2, "")
	case "softfail":
		hit("SPF_SOFTFAIL", 1, "")
	}
	if in.DMARC == "fail" {
		hit("DMARC_FAIL", 2, "")
	}
	if in.DKIM == "fail" {
		hit("DKIM_INVALID", 0.5, "")
	}
}

// dnsbl queries every zone concurrently within DNSTimeout.
func (s *Scorer) dnsbl(ctx context.Context, in Input, m *mailparse.Message, hit func(string, float64, string)) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DNSTimeout)
	defer cancel()
	type q struct {
		zone Zone
		name string
		what string
	}
	var qs []q
	var domains []string
	seen := map[string]bool{}
	adddom := func(d string) {
		d = registered(strings.ToLower(d))
		if d != "" && !seen[d] && len(domains) < 10 {
			if _, err := netip.ParseAddr(d); err != nil {
				seen[d] = true
				domains = append(domains, d)
			}
		}
	}
	adddom(addrDomain(in.EnvelopeFrom))
	for _, u := range m.URLs {
		adddom(mailparse.URLHost(u))
	}
	for _, z := range s.cfg.Zones {
		if z.Domains {
			for _, d := range domains {
				qs = append(qs, q{z, d + "." + z.Name, d})
			}
			continue
		}
		if in.Client.IsValid() {
			if rev := reverse(in.Client); rev != "" {
				qs = append(qs, q{z, rev + "." + z.Name, in.Client.String()})
			}
		}
	}
	type ans struct {
		q     q
		addrs []string
		err   error
	}
	ch := make(chan ans, len(qs))
	for _, x := range qs {
		go func() {
			a, err := s.cfg.Resolver.LookupHost(ctx, x.name)
			ch <- ans{x, a, err}
		}()
	}
	listed := map[string]bool{}
	for range qs {
		a := <-ch
		if a.err != nil {
			var de *net.DNSError
			if !errors.As(a.err, &de) || !de.IsNotFound {
				s.cfg.Logger.Debug("spam: DNSBL lookup failed", "name", a.q.name, "err", a.err)
			}
			continue
		}
		for _, ip := range a.addrs {
			if strings.HasPrefix(ip, "127.") && !listed[a.q.zone.Name] {
				listed[a.q.zone.Name] = true
				rule := "DNSBL"
				if a.q.zone.Domains {
					rule = "URIBL"
				}
				hit(rule, a.q.zone.Points, a.q.what+" listed in "+a.q.zone.Name+" ("+ip+")")
				break
			}
		}
	}
}

// reverse returns the DNSBL query label of an address: reversed octets
// for IPv4, reversed nibbles for IPv6.
func reverse(a netip.Addr) string {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return fmt.Sprintf("%d.%d.%d.%d", b[3], b[2], b[1], b[0])
	}
	if a.Is6() {
		b := a.As16()
		var sb strings.Builder
		const hex = "0123456789abcdef"
		for i := 15; i >= 0; i-- {
			sb.WriteByte(hex[b[i]&15])
			sb.WriteByte('.')
			sb.WriteByte(hex[b[i]>>4])
			if i > 0 {
				sb.WriteByte('.')
			}
		}
		return sb.String()
	}
	return ""
}
