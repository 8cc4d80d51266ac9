package tenant

import (
	"fmt"
	"strings"
)

// FieldError is one problem with one field of one tenant.
type FieldError struct {
	// Index is the tenant's position in the list given to NewSnapshot.
	Index int
	// Tenant is the tenant's id (may be empty when the id itself is bad).
	Tenant string
	// Field is the field path within the tenant, e.g. "networks[1]" or
	// "sites[0].host".
	Field string
	// Value is the offending value as written.
	Value string
	// Msg says what is wrong.
	Msg string
	// OtherTenant and OtherField name the other claimant for conflicts
	// (overlapping networks, a domain claimed twice); empty otherwise.
	OtherTenant string
	OtherIndex  int
	OtherField  string
}

// Path returns the field path from the tenant list root, e.g.
// "tenants[2].networks[1]".
func (e *FieldError) Path() string {
	return fmt.Sprintf("tenants[%d].%s", e.Index, e.Field)
}

// OtherPath returns the other claimant's field path, or "" when there is
// none.
func (e *FieldError) OtherPath() string {
	if e.OtherField == "" {
		return ""
	}
	return fmt.Sprintf("tenants[%d].%s", e.OtherIndex, e.OtherField)
}

func (e *FieldError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tenant %q %s", e.Tenant, e.Field)
	if e.Value != "" {
		fmt.Fprintf(&b, " %q", e.Value)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.OtherField != "" {
		fmt.Fprintf(&b, " (tenant %q %s)", e.OtherTenant, e.OtherField)
	}
	return b.String()
}

// Errors is every problem found in a tenant list. NewSnapshot returns all of
// them at once, never just the first.
type Errors []*FieldError

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return "tenant: invalid configuration: " + strings.Join(parts, "; ")
}

// Unwrap lets errors.As find each *FieldError.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
