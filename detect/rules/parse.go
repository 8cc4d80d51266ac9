package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect"
	"go.yaml.in/yaml/v3"
)

// Limits on rule files, so a hostile or broken file cannot exhaust memory.
const (
	MaxFileSize   = 4 << 20 // bytes of one rule file
	MaxRegexpLen  = 4096    // bytes of one |re pattern
	maxValues     = 10000   // values of one field test
	maxSelections = 256     // selections of one rule
)

// Error is a problem in a rule file, with its position. Load and Parse
// return an [Errors] holding one Error per problem found.
type Error struct {
	File string
	Line int // 1-based; 0 when unknown
	Rule string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Rule != "" {
		b.WriteString("rule ")
		b.WriteString(strconv.Quote(e.Rule))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors lists every problem of a load; its Error joins them by newlines.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return "rules: " + strings.Join(s, "\n")
}

// Unwrap returns the errors for errors.Is/As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Level is a Sigma rule level: the signature's own rating, kept for
// reference. The judge never copies it into the incident severity.
type Level string

// Logsource says which events a rule reads. Service (or a Category that maps
// to one) restricts the rule to events of that event.module.
type Logsource struct {
	Product  string
	Category string
	Service  string
}

// Rule is a parsed and compiled rule: a detection rule (matches single
// events) or a correlation rule (matches groups of detections). A Rule is
// immutable and safe for concurrent use.
type Rule struct {
	// ID is the rule's id (Sigma `id`); the incident key uses it. When the
	// file gives none, Name is used.
	ID string
	// Name is the Sigma v2 `name` correlations refer to (may be empty).
	Name        string
	Title       string
	Description string
	Level       Level
	Status      string
	Tags        []string
	Logsource   Logsource
	// File and Line say where the rule was defined.
	File string
	Line int
	// Success is the seccloud extension `seccloud.success`: a match whose
	// deciding events reached their target is itself evidence that the
	// attack succeeded (e.g. a terminal talking to C&C).
	Success bool
	// Infection is the seccloud extension `seccloud.infection`: a match
	// shows the terminal itself is (likely) infected (DGA lookups, DNS
	// tunnelling, beaconing), so a blocked match is still level 2 for the
	// judge, not 1.
	Infection bool
	// Compromise is the seccloud extension `seccloud.compromise`: a match
	// shows that malware runs on the terminal (e.g. it tried a C&C address
	// directly after its C&C name was sinkholed), so the judge gives level
	// 3 even when every deciding event was stopped: blocking the traffic
	// does not clean the terminal.
	Compromise bool
	// Correlation is set for correlation rules.
	Correlation *Correlation
	// Filter is set for filter rules (Sigma filters): the detection part
	// is the condition an event must meet for the filtered rules to see it.
	Filter *Filter

	module  string // event.module prefilter; "" = every module
	cond    *node
	success *selection // seccloud.success_when
	// referenced is true when a correlation uses this rule.
	referenced bool
	// generate: a referenced rule still raises its own alerts.
	generate bool
}

// SuccessWhen reports whether e matches the rule's `seccloud.success_when`
// selection: evidence that the attack succeeded (e.g. the origin answered
// 200 with data). A rule without the selection returns false.
func (r *Rule) SuccessWhen(e *detect.Event) bool {
	if r.success == nil {
		return false
	}
	c := newEvalCtx()
	c.reset(e, nil)
	return r.success.match(c)
}

// HasSuccessWhen reports whether the rule has a success_when selection.
func (r *Rule) HasSuccessWhen() bool { return r.success != nil }

// CorrelationType is a Sigma v2 correlation type.
type CorrelationType string

// The supported correlation types.
const (
	EventCount      CorrelationType = "event_count"
	ValueCount      CorrelationType = "value_count"
	Temporal        CorrelationType = "temporal"
	TemporalOrdered CorrelationType = "temporal_ordered"
)

// Correlation is the correlation part of a rule.
type Correlation struct {
	Type CorrelationType
	// Rules are the referenced rules, in the order given.
	Rules []*Rule
	// GroupBy are the group-by field names (or alias names). The tenant
	// (organization.id) is always part of the group.
	GroupBy []string
	// Timespan is the window all counted events must fall in.
	Timespan time.Duration
	// Field is the field whose distinct values value_count counts.
	Field string
	// Op and Threshold are the condition, e.g. gte 1000. Temporal types
	// use gte len(Rules) implicitly.
	Op        string
	Threshold int64
	// Generate: the referenced rules raise their own alerts too.
	Generate bool

	refs        []string
	aliases     map[string]map[string]string // alias -> rule ref -> field
	groupFields [][]*field                   // [rule index][group-by index]
	valueField  []*field                     // [rule index] for value_count
}

var knownTop = map[string]bool{
	"title": true, "id": true, "name": true, "status": true, "description": true,
	"author": true, "date": true, "modified": true, "references": true, "tags": true,
	"level": true, "falsepositives": true, "fields": true, "related": true,
	"license": true, "logsource": true, "detection": true, "correlation": true, "filter": true,
	"seccloud": true, "taxonomy": true, "scope": true,
}

var levels = map[string]bool{"informational": true, "low": true, "medium": true, "high": true, "critical": true}

// categoryModule maps Sigma logsource categories to seccloud modules.
var categoryModule = map[string]string{
	"proxy": "proxy", "dns": "dns", "webserver": "waf", "mail": "mail",
}

var modules = map[string]bool{"proxy": true, "dns": true, "mail": true, "waf": true, "detect": true, "appliance": true, "firewall": true, "ids": true}

// Parse reads the rules of one YAML file (several rules separated by ---).
// name is used in error messages. Correlation references are resolved by
// [Compile], not here, so rules may refer to rules of other files.
func Parse(name string, r io.Reader) ([]*Rule, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, Errors{{File: name, Msg: err.Error()}}
	}
	if len(data) > MaxFileSize {
		return nil, Errors{{File: name, Msg: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*Rule
	var errs Errors
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, &Error{File: name, Line: yamlErrLine(err), Msg: cleanYAMLErr(err)})
			break
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue
		}
		rule, rerrs := parseRule(name, root)
		errs = append(errs, rerrs...)
		if rule != nil && len(rerrs) == 0 {
			out = append(out, rule)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func cleanYAMLErr(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: ")
	if m := yamlLineRE.FindStringIndex(s); m != nil && m[0] == 0 {
		s = strings.TrimPrefix(s[m[1]:], ": ")
	}
	return s
}

type ruleParser struct {
	file    string
	rule    *Rule
	errs    Errors
	tenants []string // seccloud.tenants
}

func (p *ruleParser) errf(n *yaml.Node, format string, a ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	id := ""
	if p.rule != nil {
		id = p.rule.ID
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Rule: id, Msg: fmt.Sprintf(format, a...)})
}

// mapPairs returns the key/value pairs of a mapping node, reporting
// duplicate keys.
func (p *ruleParser) mapPairs(n *yaml.Node, what string) ([][2]*yaml.Node, bool) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		p.errf(n, "%s must be a mapping", what)
		return nil, false
	}
	seen := map[string]bool{}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			p.errf(k, "%s: keys must be scalars", what)
			return nil, false
		}
		if seen[k.Value] {
			p.errf(k, "%s: duplicate key %q", what, k.Value)
			return nil, false
		}
		seen[k.Value] = true
		out = append(out, [2]*yaml.Node{k, n.Content[i+1]})
	}
	return out, true
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func (p *ruleParser) scalar(n *yaml.Node, what string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		p.errf(n, "%s must be a scalar", what)
		return "", false
	}
	return n.Value, true
}

func (p *ruleParser) stringList(n *yaml.Node, what string) []string {
	n = deref(n)
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		p.errf(n, "%s must be a list", what)
		return nil
	}
	var out []string
	for _, c := range n.Content {
		if s, ok := p.scalar(c, what); ok {
			out = append(out, s)
		}
	}
	return out
}

func parseRule(file string, root *yaml.Node) (*Rule, Errors) {
	p := &ruleParser{file: file, rule: &Rule{File: file, Line: root.Line}}
	pairs, ok := p.mapPairs(root, "rule")
	if !ok {
		return nil, p.errs
	}
	r := p.rule
	var detection, correlation, filter, seccloud *yaml.Node
	var corrKey, filterKey *yaml.Node
	for _, kv := range pairs {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "id":
			r.ID, _ = p.scalar(v, "id")
		case "name":
			r.Name, _ = p.scalar(v, "name")
		}
	}
	if r.ID == "" {
		r.ID = r.Name
	}
	for _, kv := range pairs {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "id", "name":
		case "title":
			r.Title, _ = p.scalar(v, "title")
		case "description":
			r.Description, _ = p.scalar(v, "description")
		case "status":
			r.Status, _ = p.scalar(v, "status")
		case "level":
			if s, ok := p.scalar(v, "level"); ok {
				if !levels[s] {
					p.errf(v, "level %q is not one of informational, low, medium, high, critical", s)
				}
				r.Level = Level(s)
			}
		case "tags":
			r.Tags = p.stringList(v, "tags")
		case "logsource":
			p.logsource(v)
		case "detection":
			detection = v
		case "correlation":
			correlation, corrKey = v, k
		case "filter":
			filter, filterKey = v, k
		case "seccloud":
			seccloud = v
		default:
			if !knownTop[k.Value] {
				p.errf(k, "unknown key %q", k.Value)
			}
		}
	}
	if r.ID == "" {
		p.errf(root, "rule has neither id nor name")
	}
	switch {
	case detection != nil && correlation != nil:
		p.errf(corrKey, "a rule has either detection or correlation, not both")
	case filter != nil && (detection != nil || correlation != nil):
		p.errf(filterKey, "a rule has one of detection, correlation or filter")
	case detection != nil:
		p.detection(detection)
	case correlation != nil:
		p.correlation(correlation)
	case filter != nil:
		p.filter(filter)
	default:
		p.errf(root, "rule has neither detection, correlation nor filter")
	}
	if seccloud != nil {
		p.extension(seccloud)
	}
	if r.Filter == nil && p.tenants != nil {
		p.errf(seccloud, "seccloud.tenants is for filters only")
	}
	return r, p.errs
}

func (p *ruleParser) logsource(n *yaml.Node) {
	pairs, ok := p.mapPairs(n, "logsource")
	if !ok {
		return
	}
	ls := &p.rule.Logsource
	for _, kv := range pairs {
		s, ok := p.scalar(kv[1], "logsource."+kv[0].Value)
		if !ok {
			continue
		}
		switch kv[0].Value {
		case "product":
			ls.Product = s
			if s != "seccloud" {
				p.errf(kv[1], "logsource product %q: only \"seccloud\" events are ingested", s)
			}
		case "category":
			ls.Category = s
			m, ok := categoryModule[s]
			if !ok {
				p.errf(kv[1], "logsource category %q is not one of proxy, dns, webserver, mail", s)
			}
			if p.rule.module == "" {
				p.rule.module = m
			}
		case "service":
			ls.Service = s
			if !modules[s] {
				p.errf(kv[1], "logsource service %q is not a seccloud module (proxy, dns, mail, waf, detect, appliance, firewall, ids)", s)
			}
			p.rule.module = s
		case "definition":
		default:
			p.errf(kv[0], "unknown logsource key %q", kv[0].Value)
		}
	}
}

func (p *ruleParser) detection(n *yaml.Node) {
	pairs, ok := p.mapPairs(n, "detection")
	if !ok {
		return
	}
	sels := map[string]*selection{}
	var condNode *yaml.Node
	for _, kv := range pairs {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "condition":
			condNode = v
			continue
		case "timeframe":
			p.errf(k, "timeframe is Sigma v1 aggregation; use a correlation rule")
			continue
		}
		if len(sels) >= maxSelections {
			p.errf(k, "more than %d selections", maxSelections)
			return
		}
		if s := p.selection(k.Value, v); s != nil {
			sels[k.Value] = s
		}
	}
	if condNode == nil {
		p.errf(n, "detection has no condition")
		return
	}
	cn := deref(condNode)
	var src string
	switch cn.Kind {
	case yaml.ScalarNode:
		src = cn.Value
	case yaml.SequenceNode:
		// A list of conditions is their OR (Sigma).
		var parts []string
		for _, c := range cn.Content {
			if s, ok := p.scalar(c, "condition"); ok {
				parts = append(parts, "("+s+")")
			}
		}
		src = strings.Join(parts, " or ")
	default:
		p.errf(cn, "condition must be a string")
		return
	}
	if strings.Contains(src, "|") {
		p.errf(cn, "aggregations after '|' (Sigma v1) are not supported; use a correlation rule")
		return
	}
	if len(p.errs) > 0 {
		return
	}
	cond, err := parseCondition(src, sels)
	if err != nil {
		p.errf(cn, "%v", err)
		return
	}
	p.rule.cond = cond
}

// selection compiles a detection selection: a map (AND of field tests) or a
// list of maps (OR).
func (p *ruleParser) selection(name string, n *yaml.Node) *selection {
	n = deref(n)
	s := &selection{name: name}
	switch n.Kind {
	case yaml.MappingNode:
		alt := p.fieldTests(n)
		if alt == nil {
			return nil
		}
		s.alts = [][]fieldTest{alt}
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			p.errf(n, "selection %q is empty", name)
			return nil
		}
		for _, c := range n.Content {
			c = deref(c)
			if c.Kind != yaml.MappingNode {
				p.errf(c, "selection %q: keyword (full-text) searches are not supported; name a field", name)
				return nil
			}
			alt := p.fieldTests(c)
			if alt == nil {
				return nil
			}
			s.alts = append(s.alts, alt)
		}
	default:
		p.errf(n, "selection %q: keyword (full-text) searches are not supported; name a field", name)
		return nil
	}
	return s
}

func (p *ruleParser) fieldTests(n *yaml.Node) []fieldTest {
	pairs, ok := p.mapPairs(n, "selection")
	if !ok {
		return nil
	}
	if len(pairs) == 0 {
		p.errf(n, "empty selection")
		return nil
	}
	var out []fieldTest
	for _, kv := range pairs {
		t, ok := p.fieldTest(kv[0], kv[1])
		if !ok {
			return nil
		}
		out = append(out, t)
	}
	return out
}

func (p *ruleParser) fieldTest(k, v *yaml.Node) (fieldTest, bool) {
	parts := strings.Split(k.Value, "|")
	f, ok := lookupField(parts[0])
	if !ok {
		p.errf(k, "unknown field %q (fields are ECS names of seccloud events, e.g. dns.question.name, url.full, source.ip, labels.<key>)", parts[0])
		return fieldTest{}, false
	}
	t := fieldTest{f: f}
	var strMod, numMod string
	var re, cidr, cased, exists, intelMod bool
	var reFlags string
	for _, m := range parts[1:] {
		switch m {
		case "contains", "startswith", "endswith":
			if strMod != "" {
				p.errf(k, "%q: two string modifiers", k.Value)
				return t, false
			}
			strMod = m
		case "all":
			t.all = true
		case "re":
			re = true
		case "i", "m", "s":
			if !re {
				p.errf(k, "%q: modifier %q only follows re", k.Value, m)
				return t, false
			}
			reFlags += m
		case "cidr":
			cidr = true
		case "gt", "gte", "lt", "lte":
			numMod = m
		case "cased":
			cased = true
		case "exists":
			exists = true
		case "intel":
			intelMod = true
		case "":
			p.errf(k, "%q: empty modifier", k.Value)
			return t, false
		default:
			p.errf(k, "%q: modifier %q is not supported (supported: contains, startswith, endswith, all, re, i, m, s, cidr, gt, gte, lt, lte, cased, exists, intel)", k.Value, m)
			return t, false
		}
	}
	kinds := 0
	for _, b := range []bool{strMod != "" || cased, re, cidr, numMod != "", exists, intelMod} {
		if b {
			kinds++
		}
	}
	if kinds > 1 {
		p.errf(k, "%q: these modifiers cannot be combined", k.Value)
		return t, false
	}
	if intelMod && f.intel == intelNone {
		p.errf(k, "%q: |intel works on domain, address, URL and hash fields only", k.Value)
		return t, false
	}
	v = deref(v)
	var vals []*yaml.Node
	switch v.Kind {
	case yaml.ScalarNode:
		vals = []*yaml.Node{v}
	case yaml.SequenceNode:
		vals = v.Content
		if len(vals) == 0 {
			p.errf(v, "%q: empty value list", k.Value)
			return t, false
		}
	default:
		p.errf(v, "%q: value must be a scalar or a list of scalars", k.Value)
		return t, false
	}
	if len(vals) > maxValues {
		p.errf(v, "%q: more than %d values", k.Value, maxValues)
		return t, false
	}
	if exists {
		if len(vals) != 1 || deref(vals[0]).Kind != yaml.ScalarNode {
			p.errf(v, "%q: exists takes true or false", k.Value)
			return t, false
		}
		switch deref(vals[0]).Value {
		case "true":
			t.exists = 1
		case "false":
			t.exists = 2
		default:
			p.errf(v, "%q: exists takes true or false", k.Value)
			return t, false
		}
		return t, true
	}
	for _, vn := range vals {
		vn = deref(vn)
		if vn.Kind != yaml.ScalarNode {
			p.errf(vn, "%q: values must be scalars", k.Value)
			return t, false
		}
		var pat pattern
		var err error
		isNull := vn.Tag == "!!null"
		switch {
		case isNull:
			pat = pattern{op: opNull}
		case re:
			if len(vn.Value) > MaxRegexpLen {
				err = fmt.Errorf("regular expression longer than %d bytes", MaxRegexpLen)
				break
			}
			src := vn.Value
			if reFlags != "" {
				src = "(?" + reFlags + ")" + src
			}
			var rx *regexp.Regexp
			rx, err = regexp.Compile(src)
			pat = pattern{op: opRe, re: rx, cased: true}
		case cidr:
			var pfx netip.Prefix
			pfx, err = netip.ParsePrefix(vn.Value)
			pat = pattern{op: opCIDR, pfx: pfx.Masked(), cased: true}
		case numMod != "":
			var n int64
			n, err = strconv.ParseInt(vn.Value, 10, 64)
			pat = pattern{op: map[string]op{"gt": opGT, "gte": opGTE, "lt": opLT, "lte": opLTE}[numMod], n: n}
		case intelMod:
			pat = pattern{op: opIntel, s: vn.Value}
		default:
			pat, err = compileString(vn.Value, strMod, cased)
		}
		if err != nil {
			p.errf(vn, "%q: value %q: %v", k.Value, vn.Value, err)
			return t, false
		}
		t.pats = append(t.pats, pat)
	}
	return t, true
}

func (p *ruleParser) extension(n *yaml.Node) {
	pairs, ok := p.mapPairs(n, "seccloud")
	if !ok {
		return
	}
	for _, kv := range pairs {
		switch kv[0].Value {
		case "success":
			s, ok := p.scalar(kv[1], "seccloud.success")
			if !ok {
				continue
			}
			b, err := strconv.ParseBool(s)
			if err != nil {
				p.errf(kv[1], "seccloud.success must be true or false")
				continue
			}
			p.rule.Success = b
		case "success_when":
			p.rule.success = p.selection("success_when", kv[1])
		case "infection":
			s, ok := p.scalar(kv[1], "seccloud.infection")
			if !ok {
				continue
			}
			b, err := strconv.ParseBool(s)
			if err != nil {
				p.errf(kv[1], "seccloud.infection must be true or false")
				continue
			}
			p.rule.Infection = b
		case "compromise":
			s, ok := p.scalar(kv[1], "seccloud.compromise")
			if !ok {
				continue
			}
			b, err := strconv.ParseBool(s)
			if err != nil {
				p.errf(kv[1], "seccloud.compromise must be true or false")
				continue
			}
			p.rule.Compromise = b
		case "tenants":
			p.tenants = p.stringList(kv[1], "seccloud.tenants")
			if p.tenants == nil {
				p.tenants = []string{}
			}
			if p.rule.Filter != nil {
				p.rule.Filter.Tenants = p.tenants
			}
		default:
			p.errf(kv[0], "unknown seccloud key %q (known: success, success_when, infection, compromise, tenants)", kv[0].Value)
		}
	}
}

func (p *ruleParser) correlation(n *yaml.Node) {
	pairs, ok := p.mapPairs(n, "correlation")
	if !ok {
		return
	}
	c := &Correlation{}
	p.rule.Correlation = c
	var condNode *yaml.Node
	for _, kv := range pairs {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "type":
			s, _ := p.scalar(v, "correlation.type")
			c.Type = CorrelationType(s)
			switch c.Type {
			case EventCount, ValueCount, Temporal, TemporalOrdered:
			default:
				p.errf(v, "correlation type %q is not one of event_count, value_count, temporal, temporal_ordered", s)
			}
		case "rules":
			c.refs = p.stringList(v, "correlation.rules")
		case "group-by":
			c.GroupBy = p.stringList(v, "correlation.group-by")
		case "timespan":
			s, ok := p.scalar(v, "correlation.timespan")
			if !ok {
				continue
			}
			d, err := parseTimespan(s)
			if err != nil {
				p.errf(v, "timespan %q: %v", s, err)
			}
			c.Timespan = d
		case "condition":
			condNode = v
		case "generate":
			s, _ := p.scalar(v, "correlation.generate")
			c.Generate = s == "true"
		case "aliases":
			p.aliases(c, v)
		default:
			p.errf(k, "unknown correlation key %q", k.Value)
		}
	}
	if c.Type == "" {
		p.errf(n, "correlation has no type")
	}
	if len(c.refs) == 0 {
		p.errf(n, "correlation has no rules")
	}
	if c.Timespan <= 0 {
		p.errf(n, "correlation has no timespan")
	}
	switch c.Type {
	case EventCount, ValueCount:
		if condNode == nil {
			p.errf(n, "%s correlation needs a condition", c.Type)
			return
		}
		cp, ok := p.mapPairs(condNode, "correlation.condition")
		if !ok {
			return
		}
		for _, kv := range cp {
			s, _ := p.scalar(kv[1], "condition."+kv[0].Value)
			switch kv[0].Value {
			case "gt", "gte", "eq":
				if c.Op != "" {
					p.errf(kv[0], "condition has two comparisons")
				}
				c.Op = kv[0].Value
				nv, err := strconv.ParseInt(s, 10, 64)
				if err != nil || nv < 0 || nv > 1_000_000 {
					p.errf(kv[1], "condition %s: %q is not an integer 0..1000000", kv[0].Value, s)
				}
				c.Threshold = nv
			case "lt", "lte":
				p.errf(kv[0], "condition %s (absence of events) is not supported", kv[0].Value)
			case "field":
				c.Field = s
			default:
				p.errf(kv[0], "unknown condition key %q", kv[0].Value)
			}
		}
		if c.Op == "" {
			p.errf(condNode, "condition needs gt, gte or eq")
		}
		if c.Type == ValueCount && c.Field == "" {
			p.errf(condNode, "value_count condition needs field")
		}
		if c.Type == EventCount && c.Field != "" {
			p.errf(condNode, "event_count condition takes no field")
		}
	case Temporal, TemporalOrdered:
		if condNode != nil {
			p.errf(condNode, "%s correlation takes no condition (all rules must match)", c.Type)
		}
		if len(c.refs) < 2 {
			p.errf(n, "%s correlation needs at least two rules", c.Type)
		}
		c.Op, c.Threshold = "gte", int64(len(c.refs))
	}
}

func (p *ruleParser) aliases(c *Correlation, n *yaml.Node) {
	pairs, ok := p.mapPairs(n, "correlation.aliases")
	if !ok {
		return
	}
	c.aliases = map[string]map[string]string{}
	for _, kv := range pairs {
		m := map[string]string{}
		rp, ok := p.mapPairs(kv[1], "alias "+kv[0].Value)
		if !ok {
			continue
		}
		for _, r := range rp {
			s, _ := p.scalar(r[1], "alias field")
			if _, ok := lookupField(s); !ok {
				p.errf(r[1], "alias %q: unknown field %q", kv[0].Value, s)
			}
			m[r[0].Value] = s
		}
		c.aliases[kv[0].Value] = m
	}
}

// parseTimespan accepts Sigma timespans (30s, 5m, 1h, 7d) and Go durations.
func parseTimespan(s string) (time.Duration, error) {
	if n := len(s); n > 1 && s[n-1] == 'd' {
		v, err := strconv.Atoi(s[:n-1])
		if err != nil || v <= 0 || v > 366 {
			return 0, fmt.Errorf("bad day count")
		}
		return time.Duration(v) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 || d > 366*24*time.Hour {
		return 0, fmt.Errorf("must be between 1ns and 366d")
	}
	return d, nil
}

// Filter is the filter part of a rule (a Sigma filter): events of the
// filtered rules pass only when they meet the filter's condition, e.g.
// "not selection" drops the events the selection matches.
type Filter struct {
	// Rules are the filtered rules (by id or name in the file); empty means
	// every rule: a global filter, evaluated once per event, that keeps the
	// events it drops away from all rules and correlations.
	Rules []*Rule
	// Tenants limits the filter to events of these tenants (seccloud
	// extension seccloud.tenants); empty means every tenant.
	Tenants []string

	refs []string
}

// applies reports whether filter rule f concerns ev (module and tenant).
func (r *Rule) filterApplies(ev *detect.Event) bool {
	if r.module != "" && r.module != ev.Module {
		return false
	}
	if len(r.Filter.Tenants) == 0 {
		return true
	}
	for _, t := range r.Filter.Tenants {
		if t == ev.Tenant {
			return true
		}
	}
	return false
}

// filter parses a filter: a detection with an optional rules list.
func (p *ruleParser) filter(n *yaml.Node) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		p.errf(n, "filter must be a mapping")
		return
	}
	f := &Filter{Tenants: p.tenants}
	p.rule.Filter = f
	det := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "rules" {
			f.refs = p.stringList(n.Content[i+1], "filter.rules")
			continue
		}
		det.Content = append(det.Content, n.Content[i], n.Content[i+1])
	}
	p.detection(det)
}
