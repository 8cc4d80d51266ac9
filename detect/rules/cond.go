package rules

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// node is a compiled condition.
type node struct {
	op   nodeOp
	sel  *selection
	kids []*node
}

type nodeOp uint8

const (
	nSel nodeOp = iota
	nAnd
	nOr
	nNot
)

func (n *node) eval(c *evalCtx) bool {
	switch n.op {
	case nSel:
		return n.sel.match(c)
	case nAnd:
		for _, k := range n.kids {
			if !k.eval(c) {
				return false
			}
		}
		return true
	case nOr:
		for _, k := range n.kids {
			if k.eval(c) {
				return true
			}
		}
		return false
	case nNot:
		return !n.kids[0].eval(c)
	}
	return false
}

// maxCondDepth bounds nesting so hostile rules cannot exhaust the stack.
const maxCondDepth = 64

// parseCondition compiles a Sigma condition over the named selections:
//
//	expr    = and { "or" and }
//	and     = unary { "and" unary }
//	unary   = "not" unary | "(" expr ")" | quant | name
//	quant   = ("1" | "any" | "all") "of" (pattern | "them")
//
// Names and patterns ('*' wildcard) refer to selections; "them" means every
// selection whose name does not start with '_'.
func parseCondition(src string, sels map[string]*selection) (*node, error) {
	p := &condParser{toks: tokenize(src), sels: sels}
	if len(p.toks) == 0 {
		return nil, fmt.Errorf("empty condition")
	}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		return nil, fmt.Errorf("unexpected %q in condition", p.toks[p.i])
	}
	return n, nil
}

type condParser struct {
	toks []string
	i    int
	sels map[string]*selection
}

func tokenize(s string) []string {
	var out []string
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == '|':
			out = append(out, s[i:i+1])
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r()|", rune(s[j])) {
				j++
			}
			out = append(out, s[i:j])
			i = j
		}
	}
	return out
}

func (p *condParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

func (p *condParser) expr(depth int) (*node, error) {
	if depth > maxCondDepth {
		return nil, fmt.Errorf("condition nested too deeply")
	}
	n, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	kids := []*node{n}
	for strings.EqualFold(p.peek(), "or") {
		p.i++
		k, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		kids = append(kids, k)
	}
	if len(kids) == 1 {
		return n, nil
	}
	return &node{op: nOr, kids: kids}, nil
}

func (p *condParser) and(depth int) (*node, error) {
	n, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	kids := []*node{n}
	for strings.EqualFold(p.peek(), "and") {
		p.i++
		k, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		kids = append(kids, k)
	}
	if len(kids) == 1 {
		return n, nil
	}
	return &node{op: nAnd, kids: kids}, nil
}

func (p *condParser) unary(depth int) (*node, error) {
	if depth > maxCondDepth {
		return nil, fmt.Errorf("condition nested too deeply")
	}
	t := p.peek()
	switch {
	case t == "":
		return nil, fmt.Errorf("condition ends early")
	case strings.EqualFold(t, "not"):
		p.i++
		k, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return &node{op: nNot, kids: []*node{k}}, nil
	case t == "(":
		p.i++
		n, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("missing ')' in condition")
		}
		p.i++
		return n, nil
	case t == ")" || t == "|":
		return nil, fmt.Errorf("unexpected %q in condition", t)
	case strings.EqualFold(t, "and") || strings.EqualFold(t, "or") || strings.EqualFold(t, "of"):
		return nil, fmt.Errorf("unexpected %q in condition", t)
	}
	if (t == "1" || strings.EqualFold(t, "any") || strings.EqualFold(t, "all")) && p.i+1 < len(p.toks) && strings.EqualFold(p.toks[p.i+1], "of") {
		p.i += 2
		target := p.peek()
		if target == "" || target == "(" || target == ")" {
			return nil, fmt.Errorf("'of' needs a selection pattern or 'them'")
		}
		p.i++
		var names []string
		if strings.EqualFold(target, "them") {
			for name := range p.sels {
				if !strings.HasPrefix(name, "_") {
					names = append(names, name)
				}
			}
		} else {
			for name := range p.sels {
				if ok, err := path.Match(target, name); err != nil {
					return nil, fmt.Errorf("bad pattern %q: %v", target, err)
				} else if ok {
					names = append(names, name)
				}
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%q matches no selection", target)
		}
		sort.Strings(names)
		kids := make([]*node, len(names))
		for i, name := range names {
			kids[i] = &node{op: nSel, sel: p.sels[name]}
		}
		if len(kids) == 1 {
			return kids[0], nil
		}
		if strings.EqualFold(t, "all") {
			return &node{op: nAnd, kids: kids}, nil
		}
		return &node{op: nOr, kids: kids}, nil
	}
	sel, ok := p.sels[t]
	if !ok {
		return nil, fmt.Errorf("condition names unknown selection %q", t)
	}
	p.i++
	return &node{op: nSel, sel: sel}, nil
}

// uses reports whether the condition refers to sel.
func (n *node) uses(sel *selection) bool {
	if n.op == nSel {
		return n.sel == sel
	}
	for _, k := range n.kids {
		if k.uses(sel) {
			return true
		}
	}
	return false
}
