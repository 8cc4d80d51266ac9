// Package format holds the on-disk encodings of the event store: the binary
// event record, the write-ahead log frame, the compressed block header, the
// segment index and the sealed-segment footer. Every decoder here must
// reject arbitrary input with an error, never panic: the fuzz targets in
// this package hold it to that.
package format

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/jichitai/seccloud/detect"
)

// RecordVersion is the first byte of every encoded event record.
const RecordVersion = 1

// ErrCorrupt is wrapped by every decoding error caused by bad bytes.
var ErrCorrupt = errors.New("corrupt data")

func corrupt(what string) error { return fmt.Errorf("%s: %w", what, ErrCorrupt) }

// MinTime and MaxTime bound the event times a record can hold (the range
// of time.Time.UnixNano).
var (
	MinTime = time.Unix(0, math.MinInt64).UTC()
	MaxTime = time.Unix(0, math.MaxInt64).UTC()
)

// AppendRecord appends the binary record of e to dst. The time is written
// as UnixNano; the caller guarantees it lies within [MinTime, MaxTime].
//
// Layout: version byte, 8-byte little-endian UnixNano, then every field of
// detect.Event in declaration order (strings and byte strings as uvarint
// length + bytes, integers as (u)varints, addresses as uvarint length +
// netip binary form followed by the port as uvarint, lists as uvarint count
// + items).
func AppendRecord(dst []byte, e *detect.Event) []byte {
	dst = append(dst, RecordVersion)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(e.Time.UnixNano()))
	dst = appendStr(dst, e.ID)
	dst = appendStr(dst, e.Module)
	dst = appendStr(dst, e.Dataset)
	dst = appendStr(dst, e.Kind)
	dst = appendStr(dst, e.Category)
	dst = appendStr(dst, e.Type)
	dst = appendStr(dst, e.Action)
	dst = appendStr(dst, e.Outcome)
	dst = append(dst, byte(e.Severity))
	dst = binary.AppendVarint(dst, int64(e.Duration))
	dst = appendStr(dst, e.Tenant)
	dst = appendAddrPort(dst, e.Client)
	dst = appendStr(dst, e.Terminal)
	dst = appendAddrPort(dst, e.Dest)
	dst = appendStr(dst, e.DestDomain)
	dst = binary.AppendVarint(dst, e.BytesIn)
	dst = binary.AppendVarint(dst, e.BytesOut)
	dst = appendStr(dst, e.URL)
	dst = appendStr(dst, e.HTTP.Method)
	dst = binary.AppendVarint(dst, int64(e.HTTP.Status))
	dst = appendStr(dst, e.HTTP.UserAgent)
	dst = appendStr(dst, e.HTTP.Referrer)
	dst = appendStr(dst, e.DNS.QName)
	dst = appendStr(dst, e.DNS.QType)
	dst = appendStr(dst, e.DNS.RCode)
	dst = appendStrs(dst, e.DNS.Answers)
	dst = binary.AppendUvarint(dst, uint64(e.DNS.ID))
	dst = binary.AppendUvarint(dst, uint64(len(e.DNS.Resolved)))
	for _, a := range e.DNS.Resolved {
		dst = appendAddr(dst, a)
	}
	dst = appendStr(dst, e.Email.From)
	dst = appendStrs(dst, e.Email.To)
	dst = appendStr(dst, e.Email.Subject)
	dst = appendStr(dst, e.Email.MessageID)
	dst = appendStr(dst, e.Email.Direction)
	dst = appendStr(dst, e.File.Name)
	dst = binary.AppendVarint(dst, e.File.Size)
	dst = appendStr(dst, e.File.SHA256)
	dst = appendStr(dst, e.File.Mime)
	dst = append(dst, byte(e.Verdict.Action))
	dst = appendStr(dst, e.Verdict.Rule)
	dst = appendStr(dst, e.Verdict.RuleName)
	dst = appendStr(dst, e.Verdict.Reason)
	dst = binary.AppendVarint(dst, int64(e.Verdict.Score))
	dst = appendStr(dst, e.Message)
	dst = binary.AppendUvarint(dst, uint64(len(e.Labels)))
	for _, l := range e.Labels {
		dst = appendStr(dst, l.Key)
		dst = appendStr(dst, l.Value)
	}
	return dst
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendStrs(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendStr(dst, s)
	}
	return dst
}

func appendAddr(dst []byte, a netip.Addr) []byte {
	n := 0
	if a.IsValid() {
		n = 4
		if a.Is6() {
			n = 16 + len(a.Zone())
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	if n == 0 {
		return dst
	}
	dst, _ = a.AppendBinary(dst)
	return dst
}

func appendAddrPort(dst []byte, ap netip.AddrPort) []byte {
	dst = appendAddr(dst, ap.Addr())
	return binary.AppendUvarint(dst, uint64(ap.Port()))
}

// RecordTime returns the event time of an encoded record without decoding
// the rest.
func RecordTime(rec []byte) (int64, error) {
	if len(rec) < 9 || rec[0] != RecordVersion {
		return 0, corrupt("record header")
	}
	return int64(binary.LittleEndian.Uint64(rec[1:9])), nil
}

// DecodeRecord decodes a record written by AppendRecord into e, replacing
// its contents. Trailing bytes are an error. The time is returned in UTC.
func DecodeRecord(rec []byte, e *detect.Event) error {
	ns, err := RecordTime(rec)
	if err != nil {
		return err
	}
	d := decoder{b: rec[9:]}
	*e = detect.Event{Time: time.Unix(0, ns).UTC()}
	e.ID = d.str()
	e.Module = d.str()
	e.Dataset = d.str()
	e.Kind = d.str()
	e.Category = d.str()
	e.Type = d.str()
	e.Action = d.str()
	e.Outcome = d.str()
	e.Severity = detect.Severity(d.byte())
	e.Duration = time.Duration(d.varint())
	e.Tenant = d.str()
	e.Client = d.addrPort()
	e.Terminal = d.str()
	e.Dest = d.addrPort()
	e.DestDomain = d.str()
	e.BytesIn = d.varint()
	e.BytesOut = d.varint()
	e.URL = d.str()
	e.HTTP.Method = d.str()
	e.HTTP.Status = int(d.varint())
	e.HTTP.UserAgent = d.str()
	e.HTTP.Referrer = d.str()
	e.DNS.QName = d.str()
	e.DNS.QType = d.str()
	e.DNS.RCode = d.str()
	e.DNS.Answers = d.strs()
	id := d.uvarint()
	if id > math.MaxUint16 {
		d.fail()
	}
	e.DNS.ID = uint16(id)
	if n := d.count(); n > 0 {
		e.DNS.Resolved = make([]netip.Addr, n)
		for i := range e.DNS.Resolved {
			e.DNS.Resolved[i] = d.addr()
		}
	}
	e.Email.From = d.str()
	e.Email.To = d.strs()
	e.Email.Subject = d.str()
	e.Email.MessageID = d.str()
	e.Email.Direction = d.str()
	e.File.Name = d.str()
	e.File.Size = d.varint()
	e.File.SHA256 = d.str()
	e.File.Mime = d.str()
	e.Verdict.Action = detect.Action(d.byte())
	e.Verdict.Rule = d.str()
	e.Verdict.RuleName = d.str()
	e.Verdict.Reason = d.str()
	e.Verdict.Score = int(d.varint())
	e.Message = d.str()
	if n := d.count(); n > 0 {
		e.Labels = make([]detect.Label, n)
		for i := range e.Labels {
			e.Labels[i] = detect.Label{Key: d.str(), Value: d.str()}
		}
	}
	if d.bad {
		return corrupt("record")
	}
	if len(d.b) != 0 {
		return corrupt("record trailing bytes")
	}
	return nil
}

// decoder reads fields; the first failure sets bad and every later read
// returns zero values.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) fail() { d.bad = true; d.b = nil }

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	b := d.bytes()
	if len(b) == 0 {
		return ""
	}
	return string(b)
}

// count reads a list length; every item takes at least one byte, so a
// count above the bytes left is corrupt (and never allocates).
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) strs() []string {
	n := d.count()
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str()
	}
	return ss
}

func (d *decoder) addr() netip.Addr {
	b := d.bytes()
	if len(b) == 0 || d.bad {
		return netip.Addr{}
	}
	var a netip.Addr
	if len(b) != 4 && len(b) < 16 {
		d.fail()
		return a
	}
	if err := a.UnmarshalBinary(b); err != nil {
		d.fail()
	}
	return a
}

func (d *decoder) addrPort() netip.AddrPort {
	a := d.addr()
	p := d.uvarint()
	if p > math.MaxUint16 {
		d.fail()
	}
	return netip.AddrPortFrom(a, uint16(p))
}

// RecordKey returns the tenant and module of an encoded record, decoding
// only the fields before them.
func RecordKey(rec []byte) (tenant, module string, err error) {
	if _, err := RecordTime(rec); err != nil {
		return "", "", err
	}
	d := decoder{b: rec[9:]}
	d.bytes() // ID
	m := d.bytes()
	for range 6 { // Dataset, Kind, Category, Type, Action, Outcome
		d.bytes()
	}
	d.byte()
	d.varint()
	t := d.bytes()
	if d.bad {
		return "", "", corrupt("record")
	}
	return string(t), string(m), nil
}
