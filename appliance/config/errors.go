package config

import (
	"fmt"
	"strings"
)

// Error is one problem in a configuration, located in the file.
type Error struct {
	// File is the file name as given to Parse ("" for unnamed input).
	File string
	// Line and Column are 1-based; 0 when unknown (e.g. an empty file).
	Line, Column int
	// Path is the key path, e.g. "tenants[1].networks[0]" or
	// "listen.console"; "" for the whole document.
	Path string
	// Tenant is the id of the tenant the key belongs to, when it belongs
	// to one and the id is known.
	Tenant string
	// Msg says what is wrong and, for conflicts, with what.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.pos())
	if e.Path != "" {
		b.WriteString(e.Path)
		if e.Tenant != "" {
			fmt.Fprintf(&b, " (tenant %q)", e.Tenant)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// pos returns "file:line:col: " with the unknown parts left out.
func (e *Error) pos() string {
	file := e.File
	if file == "" {
		file = "<input>"
	}
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: ", file, e.Line, e.Column)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: ", file, e.Line)
	}
	return file + ": "
}

// Errors is every problem found in a configuration, in file order. Parse
// returns all of them at once.
type Errors []*Error

func (es Errors) Error() string {
	if len(es) == 1 {
		return "config: " + es[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "config: %d errors:", len(es))
	for _, e := range es {
		b.WriteString("\n\t")
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
