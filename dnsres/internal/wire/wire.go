// Package wire reads and patches DNS messages in wire format without
// unpacking them into dns.Msg values: the question of a query (with its
// EDNS0 OPT record), and the TTL fields of a packed response. It is the
// allocation-free part of the resolver's hot path.
package wire

import (
	"encoding/binary"
	"errors"
)

// Errors of ParseQuery. ErrShort and ErrNotQuery mean "drop the packet";
// ErrFormat means "answer FORMERR"; ErrBadVersion means "answer BADVERS".
var (
	ErrShort      = errors.New("wire: message shorter than a header")
	ErrNotQuery   = errors.New("wire: message is a response")
	ErrFormat     = errors.New("wire: malformed query")
	ErrBadVersion = errors.New("wire: unsupported EDNS version")
)

// Header flag bits (of the 16-bit flags word).
const (
	FlagQR = 1 << 15
	FlagAA = 1 << 10
	FlagTC = 1 << 9
	FlagRD = 1 << 8
	FlagRA = 1 << 7
	FlagAD = 1 << 5
	FlagCD = 1 << 4
)

// TypeOPT is the EDNS0 pseudo record type.
const TypeOPT = 41

// MaxKey is the largest key ParseQuery writes: a 255-byte name plus type,
// class and one flag byte.
const MaxKey = 255 + 5

// Query is the parsed question of a query. Name and Key point into the key
// buffer handed to ParseQuery.
type Query struct {
	ID     uint16
	Flags  uint16 // the header flags word as received
	Opcode int
	// Name is the question name in wire format, lower-cased (ASCII).
	Name []byte
	// Type and Class of the question.
	Type, Class uint16
	// QEnd is the offset just past the question in the raw message.
	QEnd int
	// EDNS is true when the query carried an OPT record; UDPSize is its
	// advertised payload size (512 without EDNS), DO its DNSSEC OK bit.
	EDNS    bool
	UDPSize uint16
	DO      bool
	// Key is Name + type + class + a flag byte (bit 0: DO, bit 1: CD), the
	// cache key of the question.
	Key []byte
}

// ParseQuery parses the header, the single question and the additional
// section of a query in b, writing the lower-cased name and cache key into
// key (which must have room for MaxKey bytes). It never allocates and never
// reads outside b. The header fields (ID, Flags, Opcode) are set whenever
// the header is complete, even when an error is returned, so that the
// caller can answer FORMERR.
func ParseQuery(b []byte, q *Query, key []byte) error {
	if len(b) < 12 {
		return ErrShort
	}
	q.ID = binary.BigEndian.Uint16(b)
	q.Flags = binary.BigEndian.Uint16(b[2:])
	q.Opcode = int(q.Flags>>11) & 0xF
	q.EDNS, q.DO, q.UDPSize = false, false, 512
	q.Name, q.Key, q.QEnd = nil, nil, 0
	if q.Flags&FlagQR != 0 {
		return ErrNotQuery
	}
	qd := binary.BigEndian.Uint16(b[4:])
	an := binary.BigEndian.Uint16(b[6:])
	ns := binary.BigEndian.Uint16(b[8:])
	ar := binary.BigEndian.Uint16(b[10:])
	if qd != 1 || an != 0 || ns > 1 { // ns: allow one (e.g. NOTIFY-style SOA); skipped below
		return ErrFormat
	}
	off := 12
	n := 0
	for {
		if off >= len(b) {
			return ErrFormat
		}
		l := int(b[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 { // compression pointers are not allowed in the question
			return ErrFormat
		}
		if off+l > len(b) || n+1+l+1 > 255 {
			return ErrFormat
		}
		key[n] = byte(l)
		n++
		for _, c := range b[off : off+l] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			key[n] = c
			n++
		}
		off += l
	}
	key[n] = 0
	n++
	if off+4 > len(b) {
		return ErrFormat
	}
	q.Name = key[:n]
	q.Type = binary.BigEndian.Uint16(b[off:])
	q.Class = binary.BigEndian.Uint16(b[off+2:])
	off += 4
	q.QEnd = off
	binary.BigEndian.PutUint16(key[n:], q.Type)
	binary.BigEndian.PutUint16(key[n+2:], q.Class)
	// Authority (at most one record) and additional: find the OPT.
	var version uint8
	for i := 0; i < int(ns)+int(ar); i++ {
		var err error
		start := off
		if off, err = skipName(b, off); err != nil {
			return err
		}
		if off+10 > len(b) {
			return ErrFormat
		}
		root := off == start+1 && b[start] == 0
		typ := binary.BigEndian.Uint16(b[off:])
		class := binary.BigEndian.Uint16(b[off+2:])
		ttl := binary.BigEndian.Uint32(b[off+4:])
		rdlen := int(binary.BigEndian.Uint16(b[off+8:]))
		rd := off + 10
		off = rd + rdlen
		if off > len(b) {
			return ErrFormat
		}
		if typ != TypeOPT {
			continue
		}
		if q.EDNS || i < int(ns) || !root { // two OPTs, OPT outside additional, or OPT not at the root
			return ErrFormat
		}
		q.EDNS = true
		q.UDPSize = class
		if q.UDPSize < 512 {
			q.UDPSize = 512
		}
		version = uint8(ttl >> 16)
		q.DO = ttl&(1<<15) != 0
		// Options must tile the RDATA exactly.
		for p := rd; p < off; {
			if p+4 > off {
				return ErrFormat
			}
			p += 4 + int(binary.BigEndian.Uint16(b[p+2:]))
			if p > off {
				return ErrFormat
			}
		}
	}
	var flag byte
	if q.DO {
		flag |= 1
	}
	if q.Flags&FlagCD != 0 {
		flag |= 2
	}
	key[n+4] = flag
	q.Key = key[:n+5]
	if version != 0 {
		return ErrBadVersion
	}
	return nil
}

// skipName returns the offset just past the (possibly compressed) name at
// off.
func skipName(b []byte, off int) (int, error) {
	for n := 0; n < 128; n++ {
		if off >= len(b) {
			return 0, ErrFormat
		}
		l := int(b[off])
		switch {
		case l == 0:
			return off + 1, nil
		case l&0xC0 == 0xC0:
			if off+2 > len(b) {
				return 0, ErrFormat
			}
			return off + 2, nil
		case l > 63:
			return 0, ErrFormat
		}
		off += 1 + l
	}
	return 0, ErrFormat
}

// CheckName validates the (possibly compressed) name at off: labels of at
// most 63 bytes inside b, compression pointers pointing strictly
// backwards, at most 255 bytes in all. It returns the offset just past the
// name as written at off.
func CheckName(b []byte, off int) (int, error) {
	end := -1
	total := 0
	for hops := 0; hops < 64; {
		if off >= len(b) {
			return 0, ErrFormat
		}
		l := int(b[off])
		switch {
		case l == 0:
			if end < 0 {
				end = off + 1
			}
			return end, nil
		case l&0xC0 == 0xC0:
			if off+2 > len(b) {
				return 0, ErrFormat
			}
			ptr := int(binary.BigEndian.Uint16(b[off:]) & 0x3FFF)
			if ptr >= off {
				return 0, ErrFormat
			}
			if end < 0 {
				end = off + 2
			}
			off = ptr
			hops++
			continue
		case l > 63:
			return 0, ErrFormat
		}
		total += l + 1
		if total > 255 {
			return 0, ErrFormat
		}
		off += 1 + l
	}
	return 0, ErrFormat
}

// RR locates one resource record of a packed message.
type RR struct {
	Type uint16
	// TTLOff is the offset of the 32-bit TTL field.
	TTLOff int
	// Section is 1 answer, 2 authority, 3 additional.
	Section int
}

// Records walks the answer, authority and additional sections of the
// packed message b and calls fn for each record. It returns ErrFormat if
// the message does not parse.
func Records(b []byte, fn func(RR)) error {
	if len(b) < 12 {
		return ErrShort
	}
	qd := int(binary.BigEndian.Uint16(b[4:]))
	counts := [3]int{int(binary.BigEndian.Uint16(b[6:])), int(binary.BigEndian.Uint16(b[8:])), int(binary.BigEndian.Uint16(b[10:]))}
	off := 12
	var err error
	for i := 0; i < qd; i++ {
		if off, err = skipName(b, off); err != nil {
			return err
		}
		off += 4
	}
	for s, c := range counts {
		for i := 0; i < c; i++ {
			if off, err = CheckName(b, off); err != nil {
				return err
			}
			if off+10 > len(b) {
				return ErrFormat
			}
			fn(RR{Type: binary.BigEndian.Uint16(b[off:]), TTLOff: off + 4, Section: s + 1})
			off += 10 + int(binary.BigEndian.Uint16(b[off+8:]))
			if off > len(b) {
				return ErrFormat
			}
		}
	}
	return nil
}

// NameString returns the presentation form of the wire-format name n (as
// returned in Query.Name), with a trailing dot; special characters are
// escaped as in zone files.
func NameString(n []byte) string {
	if len(n) <= 1 {
		return "."
	}
	buf := make([]byte, 0, len(n)+4)
	for i := 0; i < len(n) && n[i] != 0; {
		l := int(n[i])
		i++
		for _, c := range n[i : i+l] {
			switch {
			case c == '.' || c == ' ' || c == '\'' || c == '@' || c == ';' || c == '(' || c == ')' || c == '"' || c == '\\':
				buf = append(buf, '\\', c)
			case c < ' ' || c > '~':
				buf = append(buf, '\\', '0'+c/100, '0'+c/10%10, '0'+c%10)
			default:
				buf = append(buf, c)
			}
		}
		buf = append(buf, '.')
		i += l
	}
	return string(buf)
}

// Header writes a bare response header answering q with rcode into b[:12]
// and returns it: no question, for answers to queries that did not parse.
func Header(b []byte, id, flags uint16, rcode int) []byte {
	b = b[:12]
	binary.BigEndian.PutUint16(b, id)
	f := FlagQR | flags&(0xF<<11|FlagRD|FlagCD) | FlagRA | uint16(rcode&0xF)
	binary.BigEndian.PutUint16(b[2:], f)
	clear(b[4:12])
	return b
}
