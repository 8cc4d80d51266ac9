package judge

import (
	"fmt"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/rules"
)

// VulnLookup tells whether a tenant's host is vulnerable to the attack seen.
// known is false when the inventory does not know the host; then vulnerable
// is meaningless. Implementations must be safe for concurrent use.
type VulnLookup interface {
	IsVulnerable(tenant, host string) (vulnerable, known bool)
}

// VulnDetails is an optional interface of a VulnLookup: the findings behind
// a "vulnerable" answer (e.g. "CVE-2021-41773 (http_server 2.4.49: …)"),
// recorded in the evidence of a level raised to 3. detect/vuln implements it.
type VulnDetails interface {
	VulnEvidence(tenant, host string) []string
}

// VulnFunc adapts a function to a VulnLookup.
type VulnFunc func(tenant, host string) (bool, bool)

// IsVulnerable calls f.
func (f VulnFunc) IsVulnerable(tenant, host string) (bool, bool) { return f(tenant, host) }

// StaticVuln is a fixed inventory: tenant id → host → vulnerable. A host
// absent from the map is unknown. Hosts are compared case-insensitively
// (store them lower-case). Safe for concurrent use if not modified.
type StaticVuln map[string]map[string]bool

// IsVulnerable implements VulnLookup.
func (s StaticVuln) IsVulnerable(tenant, host string) (bool, bool) {
	v, ok := s[tenant][strings.ToLower(host)]
	return v, ok
}

// Evidence is one step of the reasoning behind a severity, in Japanese (for
// municipal contacts) and English.
type Evidence struct {
	JA string `json:"ja"`
	EN string `json:"en"`
}

// Judgement is the judged severity and why.
type Judgement struct {
	Severity detect.Severity `json:"severity"`
	// Host is the attacked host used for the vulnerability lookup ("" when
	// none could be found).
	Host     string     `json:"host,omitempty"`
	Evidence []Evidence `json:"evidence"`
}

// Input is what the judge looks at. Build it with [FromAlert].
type Input struct {
	// Rule is the rule that fired (its Success flag and success_when
	// selection are inputs; its Level is shown but never copied).
	Rule   *rules.Rule
	Tenant string
	// Events are all evidence events, oldest first; Final are the events
	// that decide whether the attack reached its target.
	Events []detect.Event
	Final  []detect.Event
	// Count is the number of events the alert stands for.
	Count int
}

// FromAlert returns the judge's input for an alert.
func FromAlert(a *rules.Alert) Input {
	return Input{Rule: a.Rule, Tenant: a.Tenant, Events: a.Events, Final: a.Final, Count: a.Count}
}

// Judge decides the severity of an alert. Implementations must be safe for
// concurrent use.
type Judge interface {
	Judge(Input) Judgement
}

// Default is the judgement of DESIGN.md, as a separate explained step:
//
//  1. If every deciding event was stopped (block, quarantine, sinkhole,
//     drop, delete, tempfail): level 1 — 3 when the rule declares
//     seccloud.compromise (malware shown running on the terminal), 2 when
//     it declares seccloud.infection.
//  2. Otherwise the attack reached its target. If every reaching event is
//     an HTTP answer 404 or 410, the target does not exist: level 0.
//  3. Success evidence gives level 3: the rule declares a reaching match
//     success (seccloud.success, e.g. a terminal talking to C&C, malware
//     delivered), or a reaching event matches the rule's success_when.
//  4. Otherwise level 2, raised to 3 only when the vulnerability lookup
//     says the target host is vulnerable; "not vulnerable" and "unknown"
//     keep 2 (the SOC confirms).
//
// The rule's own level is recorded as reference only. The zero Default is
// usable (no vulnerability lookup). Safe for concurrent use.
type Default struct {
	// Vuln is the vulnerability lookup; nil means no inventory (level 2
	// stays 2 and the evidence says so).
	Vuln VulnLookup
}

var _ Judge = (*Default)(nil)

// JST is the time zone of evidence texts.
var JST = time.FixedZone("JST", 9*60*60)

// Judge implements Judge.
func (d *Default) Judge(in Input) Judgement {
	var j Judgement
	add := func(ja, en string) { j.Evidence = append(j.Evidence, Evidence{JA: ja, EN: en}) }
	final := in.Final
	if len(final) == 0 {
		final = in.Events
	}
	ruleID, title := "", ""
	if in.Rule != nil {
		ruleID, title = in.Rule.ID, in.Rule.Title
		if title == "" {
			title = ruleID
		}
		add(fmt.Sprintf("検知規則 %s「%s」が %d 件の事象で成立しました。", ruleID, title, max(in.Count, 1)),
			fmt.Sprintf("Rule %s (%q) matched on %d event(s).", ruleID, title, max(in.Count, 1)))
		if in.Rule.Level != "" {
			add(fmt.Sprintf("シグネチャの危険度 (%s) は参考値であり、危険度の判定には用いません。", in.Rule.Level),
				fmt.Sprintf("The signature's own level (%s) is reference only; it is not the severity.", in.Rule.Level))
		}
	}
	if len(in.Events) > len(final) {
		for _, e := range in.Events[:len(in.Events)-len(final)] {
			add("経緯: "+DescribeJA(&e), "Context: "+DescribeEN(&e))
		}
	}
	var reached, stopped []*detect.Event
	for i := range final {
		e := &final[i]
		if e.Verdict.Action.Stopped() {
			stopped = append(stopped, e)
		} else {
			reached = append(reached, e)
		}
	}
	if len(reached) == 0 {
		if len(stopped) > 0 {
			add(fmt.Sprintf("判断の基礎となる %d 件の通信はすべて遮断されました（例: %s）。攻撃は防御されています。", len(stopped), DescribeJA(stopped[0])),
				fmt.Sprintf("All %d deciding event(s) were stopped (e.g. %s): the attack was stopped.", len(stopped), DescribeEN(stopped[0])))
		} else {
			add("判断の基礎となる事象がありません。", "No deciding event.")
		}
		if in.Rule != nil && in.Rule.Compromise && len(stopped) > 0 {
			// The traffic was cut, but the match shows malware at work on
			// the terminal: the compromise has happened.
			j.Severity = detect.SeveritySucceeded
			add("ただし、この検知は端末上でマルウェアが動作していることを示します（例: C&C名がシンクホールされた後にC&Cアドレスへ直接接続を試行）。通信の遮断では端末は元に戻りません。直ちに端末を隔離してください。",
				"But this detection shows malware running on the terminal (e.g. it tried a C&C address directly after its C&C name was sinkholed). Blocking the traffic does not clean the terminal: isolate it now.")
			add("危険度3: 攻撃が成功（または成功の可能性大）。", "Level 3: the attack succeeded or very likely succeeded.")
			return j
		}
		if in.Rule != nil && in.Rule.Infection && len(stopped) > 0 {
			// The traffic was cut, but the match itself shows the terminal
			// is (likely) infected: blocking does not undo that.
			j.Severity = detect.SeverityReached
			add("ただし、この検知は端末の感染を示すもので、通信の遮断では解消しません。SOCが端末を確認します。",
				"But this detection shows the terminal is likely infected, which blocking does not undo: the SOC must check the terminal.")
			add("危険度2: 攻撃が到達（成否確認中）。", "Level 2: the attack reached its target; success to be confirmed.")
			return j
		}
		j.Severity = detect.SeverityStopped
		add("危険度1: 攻撃を防御。", "Level 1: attack attempted and stopped.")
		return j
	}
	first := reached[0]
	add(fmt.Sprintf("%d 件の通信が対象に到達しました（例: %s）。", len(reached), DescribeJA(first)),
		fmt.Sprintf("%d event(s) reached the target (e.g. %s).", len(reached), DescribeEN(first)))
	if len(stopped) > 0 {
		add(fmt.Sprintf("ほかに %d 件は遮断されました。", len(stopped)), fmt.Sprintf("%d other event(s) were stopped.", len(stopped)))
	}
	j.Host = targetHost(first)
	if allNotFound(reached) {
		j.Severity = detect.SeverityNone
		add(fmt.Sprintf("対象はHTTP %d を応答しました: 攻撃対象が存在しないため影響はありません。", first.HTTP.Status),
			fmt.Sprintf("The target answered HTTP %d: what was attacked does not exist, no impact.", first.HTTP.Status))
		add("危険度0: 影響なし。", "Level 0: no impact.")
		return j
	}
	if in.Rule != nil && in.Rule.Success {
		j.Severity = detect.SeveritySucceeded
		add("この規則の成立は、通信が到達した場合に攻撃成功の証拠となります（C&C通信、マルウェアの受け渡し等）。",
			"For this rule a match that reached its target is evidence of success (C&C traffic, malware delivered, ...).")
		add("危険度3: 攻撃が成功（または成功の可能性大）。", "Level 3: the attack succeeded or very likely succeeded.")
		return j
	}
	if in.Rule != nil && in.Rule.HasSuccessWhen() {
		for _, e := range reached {
			if in.Rule.SuccessWhen(e) {
				j.Severity = detect.SeveritySucceeded
				add("成功の証拠: "+DescribeJA(e)+"（規則の success_when に一致）",
					"Success evidence: "+DescribeEN(e)+" (matches the rule's success_when)")
				add("危険度3: 攻撃が成功（または成功の可能性大）。", "Level 3: the attack succeeded or very likely succeeded.")
				return j
			}
		}
		add("応答に成功の証拠はありません。", "No success evidence in the answers.")
	}
	j.Severity = detect.SeverityReached
	switch {
	case d.Vuln == nil:
		add("脆弱性情報が登録されていないため、成否はSOCが確認します。", "No vulnerability inventory: the SOC must confirm success.")
	case j.Host == "":
		add("攻撃対象のホストが特定できないため、脆弱性の確認はSOCが行います。", "The target host is unknown: the SOC must check vulnerability.")
	default:
		vuln, known := d.Vuln.IsVulnerable(in.Tenant, j.Host)
		switch {
		case known && vuln:
			j.Severity = detect.SeveritySucceeded
			add(fmt.Sprintf("対象 %s はこの攻撃に対して脆弱であると登録されています。", j.Host),
				fmt.Sprintf("The target %s is recorded as vulnerable.", j.Host))
			if dv, ok := d.Vuln.(VulnDetails); ok {
				for _, line := range dv.VulnEvidence(in.Tenant, j.Host) {
					add("脆弱性: "+line, "Vulnerability: "+line)
				}
			}
			add("危険度3: 攻撃が成功した可能性が高い。", "Level 3: the attack very likely succeeded.")
			return j
		case known:
			add(fmt.Sprintf("対象 %s は脆弱でないと登録されています。", j.Host),
				fmt.Sprintf("The target %s is recorded as not vulnerable.", j.Host))
		default:
			add(fmt.Sprintf("対象 %s の脆弱性の有無は不明です。SOCが確認します。", j.Host),
				fmt.Sprintf("Whether %s is vulnerable is unknown: the SOC must confirm.", j.Host))
		}
	}
	add("危険度2: 攻撃が到達（成否確認中）。", "Level 2: the attack reached its target; success to be confirmed.")
	return j
}

func allNotFound(es []*detect.Event) bool {
	for _, e := range es {
		if e.HTTP.Status != 404 && e.HTTP.Status != 410 {
			return false
		}
	}
	return true
}

// targetHost is the attacked host: the destination name, else the host of
// the URL, else the destination address.
func targetHost(e *detect.Event) string {
	if e.DestDomain != "" {
		return strings.TrimSuffix(strings.ToLower(e.DestDomain), ".")
	}
	if v, ok := rules.Values(e, "url.domain"); ok && len(v) > 0 {
		return strings.ToLower(v[0])
	}
	if a := e.Dest.Addr(); a.IsValid() {
		return a.String()
	}
	return ""
}

// DescribeJA describes an event in one Japanese line for evidence and
// notifications.
func DescribeJA(e *detect.Event) string { return describe(e, true) }

// DescribeEN describes an event in one English line.
func DescribeEN(e *detect.Event) string { return describe(e, false) }

func describe(e *detect.Event, ja bool) string {
	var b strings.Builder
	if !e.Time.IsZero() {
		if ja {
			b.WriteString(e.Time.In(JST).Format("2006-01-02 15:04:05 JST "))
		} else {
			b.WriteString(e.Time.UTC().Format("2006-01-02 15:04:05Z "))
		}
	}
	term := rules.Terminal(e)
	switch e.Module {
	case "dns":
		q := strings.TrimSuffix(e.DNS.QName, ".")
		var res []string
		for _, a := range e.DNS.Resolved {
			res = append(res, a.String())
		}
		if ja {
			fmt.Fprintf(&b, "端末 %s が %s を名前解決", term, q)
		} else {
			fmt.Fprintf(&b, "terminal %s looked up %s", term, q)
		}
		if len(res) > 0 {
			fmt.Fprintf(&b, " → %s", strings.Join(res, ", "))
		}
	case "proxy":
		dst := e.URL
		if dst == "" {
			dst = e.DestDomain
		}
		if ja {
			fmt.Fprintf(&b, "端末 %s がプロキシ経由で %s に接続", term, dst)
		} else {
			fmt.Fprintf(&b, "terminal %s connected through the proxy to %s", term, dst)
		}
		if a := e.Dest; a.IsValid() {
			fmt.Fprintf(&b, " (%s)", a)
		}
	case "waf":
		if ja {
			fmt.Fprintf(&b, "%s から %s への要求", term, e.URL)
		} else {
			fmt.Fprintf(&b, "request from %s to %s", term, e.URL)
		}
	case "mail":
		if ja {
			fmt.Fprintf(&b, "メール %s → %s 件名「%s」", e.Email.From, strings.Join(e.Email.To, ", "), e.Email.Subject)
		} else {
			fmt.Fprintf(&b, "mail %s → %s subject %q", e.Email.From, strings.Join(e.Email.To, ", "), e.Email.Subject)
		}
	default:
		fmt.Fprintf(&b, "%s %s %s", e.Module, e.Action, term)
	}
	if e.File.Name != "" || e.File.SHA256 != "" {
		fmt.Fprintf(&b, " file=%s sha256=%s", e.File.Name, e.File.SHA256)
	}
	if e.HTTP.Status != 0 {
		fmt.Fprintf(&b, " HTTP %d", e.HTTP.Status)
	}
	v := e.Verdict
	if v.Action != detect.ActionNone || v.Rule != "" {
		b.WriteString(" [")
		b.WriteString(v.Action.String())
		if v.Rule != "" {
			b.WriteString(" ")
			b.WriteString(v.Rule)
		}
		b.WriteString("]")
	}
	return b.String()
}
