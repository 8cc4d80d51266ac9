// Package lpm maps IP addresses to the owner of the most specific prefix
// holding them. A Table is a sorted list of disjoint address ranges built
// once (nested prefixes resolved at build time) and searched by binary
// search: O(log n), no allocation, whatever the prefix lengths. IPv4 has its
// own 32-bit table; IPv4-mapped IPv6 addresses are looked up as IPv4.
//
// It is shared by tenant (which refuses conflicts between owners) and
// detect/intel (which allows them).
package lpm

import (
	"cmp"
	"net/netip"
	"slices"
)

// Entry is one prefix and its owner.
type Entry struct {
	Prefix netip.Prefix
	// Owner is what Lookup returns for addresses whose most specific
	// prefix this is; must be >= 0.
	Owner int32
	// Tag is the caller's reference to the prefix (e.g. its index in a
	// list), reported back in conflicts.
	Tag int32
}

// Conflict is a prefix nested in (or equal to) a prefix of another owner.
type Conflict struct{ Outer, Inner Entry }

// Build builds the table from entries. Prefixes must be valid and masked
// (Build masks them); zones are ignored. It reports every prefix nested in
// or equal to a prefix of a different owner; the table is built all the
// same, the most specific prefix winning (for equal prefixes, the later
// entry).
func Build(entries []Entry) (*Table, []Conflict) {
	// The families are kept apart: an IPv6 prefix never covers an IPv4
	// address, as with netip.Prefix.Contains.
	var v4, v6 []lpmEntry
	for _, e := range entries {
		p := e.Prefix.Masked()
		if !p.IsValid() {
			continue
		}
		bits := p.Bits()
		a := p.Addr().WithZone("")
		if a.Is4() {
			bits += 96
		}
		st := addrKey(a)
		le := lpmEntry{start: st, end: lastOf(st, bits), bits: bits, owner: e.Owner, ent: e}
		if a.Is4() {
			v4 = append(v4, le)
		} else {
			v6 = append(v6, le)
		}
	}
	t4, cs4 := buildLPM(v4)
	t, cs := buildLPM(v6)
	t.v4starts, t.v4owners = t4.v4starts, t4.v4owners
	var out []Conflict
	for _, c := range append(cs4, cs...) {
		out = append(out, Conflict{Outer: c.outer.ent, Inner: c.inner.ent})
	}
	return &t, out
}

// Lookup returns the owner of the most specific prefix holding a, or -1.
// It does not allocate and is safe for concurrent use.
func (t *Table) Lookup(a netip.Addr) int32 {
	if !a.IsValid() {
		return -1
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return t.lookup4(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
	}
	return t.lookup(addrKey(a))
}

// Len returns the number of disjoint ranges in the table.
func (t *Table) Len() int { return len(t.starts) }

// u128 is an address as a 128-bit number; IPv4 addresses are mapped into
// ::ffff:0:0/96 so one table serves both families.
type u128 struct{ hi, lo uint64 }

func addrKey(a netip.Addr) u128 {
	b := a.As16()
	return u128{
		hi: uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
			uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7]),
		lo: uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 |
			uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15]),
	}
}

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

func (a u128) inc() (u128, bool) {
	lo := a.lo + 1
	hi := a.hi
	if lo == 0 {
		hi++
		if hi == 0 {
			return u128{}, false // wrapped past the last address
		}
	}
	return u128{hi, lo}, true
}

// lastOf returns the last address of a prefix of bits (of 128) starting at s.
func lastOf(s u128, bits int) u128 {
	switch {
	case bits <= 0:
		return u128{^uint64(0), ^uint64(0)}
	case bits < 64:
		return u128{s.hi | (^uint64(0) >> bits), ^uint64(0)}
	case bits == 64:
		return u128{s.hi, ^uint64(0)}
	case bits < 128:
		return u128{s.hi, s.lo | (^uint64(0) >> (bits - 64))}
	}
	return s
}

// lpmEntry is one prefix to place in the table.
type lpmEntry struct {
	start, end u128
	bits       int // of 128
	owner      int32
	ent        Entry
}

// Table maps an address to the owner of its most specific prefix. It is
// a sorted list of disjoint segments; lookup is a binary search, so it
// allocates nothing and takes O(log n) whatever the prefix lengths.
type Table struct {
	starts []u128
	owners []int32 // -1: no owner
	// v4 is the same map restricted to ::ffff:0:0/96, with 32-bit keys:
	// a quarter of the memory to search for the common case.
	v4starts []uint32
	v4owners []int32
}

// buildV4 derives the IPv4 view of the table.
func (t *Table) buildV4() {
	first := u128{0, 0xffff_0000_0000}
	last := u128{0, 0xffff_ffff_ffff}
	t.v4starts = append(t.v4starts[:0], 0)
	t.v4owners = append(t.v4owners[:0], t.lookup(first))
	for i, s := range t.starts {
		if !first.less(s) || last.less(s) {
			continue
		}
		if t.owners[i] == t.v4owners[len(t.v4owners)-1] {
			continue
		}
		t.v4starts = append(t.v4starts, uint32(s.lo))
		t.v4owners = append(t.v4owners, t.owners[i])
	}
}

// lookup4 returns the owner of the IPv4 address a, or -1.
func (t *Table) lookup4(a uint32) int32 {
	lo, hi := 0, len(t.v4starts)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.v4starts[m] <= a {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return -1
	}
	return t.v4owners[lo-1]
}

// conflict is a nested pair of prefixes with different owners.
type conflict struct{ outer, inner lpmEntry }

// buildLPM builds the table and reports prefixes nested in (or equal to)
// another owner's.
func buildLPM(es []lpmEntry) (Table, []conflict) {
	slices.SortStableFunc(es, func(a, b lpmEntry) int {
		if c := a.start.cmp(b.start); c != 0 {
			return c
		}
		return cmp.Compare(a.bits, b.bits)
	})
	var t Table
	var conflicts []conflict
	emit := func(at u128, owner int32) {
		n := len(t.starts)
		if n > 0 && t.starts[n-1] == at {
			t.owners[n-1] = owner
			if n > 1 && t.owners[n-2] == owner {
				t.starts, t.owners = t.starts[:n-1], t.owners[:n-1]
			}
			return
		}
		if n > 0 && t.owners[n-1] == owner {
			return
		}
		if n == 0 && owner == -1 {
			return
		}
		t.starts = append(t.starts, at)
		t.owners = append(t.owners, owner)
	}
	var stack []lpmEntry
	pop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		next := int32(-1)
		if len(stack) > 0 {
			next = stack[len(stack)-1].owner
		}
		if after, ok := top.end.inc(); ok {
			emit(after, next)
		}
	}
	for _, e := range es {
		for len(stack) > 0 && stack[len(stack)-1].end.less(e.start) {
			pop()
		}
		if len(stack) > 0 {
			if top := stack[len(stack)-1]; top.owner != e.owner {
				conflicts = append(conflicts, conflict{outer: top, inner: e})
			}
		}
		stack = append(stack, e)
		emit(e.start, e.owner)
	}
	for len(stack) > 0 {
		pop()
	}
	t.buildV4()
	return t, conflicts
}

// lookup returns the owner of a, or -1.
func (t *Table) lookup(a u128) int32 {
	// Find the last start <= a.
	lo, hi := 0, len(t.starts)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		s := t.starts[m]
		if s.hi < a.hi || (s.hi == a.hi && s.lo <= a.lo) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return -1
	}
	return t.owners[lo-1]
}
