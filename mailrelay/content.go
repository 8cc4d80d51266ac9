package mailrelay

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"net/netip"
	"strings"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/internal/clamd"
	"github.com/jichitai/seccloud/mailrelay/internal/mailparse"
	"github.com/jichitai/seccloud/mailrelay/spam"
)

// Scanner scans a message for viruses; *clamd.Client satisfies it. An
// error means the scanner could not give an answer (the relay then
// defers the message with 451).
type Scanner interface {
	ScanBytes(ctx context.Context, b []byte) (clamd.Result, error)
}

// PolicyAction is what a content policy does with a message it flags.
type PolicyAction string

// The policy actions. Not every action fits every check: see Policy.
const (
	PolicyDefault    PolicyAction = ""           // take the cloud-wide default
	PolicyAllow      PolicyAction = "allow"      // deliver unchanged
	PolicyTag        PolicyAction = "tag"        // deliver with a subject tag
	PolicyQuarantine PolicyAction = "quarantine" // keep in quarantine, not delivered
	PolicyReject     PolicyAction = "reject"     // refuse in the session (550)
	PolicyDelete     PolicyAction = "delete"     // accept and discard (event only)
)

// Levels are spam-score thresholds (points, see package spam). A message
// whose score reaches Reject is refused, else Quarantine quarantined,
// else Tag delivered with the subject tagged. A zero field takes the
// cloud-wide default; a negative one disables that level.
type Levels struct {
	Tag        float64 `json:"tag" yaml:"tag"`
	Quarantine float64 `json:"quarantine" yaml:"quarantine"`
	Reject     float64 `json:"reject" yaml:"reject"`
}

// DefaultLevels are the cloud-wide defaults when ContentConfig.Default
// leaves Levels zero: tag at 4 points, quarantine at 6, reject at 15.
// With the classifier alone, P(spam) ≥ 0.83 tags and ≥ 0.92 quarantines;
// rejecting needs rules, DNSBL or intel hits on top of a certain
// classifier. Held-out figures: spam/corpus/REPORT.md.
var DefaultLevels = Levels{Tag: 4, Quarantine: 6, Reject: 15}

// Lists are block and allow lists. Senders are addresses
// ("user@example.jp") or domains ("example.jp", which covers its
// subdomains); they are matched against the envelope sender and the
// From: address. Clients are client address prefixes. A block-list match
// refuses the message (550); an allow-list match skips spam scoring and
// advertising checks, never the virus scan or the attachment policy.
// Block wins over allow.
type Lists struct {
	BlockSenders []string       `json:"block_senders,omitempty" yaml:"block_senders"`
	AllowSenders []string       `json:"allow_senders,omitempty" yaml:"allow_senders"`
	BlockClients []netip.Prefix `json:"block_clients,omitempty" yaml:"block_clients"`
	AllowClients []netip.Prefix `json:"allow_clients,omitempty" yaml:"allow_clients"`
}

// Policy is the content policy of a tenant (or the cloud-wide default).
// Zero fields take the default's value; Lists are added to the
// default's.
type Policy struct {
	// Spam: score thresholds (DefaultLevels).
	Spam Levels `json:"spam" yaml:"spam"`
	// SpamTag is put in front of the Subject of tagged spam (default
	// "[SPAM] ").
	SpamTag string `json:"spam_tag,omitempty" yaml:"spam_tag"`
	// Ads: what to do with advertising/bulk mail (default PolicyAllow;
	// PolicyTag, PolicyQuarantine, PolicyReject).
	Ads PolicyAction `json:"ads,omitempty" yaml:"ads"`
	// AdTag is the Subject tag for PolicyTag ads (default "[広告] ").
	AdTag string `json:"ad_tag,omitempty" yaml:"ad_tag"`
	// Attachments: what to do with executables and scripts,
	// macro-enabled Office files and encrypted archives (default
	// PolicyQuarantine; PolicyReject, PolicyAllow).
	Attachments PolicyAction `json:"attachments,omitempty" yaml:"attachments"`
	// Virus: what to do with infected mail (default PolicyQuarantine;
	// PolicyReject, PolicyDelete). Never allowed.
	Virus PolicyAction `json:"virus,omitempty" yaml:"virus"`
	// Sanitize turns on メール無害化 for inbound mail: HTML converted to
	// text, attachments removed, URLs defanged; the original is kept in
	// the quarantine. Default false (the default policy's value).
	Sanitize *bool `json:"sanitize,omitempty" yaml:"sanitize"`
	// Lists are this policy's block and allow lists.
	Lists Lists `json:"lists" yaml:"lists"`
}

// SpamScorer is an alternative spam scorer, used instead of the built-in
// one (ContentConfig.Scorer); package mailrelay/rspamd implements it with
// rspamd. It sees one tenant's share of a message (m.Tenant, m.To) and
// must be safe for concurrent use. An error means no answer (the scanner
// is down or timed out): ContentConfig.ScorerDown says what happens.
type SpamScorer interface {
	ScoreMessage(ctx context.Context, m *Message) (SpamScore, error)
}

// SpamScore is a SpamScorer's answer.
type SpamScore struct {
	// Score is in the same points as the built-in scorer's, compared
	// with the tenant's Levels unless Action is set.
	Score float64
	// Rules names what matched (for X-Spam-Status and events).
	Rules []string
	// Action, when set, is the scorer's own decision (PolicyAllow,
	// PolicyTag, PolicyQuarantine, PolicyReject) and replaces the
	// comparison of Score with the tenant's Levels.
	Action PolicyAction
	// Defer, when not empty, defers the message (451) with this reason
	// (rspamd's "soft reject").
	Defer string
	// Scorer names the scorer in events (label spam_scorer), e.g.
	// "rspamd".
	Scorer string
}

// ScorerFallback says what happens to inbound mail when
// ContentConfig.Scorer gives no answer.
type ScorerFallback string

// The fallbacks.
const (
	// FallbackTempFail defers the message (451 4.7.1): the sender retries
	// and no mail passes unscored. The default ("").
	FallbackTempFail ScorerFallback = ""
	// FallbackAllow delivers the message unscored (label
	// spam_score=unavailable).
	FallbackAllow ScorerFallback = "allow"
	// FallbackBuiltin scores the message with ContentConfig.Spam (which
	// must then be set).
	FallbackBuiltin ScorerFallback = "builtin"
)

// ContentConfig configures the built-in content checks: anti-virus,
// block/allow lists, attachment policy, spam scoring, advertising
// detection and sanitisation. The zero value checks nothing.
type ContentConfig struct {
	// Spam scores inbound mail; nil = no spam scoring and no advertising
	// detection.
	Spam *spam.Scorer
	// Scorer, when set, scores inbound mail instead of Spam (rspamd, see
	// package mailrelay/rspamd), each tenant's share of a message with
	// that tenant's settings; its score is compared with the tenant's
	// Levels like the built-in one. Advertising detection still uses the
	// built-in analysis. Nil = Spam.
	Scorer SpamScorer
	// ScorerDown is what happens when Scorer fails or times out; the
	// zero value FallbackTempFail defers the message (451).
	ScorerDown ScorerFallback
	// AV scans every message (all directions); nil = no virus scan. A
	// scanner error defers the message (451), never passes it.
	AV Scanner
	// Default is the cloud-wide policy.
	Default Policy
	// Tenants are per-tenant policies by tenant id, over Default.
	Tenants map[string]Policy
}

func (c *ContentConfig) enabled() bool {
	return c.Spam != nil || c.Scorer != nil || c.AV != nil || len(c.Tenants) > 0 || !c.Default.isZero()
}

func (p Policy) isZero() bool {
	return p.Spam == (Levels{}) && p.SpamTag == "" && p.Ads == "" && p.AdTag == "" && p.Attachments == "" &&
		p.Virus == "" && p.Sanitize == nil && len(p.Lists.BlockSenders)+len(p.Lists.AllowSenders)+len(p.Lists.BlockClients)+len(p.Lists.AllowClients) == 0
}

// Validate checks the actions of p; name is used in the error.
func (p Policy) validate(name string) error {
	for _, c := range []struct {
		field string
		v     PolicyAction
		ok    []PolicyAction
	}{
		{"Ads", p.Ads, []PolicyAction{PolicyDefault, PolicyAllow, PolicyTag, PolicyQuarantine, PolicyReject}},
		{"Attachments", p.Attachments, []PolicyAction{PolicyDefault, PolicyAllow, PolicyQuarantine, PolicyReject}},
		{"Virus", p.Virus, []PolicyAction{PolicyDefault, PolicyQuarantine, PolicyReject, PolicyDelete}},
	} {
		good := false
		for _, o := range c.ok {
			good = good || c.v == o
		}
		if !good {
			return fmt.Errorf("mailrelay: %s.%s: %q not allowed", name, c.field, c.v)
		}
	}
	return nil
}

// effective returns the policy for a tenant: the tenant's over the
// default, over the built-in defaults.
func (c *ContentConfig) effective(tenantID string) Policy {
	p := c.Default
	t, ok := c.Tenants[tenantID]
	if ok {
		if t.Spam.Tag != 0 {
			p.Spam.Tag = t.Spam.Tag
		}
		if t.Spam.Quarantine != 0 {
			p.Spam.Quarantine = t.Spam.Quarantine
		}
		if t.Spam.Reject != 0 {
			p.Spam.Reject = t.Spam.Reject
		}
		p.SpamTag = firstNonEmpty(t.SpamTag, p.SpamTag)
		p.AdTag = firstNonEmpty(t.AdTag, p.AdTag)
		if t.Ads != "" {
			p.Ads = t.Ads
		}
		if t.Attachments != "" {
			p.Attachments = t.Attachments
		}
		if t.Virus != "" {
			p.Virus = t.Virus
		}
		if t.Sanitize != nil {
			p.Sanitize = t.Sanitize
		}
		l := &p.Lists
		l.BlockSenders = append(append([]string(nil), l.BlockSenders...), t.Lists.BlockSenders...)
		l.AllowSenders = append(append([]string(nil), l.AllowSenders...), t.Lists.AllowSenders...)
		l.BlockClients = append(append([]netip.Prefix(nil), l.BlockClients...), t.Lists.BlockClients...)
		l.AllowClients = append(append([]netip.Prefix(nil), l.AllowClients...), t.Lists.AllowClients...)
	}
	if p.Spam.Tag == 0 {
		p.Spam.Tag = DefaultLevels.Tag
	}
	if p.Spam.Quarantine == 0 {
		p.Spam.Quarantine = DefaultLevels.Quarantine
	}
	if p.Spam.Reject == 0 {
		p.Spam.Reject = DefaultLevels.Reject
	}
	p.SpamTag = firstNonEmpty(p.SpamTag, "[SPAM] ")
	p.AdTag = firstNonEmpty(p.AdTag, "[広告] ")
	if p.Ads == "" {
		p.Ads = PolicyAllow
	}
	if p.Attachments == "" {
		p.Attachments = PolicyQuarantine
	}
	if p.Virus == "" {
		p.Virus = PolicyQuarantine
	}
	return p
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// contentResult is what the content checks decided.
type contentResult struct {
	verdict detect.Verdict
	// data replaces the message when non-nil (tagged, sanitised or with
	// X-Spam headers).
	data []byte
	// keepOriginal: store the original in the quarantine too (sanitised).
	keepOriginal bool
	report       *spam.Report
	virus        string
	labels       []detect.Label
}

func senderMatches(list []string, addrs ...string) string {
	for _, a := range addrs {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" {
			continue
		}
		d := domainOf(a)
		for _, e := range list {
			e = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(e), "@"))
			if e == "" {
				continue
			}
			if strings.Contains(e, "@") {
				if a == e {
					return e
				}
			} else if d == e || strings.HasSuffix(d, "."+e) {
				return e
			}
		}
	}
	return ""
}

func clientMatches(list []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func policyVerdict(a PolicyAction) detect.Action {
	switch a {
	case PolicyQuarantine:
		return detect.ActionQuarantine
	case PolicyReject:
		return detect.ActionBlock
	case PolicyDelete:
		return detect.ActionDelete
	}
	return detect.ActionAllow
}

// shared holds the work on a message that does not depend on the
// tenant, done once for all the tenants' shares of a split message: the
// MIME parse, the virus scan and the built-in spam score.
type shared struct {
	pm     *mailparse.Message
	avDone bool
	av     clamd.Result
	avErr  error
	spam   *spam.Report
}

// inspect runs the content checks on m; sh (nil = none) carries work
// already done on the same message for another tenant.
func (c *ContentConfig) inspect(ctx context.Context, m *Message, sh *shared) (contentResult, error) {
	var res contentResult
	if sh == nil {
		sh = &shared{}
	}
	p := c.effective(m.Tenant)
	if sh.pm == nil {
		sh.pm = mailparse.Parse(m.Data, mailparse.Limits{})
	}
	pm := sh.pm
	_, hfrom := splitAddr(m.HeaderFrom)

	// 1. Viruses: always, whatever the lists say.
	if c.AV != nil {
		if !sh.avDone {
			sh.av, sh.avErr = c.AV.ScanBytes(ctx, m.Data)
			sh.avDone = true
		}
		r, err := sh.av, sh.avErr
		if err != nil {
			return res, fmt.Errorf("virus scan: %w", err)
		}
		switch r.Status {
		case clamd.Infected:
			res.virus = r.Signature
			res.verdict = detect.Verdict{Action: policyVerdict(p.Virus), Rule: "mail-virus", RuleName: "virus found",
				Reason: "virus " + r.Signature}
			res.labels = append(res.labels, detect.Label{Key: "av", Value: "infected:" + r.Signature})
			return res, nil
		case clamd.TooLarge:
			res.verdict = detect.Verdict{Action: detect.ActionQuarantine, Rule: "mail-av-oversize", RuleName: "too large to scan",
				Reason: "message larger than the scanner's limit"}
			res.labels = append(res.labels, detect.Label{Key: "av", Value: "too-large"})
			return res, nil
		}
		res.labels = append(res.labels, detect.Label{Key: "av", Value: "clean"})
	}

	// 2. Block and allow lists.
	if e := senderMatches(p.Lists.BlockSenders, m.From, hfrom); e != "" {
		res.verdict = detect.Verdict{Action: detect.ActionBlock, Rule: "mail-blocklist", RuleName: "sender block list", Reason: "sender " + e + " is block-listed"}
		return res, nil
	}
	if clientMatches(p.Lists.BlockClients, m.Client.Addr()) {
		res.verdict = detect.Verdict{Action: detect.ActionBlock, Rule: "mail-blocklist", RuleName: "client block list", Reason: "client address is block-listed"}
		return res, nil
	}
	allowed := senderMatches(p.Lists.AllowSenders, m.From, hfrom) != "" || clientMatches(p.Lists.AllowClients, m.Client.Addr())
	if allowed {
		res.labels = append(res.labels, detect.Label{Key: "allowlist", Value: "true"})
	}

	// 3. Attachments.
	if p.Attachments != PolicyAllow {
		if why := riskyAttachment(pm); why != "" {
			res.verdict = detect.Verdict{Action: policyVerdict(p.Attachments), Rule: "mail-attachment", RuleName: "attachment policy", Reason: why}
			return res, nil
		}
	}

	data := m.Data
	if m.Direction == Inbound {
		// Our own verdict headers cannot come from outside.
		data = stripFields(data, "X-Spam-Status", "X-Seccloud-Ad", "X-Seccloud-Sanitized", "X-Seccloud-Quarantine")
	}
	var extra []string
	// 4. Spam and advertising (inbound only).
	if (c.Spam != nil || c.Scorer != nil) && m.Direction == Inbound && !allowed {
		var sc SpamScore
		var bulk spam.Bulk
		useBuiltin := c.Scorer == nil
		if c.Scorer != nil {
			var err error
			sc, err = c.Scorer.ScoreMessage(ctx, m)
			switch {
			case err == nil:
				bulk = spam.BulkParsed(pm)
			case c.ScorerDown == FallbackAllow:
				res.labels = append(res.labels, detect.Label{Key: "spam_score", Value: "unavailable"},
					detect.Label{Key: "spam_scorer_error", Value: err.Error()})
				bulk = spam.BulkParsed(pm)
				sc = SpamScore{Scorer: "none", Action: PolicyAllow}
			case c.ScorerDown == FallbackBuiltin && c.Spam != nil:
				res.labels = append(res.labels, detect.Label{Key: "spam_scorer_error", Value: err.Error()})
				useBuiltin = true
			default:
				return res, fmt.Errorf("spam scorer: %w", err)
			}
		}
		if useBuiltin {
			if sh.spam == nil {
				r := c.Spam.ScoreParsed(ctx, spam.Input{Raw: m.Data, Client: m.Client.Addr(), EnvelopeFrom: m.From,
					SPF: m.Auth.SPF, DKIM: m.Auth.DKIM, DMARC: m.Auth.DMARC}, pm)
				sh.spam = &r
			}
			rep := *sh.spam
			res.report = &rep
			sc = SpamScore{Score: rep.Score, Rules: rep.Rules(), Scorer: "builtin"}
			bulk = rep.Bulk
		} else {
			res.report = &spam.Report{Score: sc.Score}
			for _, r := range sc.Rules {
				res.report.Hits = append(res.report.Hits, spam.Hit{Rule: r})
			}
		}
		if sc.Defer != "" {
			res.verdict = detect.Verdict{Action: detect.ActionTempFail, Rule: "mail-spam", RuleName: "spam scorer", Reason: sc.Scorer + ": " + sc.Defer}
			return res, nil
		}
		rules := strings.Join(sc.Rules, ",")
		reason := fmt.Sprintf("spam score %.1f (%s)", sc.Score, rules)
		v := detect.Verdict{Rule: "mail-spam", RuleName: "spam score", Reason: reason, Score: int(sc.Score + 0.5)}
		status := "No"
		act := sc.Action
		if act == PolicyDefault {
			switch {
			case p.Spam.Reject > 0 && sc.Score >= p.Spam.Reject:
				act = PolicyReject
			case p.Spam.Quarantine > 0 && sc.Score >= p.Spam.Quarantine:
				act = PolicyQuarantine
			case p.Spam.Tag > 0 && sc.Score >= p.Spam.Tag:
				act = PolicyTag
			}
		}
		switch act {
		case PolicyReject:
			v.Action = detect.ActionBlock
		case PolicyQuarantine:
			v.Action = detect.ActionQuarantine
		case PolicyTag:
			v.Action = detect.ActionAllow
			data = tagSubject(data, p.SpamTag)
			status = "Yes"
		}
		if sc.Scorer != "none" {
			extra = append(extra, fmt.Sprintf("X-Spam-Status: %s, score=%.1f tagged_above=%.1f required=%.1f tests=%s", status, sc.Score,
				p.Spam.Tag, p.Spam.Quarantine, rules))
			res.labels = append(res.labels, detect.Label{Key: "spam_score", Value: fmt.Sprintf("%.1f", sc.Score)},
				detect.Label{Key: "spam_rules", Value: rules})
		}
		if sc.Scorer != "builtin" {
			res.labels = append(res.labels, detect.Label{Key: "spam_scorer", Value: sc.Scorer})
		}
		if v.Action.Stopped() {
			res.verdict = v
			return res, nil
		}
		if v.Action != detect.ActionNone {
			res.verdict = v
		}
		if bulk.Ad {
			res.labels = append(res.labels, detect.Label{Key: "ad", Value: strings.Join(bulk.Marks, ",")})
			extra = append(extra, "X-Seccloud-Ad: "+strings.Join(bulk.Marks, ","))
			av := detect.Verdict{Rule: "mail-ad", RuleName: "advertising mail", Reason: "advertising/bulk: " + strings.Join(bulk.Marks, ",")}
			switch p.Ads {
			case PolicyTag:
				data = tagSubject(data, p.AdTag)
				av.Action = detect.ActionAllow
			default:
				av.Action = policyVerdict(p.Ads)
			}
			if av.Action.Stopped() {
				res.verdict = av
				return res, nil
			}
			if res.verdict.Action == detect.ActionNone && p.Ads != PolicyAllow {
				res.verdict = av
			}
		}
	}
	// 5. Sanitisation (inbound only).
	if p.Sanitize != nil && *p.Sanitize && m.Direction == Inbound {
		data = sanitize(data, pm, m.ID)
		res.keepOriginal = true
		res.labels = append(res.labels, detect.Label{Key: "sanitized", Value: "true"})
	}
	if len(extra) > 0 {
		data = prependHeaders(data, extra)
	}
	if len(data) != len(m.Data) || (len(data) > 0 && &data[0] != &m.Data[0]) {
		res.data = data
	}
	return res, nil
}

func prependHeaders(data []byte, fields []string) []byte {
	var n int
	for _, f := range fields {
		n += len(f) + 2
	}
	out := make([]byte, 0, n+len(data))
	for _, f := range fields {
		out = append(out, headerText(f)...)
		out = append(out, "\r\n"...)
	}
	return append(out, data...)
}

// stripFields removes the header fields named names (with their
// continuation lines) from data; data is returned unchanged when none is
// present.
func stripFields(data []byte, names ...string) []byte {
	hdr, _ := mailparse.SplitHeader(data)
	h := data[:len(hdr)]
	found := false
	for _, n := range names {
		if bytes.Contains(bytes.ToLower(h), []byte(strings.ToLower(n)+":")) {
			found = true
		}
	}
	if !found {
		return data
	}
	out := make([]byte, 0, len(data))
	skip := false
	for _, line := range bytes.SplitAfter(h, []byte("\n")) {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if !skip {
				out = append(out, line...)
			}
			continue
		}
		skip = false
		for _, n := range names {
			if len(line) > len(n) && line[len(n)] == ':' && strings.EqualFold(string(line[:len(n)]), n) {
				skip = true
			}
		}
		if !skip {
			out = append(out, line...)
		}
	}
	return append(out, data[len(hdr):]...)
}

// headerText makes "Name: value" safe as one header line: control
// characters become spaces, non-ASCII values a MIME encoded word, and the
// line is cut at 900 bytes.
func headerText(f string) string {
	b := []byte(f)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = ' '
		}
	}
	f = string(b)
	if !isASCII(f) {
		if name, v, ok := strings.Cut(f, ": "); ok {
			f = name + ": " + mime.QEncoding.Encode("UTF-8", v)
		}
	}
	if len(f) > 900 {
		f = f[:900]
	}
	return f
}

// splitAddr returns the display name and the address of a From: value.
func splitAddr(v string) (name, addr string) {
	if i, j := strings.LastIndexByte(v, '<'), strings.LastIndexByte(v, '>'); i >= 0 && j > i {
		return strings.TrimSpace(v[:i]), strings.TrimSpace(v[i+1 : j])
	}
	return "", strings.TrimSpace(v)
}
