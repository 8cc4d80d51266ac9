// Package vuln checks an asset inventory (per tenant: host, software,
// version) against a vulnerability feed the operator loads (a subset of the
// NVD CVE API 2.0 JSON: CPE match criteria with version ranges), and
// answers detect/judge's question "is the attacked host vulnerable?" with
// the CVEs behind the answer.
//
//	inv, err := vuln.LoadInventory("/etc/seccloud/assets.csv")
//	feed, err := vuln.LoadFeed("/etc/seccloud/nvd-recent.json")
//	db := vuln.New(inv, feed)        // a judge.VulnLookup and judge.VulnDetails
//	j := &judge.Default{Vuln: db}
package vuln

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode"
)

// Software is one piece of software on a host.
type Software struct {
	// Vendor may be empty (then any vendor of the product matches).
	Vendor, Product, Version string
}

// Asset is one host of a tenant with its software.
type Asset struct {
	Tenant, Host string
	Software     []Software
}

// Inventory is the assets by tenant and lower-case host.
type Inventory map[string]map[string]*Asset

// Add records software on a host.
func (inv Inventory) Add(tenant, host string, sw Software) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	sw.Vendor, sw.Product = norm(sw.Vendor), norm(sw.Product)
	if inv[tenant] == nil {
		inv[tenant] = map[string]*Asset{}
	}
	a := inv[tenant][host]
	if a == nil {
		a = &Asset{Tenant: tenant, Host: host}
		inv[tenant][host] = a
	}
	a.Software = append(a.Software, sw)
}

func norm(s string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), " ", "_")
}

// ReadInventory reads a CSV inventory with a header naming the columns
// tenant, host, product, version and optionally vendor (any order; other
// columns ignored). One row per software of a host. Errors name the line.
func ReadInventory(r io.Reader, name string) (Inventory, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("vuln: %s: header: %w", name, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	for _, need := range []string{"tenant", "host", "product", "version"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("vuln: %s:1: header lacks column %q", name, need)
		}
	}
	inv := Inventory{}
	get := func(rec []string, c string) string {
		if i, ok := col[c]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return inv, nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("vuln: %s: %w", name, err)
		}
		t, h, p := get(rec, "tenant"), get(rec, "host"), get(rec, "product")
		if t == "" || h == "" || p == "" {
			return nil, fmt.Errorf("vuln: %s:%d: tenant, host and product are required", name, line)
		}
		inv.Add(t, h, Software{Vendor: get(rec, "vendor"), Product: p, Version: get(rec, "version")})
	}
}

// LoadInventory reads a CSV inventory file (see ReadInventory).
func LoadInventory(path string) (Inventory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vuln: %w", err)
	}
	defer f.Close()
	return ReadInventory(f, path)
}

// Match is one CPE match criterion of a CVE.
type Match struct {
	Vulnerable               bool
	Vendor, Product, Version string // from the CPE 2.3 criteria; "*" = any
	StartIncl, StartExcl     string
	EndIncl, EndExcl         string
}

// Node is a set of matches joined by OR (or AND), possibly negated.
type Node struct {
	And, Negate bool
	Matches     []Match
}

// Config is one configuration of a CVE: its nodes joined by OR, or AND
// (e.g. an application AND the platform it runs on).
type Config struct {
	And   bool
	Nodes []Node
}

// CVE is one vulnerability of the feed.
type CVE struct {
	ID          string
	Description string
	Configs     []Config
}

// Feed is a loaded vulnerability feed.
type Feed struct {
	CVEs []CVE
	// byProduct indexes the CVEs by the products of their matches.
	byProduct map[string][]int
}

type nvdFeed struct {
	Vulnerabilities []struct {
		CVE struct {
			ID           string `json:"id"`
			Descriptions []struct {
				Lang  string `json:"lang"`
				Value string `json:"value"`
			} `json:"descriptions"`
			Configurations []struct {
				Operator string `json:"operator"`
				Nodes    []struct {
					Operator string `json:"operator"`
					Negate   bool   `json:"negate"`
					CPEMatch []struct {
						Vulnerable bool   `json:"vulnerable"`
						Criteria   string `json:"criteria"`
						StartIncl  string `json:"versionStartIncluding"`
						StartExcl  string `json:"versionStartExcluding"`
						EndIncl    string `json:"versionEndIncluding"`
						EndExcl    string `json:"versionEndExcluding"`
					} `json:"cpeMatch"`
				} `json:"nodes"`
			} `json:"configurations"`
		} `json:"cve"`
	} `json:"vulnerabilities"`
}

// ReadFeed reads a feed in the NVD CVE API 2.0 JSON shape
// ({"vulnerabilities":[{"cve":{"id", "descriptions", "configurations":
// [{"operator", "nodes":[{"operator", "negate", "cpeMatch":[{"vulnerable",
// "criteria": "cpe:2.3:a:vendor:product:version:…", "versionStartIncluding",
// "versionStartExcluding", "versionEndIncluding", "versionEndExcluding"}]}]}]}}]});
// other fields are ignored. A criteria that is not a CPE 2.3 name is an
// error naming the CVE.
func ReadFeed(r io.Reader, name string) (*Feed, error) {
	var raw nvdFeed
	dec := json.NewDecoder(r)
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("vuln: %s: %w", name, err)
	}
	f := &Feed{byProduct: map[string][]int{}}
	for _, v := range raw.Vulnerabilities {
		c := CVE{ID: v.CVE.ID}
		if c.ID == "" {
			return nil, fmt.Errorf("vuln: %s: a vulnerability without cve.id", name)
		}
		for _, d := range v.CVE.Descriptions {
			if d.Lang == "en" || c.Description == "" {
				c.Description = d.Value
			}
		}
		products := map[string]bool{}
		for _, cfg := range v.CVE.Configurations {
			conf := Config{And: strings.EqualFold(cfg.Operator, "AND")}
			for _, n := range cfg.Nodes {
				node := Node{And: strings.EqualFold(n.Operator, "AND"), Negate: n.Negate}
				for _, m := range n.CPEMatch {
					parts := strings.Split(m.Criteria, ":")
					if len(parts) < 6 || parts[0] != "cpe" || parts[1] != "2.3" {
						return nil, fmt.Errorf("vuln: %s: %s: criteria %q is not a CPE 2.3 name", name, c.ID, m.Criteria)
					}
					mt := Match{Vulnerable: m.Vulnerable, Vendor: norm(parts[3]), Product: norm(parts[4]), Version: parts[5],
						StartIncl: m.StartIncl, StartExcl: m.StartExcl, EndIncl: m.EndIncl, EndExcl: m.EndExcl}
					node.Matches = append(node.Matches, mt)
					products[mt.Product] = true
				}
				conf.Nodes = append(conf.Nodes, node)
			}
			c.Configs = append(c.Configs, conf)
		}
		i := len(f.CVEs)
		f.CVEs = append(f.CVEs, c)
		for p := range products {
			f.byProduct[p] = append(f.byProduct[p], i)
		}
	}
	return f, nil
}

// LoadFeed reads a feed file (see ReadFeed).
func LoadFeed(path string) (*Feed, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vuln: %w", err)
	}
	defer fh.Close()
	return ReadFeed(fh, path)
}

// Finding is one CVE that applies to a host.
type Finding struct {
	CVE      string
	Software Software
	// Why is the matched criterion, e.g. "apache:http_server 2.4.49 ≤ v < 2.4.51".
	Why string
}

// matches reports whether sw satisfies m.
func (m *Match) matches(sw *Software) bool {
	if m.Product != sw.Product || (m.Vendor != "*" && m.Vendor != "" && sw.Vendor != "" && m.Vendor != sw.Vendor) {
		return false
	}
	if m.Version != "*" && m.Version != "-" && m.Version != "" {
		return Compare(sw.Version, m.Version) == 0
	}
	if sw.Version == "" {
		return false // a range cannot be checked without a version
	}
	if m.StartIncl != "" && Compare(sw.Version, m.StartIncl) < 0 ||
		m.StartExcl != "" && Compare(sw.Version, m.StartExcl) <= 0 ||
		m.EndIncl != "" && Compare(sw.Version, m.EndIncl) > 0 ||
		m.EndExcl != "" && Compare(sw.Version, m.EndExcl) >= 0 {
		return false
	}
	return true
}

func (m *Match) String() string {
	s := m.Vendor + ":" + m.Product
	switch {
	case m.Version != "*" && m.Version != "":
		return s + " " + m.Version
	}
	var lo, hi string
	if m.StartIncl != "" {
		lo = m.StartIncl + " ≤ "
	} else if m.StartExcl != "" {
		lo = m.StartExcl + " < "
	}
	if m.EndIncl != "" {
		hi = " ≤ " + m.EndIncl
	} else if m.EndExcl != "" {
		hi = " < " + m.EndExcl
	}
	if lo == "" && hi == "" {
		return s + " (all versions)"
	}
	return s + " " + lo + "v" + hi
}

// nodeHit evaluates a node on a host: whether it holds, and the vulnerable
// match that made it hold (if any).
func nodeHit(n *Node, a *Asset) (bool, *Match, *Software) {
	var vm *Match
	var vs *Software
	hits := 0
	for i := range n.Matches {
		m := &n.Matches[i]
		hit := false
		for j := range a.Software {
			if m.matches(&a.Software[j]) {
				hit = true
				if m.Vulnerable && vm == nil {
					vm, vs = m, &a.Software[j]
				}
				break
			}
		}
		if hit {
			hits++
		}
	}
	ok := hits > 0
	if n.And {
		ok = hits == len(n.Matches) && hits > 0
	}
	if n.Negate {
		return !ok, nil, nil
	}
	return ok, vm, vs
}

// findings returns the CVEs of the feed that apply to a.
func (f *Feed) findings(a *Asset) []Finding {
	seen := map[int]bool{}
	var out []Finding
	for _, sw := range a.Software {
		for _, i := range f.byProduct[sw.Product] {
			if seen[i] {
				continue
			}
			seen[i] = true
			c := &f.CVEs[i]
			for ci := range c.Configs {
				cfg := &c.Configs[ci]
				all, any := true, false
				var vm *Match
				var vs *Software
				for ni := range cfg.Nodes {
					ok, m, s := nodeHit(&cfg.Nodes[ni], a)
					all = all && ok
					any = any || ok
					if ok && m != nil && vm == nil {
						vm, vs = m, s
					}
				}
				holds := any
				if cfg.And {
					holds = all && len(cfg.Nodes) > 0
				}
				if holds && vm != nil {
					out = append(out, Finding{CVE: c.ID, Software: *vs, Why: vm.String()})
					break
				}
			}
		}
	}
	slices.SortFunc(out, func(x, y Finding) int { return strings.Compare(x.CVE, y.CVE) })
	return out
}

// DB is an inventory checked against a feed, precomputed per host. It
// implements judge.VulnLookup and judge.VulnDetails. Safe for concurrent
// use; Swap replaces it atomically on reload.
type DB struct {
	p atomic.Pointer[table]
}

type table struct {
	known map[string]map[string][]Finding // tenant -> host -> findings
}

// New checks every asset of inv against feed (nil feed: every host is
// known and not vulnerable).
func New(inv Inventory, feed *Feed) *DB {
	db := &DB{}
	db.Swap(inv, feed)
	return db
}

// Swap replaces the inventory and feed.
func (db *DB) Swap(inv Inventory, feed *Feed) {
	t := &table{known: map[string]map[string][]Finding{}}
	for tenant, hosts := range inv {
		t.known[tenant] = map[string][]Finding{}
		for h, a := range hosts {
			var fs []Finding
			if feed != nil {
				fs = feed.findings(a)
			}
			t.known[tenant][h] = fs
		}
	}
	db.p.Store(t)
}

// Findings returns the CVEs that apply to a tenant's host and whether the
// inventory knows the host.
func (db *DB) Findings(tenant, host string) ([]Finding, bool) {
	t := db.p.Load()
	if t == nil {
		return nil, false
	}
	fs, ok := t.known[tenant][strings.ToLower(strings.TrimSuffix(host, "."))]
	return fs, ok
}

// IsVulnerable implements judge.VulnLookup: known when the host is in the
// inventory, vulnerable when at least one CVE of the feed applies to its
// software.
func (db *DB) IsVulnerable(tenant, host string) (bool, bool) {
	fs, ok := db.Findings(tenant, host)
	return len(fs) > 0, ok
}

// VulnEvidence implements judge.VulnDetails: one line per CVE (at most 5).
func (db *DB) VulnEvidence(tenant, host string) []string {
	fs, _ := db.Findings(tenant, host)
	var out []string
	for i, f := range fs {
		if i == 5 {
			out = append(out, "… "+strconv.Itoa(len(fs)-5)+" more")
			break
		}
		sw := f.Software.Product + " " + f.Software.Version
		out = append(out, f.CVE+" ("+sw+": "+f.Why+")")
	}
	return out
}

// Compare compares two version strings: dotted (or dashed) segments, digit
// runs numerically and other runs as text, so 2.4.9 < 2.4.10 and
// 1.0.0-rc1 < 1.0.0-rc2. A missing segment is less than any present one
// (2.4 < 2.4.0). It returns -1, 0 or +1.
func Compare(a, b string) int {
	as, bs := segments(a), segments(b)
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, y := as[i], bs[i]
		xn, xerr := strconv.ParseUint(x, 10, 64)
		yn, yerr := strconv.ParseUint(y, 10, 64)
		switch {
		case xerr == nil && yerr == nil:
			if xn != yn {
				if xn < yn {
					return -1
				}
				return 1
			}
		case xerr == nil:
			return 1 // numbers after text: 1.0.1 > 1.0.rc
		case yerr == nil:
			return -1
		default:
			if c := strings.Compare(strings.ToLower(x), strings.ToLower(y)); c != 0 {
				return c
			}
		}
	}
	switch {
	case len(as) < len(bs):
		return -1
	case len(as) > len(bs):
		return 1
	}
	return 0
}

func segments(v string) []string {
	var out []string
	cur := []rune{}
	digit := false
	flush := func() {
		if len(cur) > 0 {
			out = append(out, string(cur))
			cur = cur[:0]
		}
	}
	for _, r := range strings.TrimSpace(v) {
		switch {
		case r == '.' || r == '-' || r == '_' || r == '+' || r == ':':
			flush()
		case unicode.IsDigit(r) != digit && len(cur) > 0:
			flush()
			digit = unicode.IsDigit(r)
			cur = append(cur, r)
		default:
			digit = unicode.IsDigit(r)
			cur = append(cur, r)
		}
	}
	flush()
	return out
}
