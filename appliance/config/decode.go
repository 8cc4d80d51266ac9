package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the nodes visited while decoding, aliases expanded, so a
// small file cannot make the decoder do unbounded work (a configuration of
// 100 tenants with 50 networks each is about 15,000 nodes).
const maxNodes = 1 << 18

// maxErrors bounds the errors reported for one file.
const maxErrors = 200

// scalarForm is implemented by types that accept a plain scalar in place of
// their mapping form (Bandwidth) or have their own scalar syntax (Duration).
type scalarForm interface {
	decodeScalar(s string) error
}

// decoder walks a yaml.Node tree into a Go value, checking every key
// against the yaml tags of the target and recording every error with its
// position and key path instead of stopping at the first.
type decoder struct {
	file    string
	errs    Errors
	nodes   int
	tooMany bool // errors beyond maxErrors were dropped
	// expanding holds the alias targets being decoded, to refuse cycles.
	expanding map[*yaml.Node]bool
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	if len(d.errs) >= maxErrors {
		d.tooMany = true
		return
	}
	e := &Error{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// parseDocument parses data into the root mapping node of its only document.
// A nil node with no error means the document is empty.
func parseDocument(file string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, Errors{syntaxError(file, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		e := &Error{File: file, Msg: "only one YAML document is allowed"}
		if err != nil {
			e = syntaxError(file, err)
		} else {
			e.Line, e.Column = extra.Line, extra.Column
		}
		return nil, Errors{e}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// syntaxError turns a yaml parser error ("yaml: line 3: did not find
// expected key") into a positioned Error.
func syntaxError(file string, err error) *Error {
	msg := err.Error()
	e := &Error{File: file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	e.Msg = "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")
	return e
}

// decode stores n into v (addressable), recording errors under path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	d.nodes++
	if d.tooMany {
		return
	}
	if d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.errorf(n, path, "document too large or too many alias expansions")
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.errorf(n, path, "unknown alias")
			return
		}
		if !d.enter(n) {
			return
		}
		defer delete(d.expanding, n.Alias)
		n = n.Alias
	}
	if isNull(n) {
		v.SetZero()
		return
	}
	if n.Kind == yaml.ScalarNode {
		if sf, ok := v.Addr().Interface().(scalarForm); ok {
			if err := sf.decodeScalar(n.Value); err != nil {
				d.errorf(n, path, "%v", err)
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		if isTextValue(v) {
			d.scalar(n, v, path)
			return
		}
		d.mapping(n, v, path)
	case reflect.Slice:
		d.sequence(n, v, path)
	default:
		d.scalar(n, v, path)
	}
}

// enter marks the target of alias n as being expanded; it reports false
// (and records an error) when the target contains the alias itself.
func (d *decoder) enter(n *yaml.Node) bool {
	if d.expanding[n.Alias] {
		d.errorf(n, "", "alias *%s refers to a value that contains it", n.Value)
		return false
	}
	if d.expanding == nil {
		d.expanding = map[*yaml.Node]bool{}
	}
	d.expanding[n.Alias] = true
	return true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// isTextValue reports whether v is a struct decoded from a scalar text
// (netip.Addr, netip.Prefix, ...).
func isTextValue(v reflect.Value) bool {
	_, ok := v.Addr().Interface().(interface{ UnmarshalText([]byte) error })
	return ok
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a value"
}

// scalar decodes a plain value through yaml itself (strings, numbers,
// booleans, encoding.TextUnmarshaler).
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "want %s, found %s", typeName(v.Type()), kindName(n))
		return
	}
	if v.Kind() == reflect.String {
		// Text is taken as written, even when it looks like a number.
		v.SetString(n.Value)
		return
	}
	p := reflect.New(v.Type())
	if err := n.Decode(p.Interface()); err != nil {
		msg := err.Error()
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			msg = yamlLine.ReplaceAllString(te.Errors[0], "")
		}
		if strings.Contains(msg, "cannot unmarshal") || isTextValue(p.Elem()) {
			msg = fmt.Sprintf("want %s, found %q", typeName(v.Type()), n.Value)
		}
		d.errorf(n, path, "%s", strings.TrimPrefix(msg, "yaml: "))
		return
	}
	v.Set(p.Elem())
}

func typeName(t reflect.Type) string {
	if t == reflect.TypeFor[Duration]() {
		return "a duration such as 720h, 30d or 5y"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Struct:
		switch t.Name() {
		case "Addr":
			return "an IP address"
		case "Prefix":
			return "an IP prefix (address/bits)"
		}
		return "a mapping"
	}
	return t.String()
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	items := n.Content
	if n.Kind != yaml.SequenceNode {
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "want a list, found %s", kindName(n))
			return
		}
		// A single value stands for a list of one.
		items = []*yaml.Node{n}
	}
	s := reflect.MakeSlice(v.Type(), len(items), len(items))
	for i, item := range items {
		d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

// field is one yaml-tagged field of a struct.
type field struct {
	key   string
	index int
}

func structFields(t reflect.Type) []field {
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fs = append(fs, field{name, i})
	}
	return fs
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping, found %s", kindName(n))
		return
	}
	fields := structFields(v.Type())
	seen := map[string]*yaml.Node{}
	d.mappingInto(n, v, path, fields, seen)
}

func (d *decoder) mappingInto(n *yaml.Node, v reflect.Value, path string, fields []field, seen map[string]*yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "keys must be plain names, found %s", kindName(k))
			continue
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			d.merge(val, v, path, fields, seen)
			continue
		}
		kp := k.Value
		if path != "" {
			kp = path + "." + k.Value
		}
		if prev, dup := seen[k.Value]; dup && prev != nil {
			d.errorf(k, kp, "key set twice (first at line %d)", prev.Line)
			continue
		}
		seen[k.Value] = k
		f, ok := findField(fields, k.Value)
		if !ok {
			d.errorf(k, kp, "unknown key %q (known keys here: %s)", k.Value, knownKeys(fields))
			continue
		}
		d.decode(val, v.Field(f.index), kp)
	}
}

// merge applies a YAML merge key ("<<: *base"): the merged keys are set
// unless the mapping sets them itself (which it may do after the merge).
func (d *decoder) merge(val *yaml.Node, v reflect.Value, path string, fields []field, seen map[string]*yaml.Node) {
	d.nodes++
	if d.nodes > maxNodes {
		return
	}
	if val.Kind == yaml.AliasNode && val.Alias != nil {
		if !d.enter(val) {
			return
		}
		defer delete(d.expanding, val.Alias)
		val = val.Alias
	}
	switch val.Kind {
	case yaml.MappingNode:
		sub := map[string]*yaml.Node{}
		d.mappingInto(val, v, path, fields, sub)
		for k := range sub {
			if _, ok := seen[k]; !ok {
				seen[k] = nil // merged: the mapping may still override it
			}
		}
	case yaml.SequenceNode:
		for _, item := range val.Content {
			d.merge(item, v, path, fields, seen)
		}
	default:
		d.errorf(val, path, "<< merges a mapping, found %s", kindName(val))
	}
}

func findField(fields []field, key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

func knownKeys(fields []field) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// locate returns the node at path ("tenants[1].networks[0]") in root, or
// the deepest node on the way when the rest of the path is not written
// (e.g. a missing key reports the mapping that lacks it).
func locate(root *yaml.Node, path string) *yaml.Node {
	n := root
	for _, seg := range splitPath(path) {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		next := child(n, seg, 0)
		if next == nil {
			return n
		}
		n = next
	}
	return n
}

func child(n *yaml.Node, seg string, depth int) *yaml.Node {
	if depth > 8 { // merges of merges; also stops alias cycles
		return nil
	}
	if idx, err := strconv.Atoi(seg); err == nil {
		switch {
		case n.Kind == yaml.SequenceNode && idx < len(n.Content):
			return n.Content[idx]
		case n.Kind == yaml.ScalarNode && idx == 0:
			return n // a single value standing for a list
		}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	var found *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Value == seg {
			found = n.Content[i+1]
		} else if k.Value == "<<" && found == nil {
			m := n.Content[i+1]
			if m.Kind == yaml.AliasNode && m.Alias != nil {
				m = m.Alias
			}
			if c := child(m, seg, depth+1); c != nil {
				found = c
			}
		}
	}
	return found
}

// splitPath splits "a[1].b" into "a", "1", "b".
func splitPath(path string) []string {
	var segs []string
	for _, part := range strings.Split(path, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name != "" {
			segs = append(segs, name)
		}
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			segs = append(segs, idx)
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return segs
}

func decodeInt(s string, n *int) error {
	v, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil {
		return fmt.Errorf("want a whole number, found %q", s)
	}
	*n = v
	return nil
}

// ParseDuration parses a Go duration ("720h", "1h30m") or a whole number of
// days or years ("30d", "5y"; a year is 366 days, see Year).
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	unit := time.Duration(0)
	switch {
	case strings.HasSuffix(s, "d"):
		unit = 24 * time.Hour
	case strings.HasSuffix(s, "y"):
		unit = Year
	}
	if unit == 0 {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("want a duration such as 720h, 30d or 5y, found %q", s)
		}
		return d, nil
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/int64(unit) {
		return 0, fmt.Errorf("want a duration such as 720h, 30d or 5y, found %q", s)
	}
	return time.Duration(n) * unit, nil
}
