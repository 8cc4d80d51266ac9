package waf

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"rsc.io/binaryregexp"

	"github.com/jichitai/seccloud/waf/internal/fastrx"
)

// Our engine runs CRS's @rx rules with its own operator, rxOperator. It
// matches exactly as Coraza's @rx does (the pattern compiled with the
// (?sm) flags with Go's regexp semantics, or by rsc.io/binaryregexp when
// the pattern names bytes that are not UTF-8; the same captures), but
// through package waf/internal/fastrx: a necessary condition derived
// from the pattern first (waf/internal/rxfilter), then RE2's DFA, with
// Go's regexp deciding whenever RE2 could differ. Coraza's own prefilter
// (SecRxPreFilter) gives up on case-insensitive patterns for any value
// that is not pure ASCII: for Japanese form text, the common case here,
// every such regexp would run in full in Go's matcher.
//
// The operator is registered under its own name (rxOperatorName) and the
// CRS files are read through rxFS, which rewrites "@rx " to it, so a
// plain Coraza WAF in the same process keeps Coraza's @rx.

const rxOperatorName = "seccloudrx"

var registerRx sync.Once

func registerRxOperator() {
	registerRx.Do(func() { plugins.RegisterOperator(rxOperatorName, newRxOperator) })
}

type rxOperator struct {
	re  *fastrx.Regexp
	bin *binaryregexp.Regexp
}

type rxCompiled struct {
	re  *fastrx.Regexp
	bin *binaryregexp.Regexp
}

func newRxOperator(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	compile := func() (any, error) {
		data := "(?sm)" + o.Arguments
		if namesNonUTF8Bytes(data) {
			// as Coraza: the pattern as written, byte semantics
			re, err := binaryregexp.Compile(o.Arguments)
			if err != nil {
				return nil, fmt.Errorf("waf: @rx %q: %w", o.Arguments, err)
			}
			return &rxCompiled{bin: re}, nil
		}
		re, err := fastrx.Compile(data)
		if err != nil {
			return nil, fmt.Errorf("waf: @rx %q: %w", o.Arguments, err)
		}
		return &rxCompiled{re: re}, nil
	}
	var c any
	var err error
	if o.Memoizer != nil {
		c, err = o.Memoizer.Do(rxOperatorName+":"+o.Arguments, compile)
	} else {
		c, err = compile()
	}
	if err != nil {
		return nil, err
	}
	rc := c.(*rxCompiled)
	return &rxOperator{re: rc.re, bin: rc.bin}, nil
}

// Evaluate implements plugintypes.Operator with the semantics of
// Coraza's @rx: captures 0-8 when the transaction captures.
func (o *rxOperator) Evaluate(tx plugintypes.TransactionState, v string) bool {
	if o.bin != nil {
		if !tx.Capturing() {
			return o.bin.MatchString(v)
		}
		m := o.bin.FindStringSubmatch(v)
		if m == nil {
			return false
		}
		for i, c := range m {
			if i == 9 {
				break
			}
			tx.CaptureField(i, c)
		}
		return true
	}
	if !tx.Capturing() {
		return o.re.MatchString(v)
	}
	m := o.re.FindStringSubmatchIndex(v)
	if m == nil {
		return false
	}
	for i := 0; i < len(m)/2 && i < 9; i++ {
		if m[2*i] >= 0 {
			tx.CaptureField(i, v[m[2*i]:m[2*i+1]])
		} else {
			tx.CaptureField(i, "")
		}
	}
	return true
}

// namesNonUTF8Bytes reports whether pattern, with its \xHH and \x{HH}
// escapes read as bytes, is not valid UTF-8; Coraza then matches bytes,
// not runes. The reading mirrors Coraza's (operators/rx.go) so that the
// same rules take the byte path: another escape keeps only its
// backslash, a braced escape is read by its first two hex digits, and
// the last three bytes of the pattern are taken as they are.
func namesNonUTF8Bytes(pattern string) bool {
	b := make([]byte, 0, len(pattern))
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		if i+3 >= len(pattern) {
			b = append(b, pattern[i:]...)
			break
		}
		if pattern[i+1] != 'x' {
			b = append(b, c)
			continue
		}
		hex, skip := pattern[i+2:i+4], 3
		if len(pattern)-i >= 6 && pattern[i+2] == '{' {
			if end := strings.IndexByte(pattern[i:], '}'); end >= 0 {
				hex, skip = pattern[i+3:i+end], end
				if len(hex) > 2 {
					hex = hex[:2]
				}
			}
		}
		v, err := strconv.ParseUint(hex, 16, 8)
		if len(hex) != 2 || err != nil {
			b = append(b, c)
			continue
		}
		b = append(b, byte(v))
		i += skip
	}
	return !utf8.Valid(b)
}

// rxFS serves the CRS files with "@rx " rewritten to our operator.
type rxFS struct{ fs.FS }

func (r rxFS) Open(name string) (fs.File, error) {
	f, err := r.FS.Open(name)
	if err != nil || !strings.HasSuffix(name, ".conf") {
		return f, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return r.FS.Open(name)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	b = rewriteRx(b)
	return &memFile{Reader: bytes.NewReader(b), info: memInfo{FileInfo: st, size: int64(len(b))}}, nil
}

// ReadDir keeps fs.Glob and fs.ReadDir working on the wrapped FS.
func (r rxFS) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(r.FS, name) }

// rewriteRx turns the @rx operators of SecLang text into ours.
func rewriteRx(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte(`"@rx `), []byte(`"@`+rxOperatorName+` `))
	return bytes.ReplaceAll(b, []byte(`"!@rx `), []byte(`"!@`+rxOperatorName+` `))
}

type memFile struct {
	*bytes.Reader
	info memInfo
}

func (m *memFile) Stat() (fs.FileInfo, error) { return m.info, nil }
func (m *memFile) Close() error               { return nil }

type memInfo struct {
	fs.FileInfo
	size int64
}

func (m memInfo) Size() int64        { return m.size }
func (m memInfo) ModTime() time.Time { return m.FileInfo.ModTime() }
