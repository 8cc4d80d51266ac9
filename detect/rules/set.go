package rules

import (
	"embed"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Set is a compiled, immutable collection of rules, ready for an [Engine].
// It is safe for concurrent use.
type Set struct {
	rules    []*Rule
	byModule map[string][]*Rule // detection rules for a module, incl. module-less
	generic  []*Rule            // detection rules without module
	corrs    []*Rule
	uses     map[*Rule][]corrUse
	global   []*Rule           // filters of every rule
	filters  map[*Rule][]*Rule // filters of one rule
}

type corrUse struct {
	corr *Rule
	idx  int // index of the detection rule in corr.Correlation.Rules
}

// Rules returns the rules of the set in load order.
func (s *Set) Rules() []*Rule { return s.rules }

// Len returns the number of rules.
func (s *Set) Len() int { return len(s.rules) }

// Rule returns the rule with the given id.
func (s *Set) Rule(id string) (*Rule, bool) {
	for _, r := range s.rules {
		if r.ID == id {
			return r, true
		}
	}
	return nil, false
}

// Compile checks the rules together (unique ids and names, correlation
// references, group-by fields) and builds a Set. Rules come from [Parse];
// Compile fills in their references, so a Rule must be compiled into one
// Set only (parse again for another Set).
func Compile(rules []*Rule) (*Set, error) {
	var errs Errors
	fail := func(r *Rule, format string, a ...any) {
		errs = append(errs, &Error{File: r.File, Line: r.Line, Rule: r.ID, Msg: fmt.Sprintf(format, a...)})
	}
	s := &Set{rules: rules, byModule: map[string][]*Rule{}, uses: map[*Rule][]corrUse{}, filters: map[*Rule][]*Rule{}}
	for _, r := range rules {
		r.referenced, r.generate = false, false
	}
	byRef := map[string]*Rule{}
	for _, r := range rules {
		if o, dup := byRef[r.ID]; dup {
			fail(r, "id %q already used by the rule at %s:%d", r.ID, o.File, o.Line)
			continue
		}
		byRef[r.ID] = r
		if r.Name != "" && r.Name != r.ID {
			if o, dup := byRef[r.Name]; dup && o != r {
				fail(r, "name %q already used by the rule at %s:%d", r.Name, o.File, o.Line)
				continue
			}
			byRef[r.Name] = r
		}
	}
	for _, r := range rules {
		f := r.Filter
		if f == nil {
			continue
		}
		f.Rules = f.Rules[:0]
		if len(f.refs) == 0 {
			s.global = append(s.global, r)
			continue
		}
		for _, ref := range f.refs {
			d, found := byRef[ref]
			switch {
			case !found:
				fail(r, "filter refers to unknown rule %q", ref)
			case d.Filter != nil:
				fail(r, "filter refers to filter %q", ref)
			default:
				f.Rules = append(f.Rules, d)
				s.filters[d] = append(s.filters[d], r)
			}
		}
	}
	for _, r := range rules {
		c := r.Correlation
		if c == nil {
			continue
		}
		ok := true
		c.Rules = c.Rules[:0]
		for _, ref := range c.refs {
			d, found := byRef[ref]
			switch {
			case !found:
				fail(r, "correlation refers to unknown rule %q", ref)
				ok = false
			case d.Correlation != nil:
				fail(r, "correlation refers to correlation %q (chains are not supported)", ref)
				ok = false
			case d.Filter != nil:
				fail(r, "correlation refers to filter %q", ref)
				ok = false
			default:
				c.Rules = append(c.Rules, d)
			}
		}
		if !ok {
			continue
		}
		// Resolve group-by names (aliases first) for every referenced rule.
		c.groupFields = make([][]*field, len(c.Rules))
		c.valueField = make([]*field, len(c.Rules))
		for i, d := range c.Rules {
			for _, g := range c.GroupBy {
				f, err := c.resolve(g, c.refs[i], d)
				if err != nil {
					fail(r, "group-by %s", err)
					ok = false
					continue
				}
				c.groupFields[i] = append(c.groupFields[i], f)
			}
			if c.Field != "" {
				f, err := c.resolve(c.Field, c.refs[i], d)
				if err != nil {
					fail(r, "condition field %s", err)
					ok = false
					continue
				}
				c.valueField[i] = f
			}
		}
		if !ok {
			continue
		}
		for i, d := range c.Rules {
			d.referenced = true
			if c.Generate {
				d.generate = true
			}
			s.uses[d] = append(s.uses[d], corrUse{corr: r, idx: i})
		}
		s.corrs = append(s.corrs, r)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for _, r := range rules {
		if r.Correlation != nil || r.Filter != nil {
			continue
		}
		if r.module == "" {
			s.generic = append(s.generic, r)
		}
	}
	for _, r := range rules {
		if r.Correlation != nil || r.Filter != nil || r.module == "" {
			continue
		}
		if _, ok := s.byModule[r.module]; !ok {
			s.byModule[r.module] = nil
		}
	}
	for m := range s.byModule {
		var list []*Rule
		for _, r := range rules {
			if r.Correlation == nil && r.Filter == nil && (r.module == m || r.module == "") {
				list = append(list, r)
			}
		}
		s.byModule[m] = list
	}
	return s, nil
}

func (c *Correlation) resolve(name, ref string, d *Rule) (*field, error) {
	if m, ok := c.aliases[name]; ok {
		fname, ok := m[ref]
		if !ok {
			fname, ok = m[d.ID]
		}
		if !ok {
			return nil, fmt.Errorf("alias %q has no field for rule %q", name, ref)
		}
		f, _ := lookupField(fname)
		return f, nil
	}
	f, ok := lookupField(name)
	if !ok {
		return nil, fmt.Errorf("%q is neither a field nor an alias", name)
	}
	return f, nil
}

// candidates returns the detection rules to try on an event of module m.
func (s *Set) candidates(m string) []*Rule {
	if l, ok := s.byModule[m]; ok {
		return l
	}
	return s.generic
}

// ParseFiles parses the named files (or, for directories, their *.yml and
// *.yaml files, sorted) and compiles them into one Set. Every problem is
// reported, with file and line, in an [Errors].
func ParseFiles(paths ...string) (*Set, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, Errors{{File: p, Msg: err.Error()}}
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, Errors{{File: p, Msg: err.Error()}}
		}
		var names []string
		for _, e := range ents {
			if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yml") || strings.HasSuffix(e.Name(), ".yaml")) {
				names = append(names, filepath.Join(p, e.Name()))
			}
		}
		sort.Strings(names)
		files = append(files, names...)
	}
	return parseFS(func(n string) (io.ReadCloser, error) { return os.Open(n) }, files)
}

func parseFS(open func(string) (io.ReadCloser, error), files []string) (*Set, error) {
	var all []*Rule
	var errs Errors
	for _, name := range files {
		f, err := open(name)
		if err != nil {
			errs = append(errs, &Error{File: name, Msg: err.Error()})
			continue
		}
		rs, err := Parse(name, f)
		f.Close()
		if err != nil {
			errs = append(errs, err.(Errors)...)
			continue
		}
		all = append(all, rs...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return Compile(all)
}

//go:embed default/*.yml
var defaultFS embed.FS

// Default returns a fresh compiled copy of the default rule set shipped with
// seccloud (see the README for the list). It never fails for the shipped
// files; the error is for completeness.
func Default() (*Set, error) {
	ents, err := fs.ReadDir(defaultFS, "default")
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range ents {
		files = append(files, "default/"+e.Name())
	}
	return parseFS(func(n string) (io.ReadCloser, error) { return defaultFS.Open(n) }, files)
}

// DefaultFiles returns the shipped default rule files by name, so operators
// can copy and retune them.
func DefaultFiles() map[string][]byte {
	out := map[string][]byte{}
	ents, _ := fs.ReadDir(defaultFS, "default")
	for _, e := range ents {
		b, err := defaultFS.ReadFile("default/" + e.Name())
		if err == nil {
			out[e.Name()] = b
		}
	}
	return out
}
