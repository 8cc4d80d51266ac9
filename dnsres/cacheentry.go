package dnsres

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync/atomic"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/dnsres/internal/wire"
)

// entry is one cached response. Its memory is two allocations: this
// 48-byte struct and one pointer-free byte block (b) the garbage collector
// does not scan:
//
//	b[0:4]      the entry's TTL in seconds (big endian)
//	b[4:6]      n, the number of TTL fields in the message
//	b[6]        the key's flag byte (DO, CD), see wire.Query.Key
//	b[7]        zero
//	b[8:8+2n]   the offsets of the TTL fields in the message
//	b[8+2n:]    the packed response: ID 0, the lower-cased question, no
//	            OPT record, every TTL capped at the entry's TTL
//
// The cache's map is keyed by a 64-bit hash of the question's key; the
// question bytes of the stored message (plus b[6]) are the key itself, so
// a lookup verifies it without storing the key a second time.
//
// b and stored never change once the entry is published; logd is set once
// (on the first cache hit), state holds the prefetch bit and the failure
// recheck time.
type entry struct {
	b      []byte
	stored int64 // unix nanoseconds when the response was received
	// logd is the query-log form of the answer (name, answers,
	// addresses), built on the first hit so that later hits allocate
	// nothing; entries never hit do not carry it.
	logd atomic.Pointer[logData]
	// state: bit 0 is "a prefetch was started"; the other bits are the
	// unix nanoseconds (even) before which a failed refresh is not retried
	// (RFC 8767's failure recheck timer).
	state atomic.Uint64
}

// logData is what the query log needs of an answer. It is never
// modified once built.
type logData struct {
	name     string // the question name, presentation form, lower case
	answers  []string
	resolved []netip.Addr
}

// newLogData returns the log data of an answer section for name.
func newLogData(name string, answer []dns.RR) *logData {
	ld := &logData{name: name}
	ld.answers, ld.resolved = answerData(answer)
	return ld
}

// size is the heap ld holds, in bytes (accounted in the cache shard when
// ld is attached to an entry).
func (ld *logData) size() int64 {
	s := allocSize(logDataStructSize) + allocSize(len(ld.name)) + allocSize(16*cap(ld.answers)) + allocSize(24*cap(ld.resolved))
	for _, a := range ld.answers {
		s += allocSize(len(a))
	}
	return int64(s)
}

const (
	entryHeader = 8
	// entryStructSize is the size of an entry struct (48 bytes on 64-bit
	// systems, a size class of its own; TestEntrySizes).
	entryStructSize = int(unsafe.Sizeof(entry{}))
	// mapSlotBytes is the share of a Go map[uint64]*entry per entry:
	// 16-byte slots plus a control byte, in tables filled 7/16 to 7/8
	// between growths (17 to 34 bytes; 22 to 24 measured with 100,000
	// and 200,000 entries).
	mapSlotBytes = 26
	// logDataStructSize is the size of a logData struct (64 bytes on
	// 64-bit systems).
	logDataStructSize = int(unsafe.Sizeof(logData{}))
)

var errEntryTooBig = errors.New("dnsres: cache: response too big to cache")

// buildEntry makes the byte block of an entry from the packed response
// msg (ID 0, no OPT), its TTL and the key's flag byte.
func buildEntry(msg []byte, ttl uint32, flag byte) ([]byte, error) {
	if len(msg) > maxStoredMessage {
		return nil, errEntryTooBig
	}
	n := 0
	if err := wire.Records(msg, func(wire.RR) { n++ }); err != nil {
		return nil, err
	}
	if n > 0xFFFF {
		return nil, errEntryTooBig
	}
	b := make([]byte, entryHeader+2*n+len(msg))
	binary.BigEndian.PutUint32(b, ttl)
	binary.BigEndian.PutUint16(b[4:], uint16(n))
	b[6] = flag
	i := 0
	_ = wire.Records(msg, func(rr wire.RR) {
		binary.BigEndian.PutUint16(b[entryHeader+2*i:], uint16(rr.TTLOff))
		i++
	})
	copy(b[entryHeader+2*n:], msg)
	return b, nil
}

// nTTL is the number of TTL fields.
func (e *entry) nTTL() int { return int(binary.BigEndian.Uint16(e.b[4:])) }

// ttl is the entry's TTL in seconds.
func (e *entry) ttl() uint32 { return binary.BigEndian.Uint32(e.b) }

// msg is the stored packed response.
func (e *entry) msg() []byte { return e.b[entryHeader+2*e.nTTL():] }

// ttlOff returns the offset of the i-th TTL field in msg.
func (e *entry) ttlOff(i int) int { return int(binary.BigEndian.Uint16(e.b[entryHeader+2*i:])) }

// expires is when the entry expires, in unix nanoseconds.
func (e *entry) expires() int64 { return e.stored + int64(e.ttl())*1e9 }

// matches reports whether the entry answers the question of key (wire
// name, type, class, flag byte): the stored question is the same bytes.
func (e *entry) matches(key []byte) bool {
	k := len(key) - 1
	m := e.msg()
	return k > 0 && len(m) >= 12+k && e.b[6] == key[k] && string(m[12:12+k]) == string(key[:k])
}

// size is the heap the entry holds, in bytes: its two allocations, its
// map slot and, once built, its query-log data.
func (e *entry) size() int64 {
	s := int64(allocSize(entryStructSize) + allocSize(len(e.b)) + mapSlotBytes)
	if ld := e.logd.Load(); ld != nil {
		s += ld.size()
	}
	return s
}

// startPrefetch marks the entry as being prefetched; false if it already
// was.
func (e *entry) startPrefetch() bool {
	for {
		s := e.state.Load()
		if s&1 != 0 {
			return false
		}
		if e.state.CompareAndSwap(s, s|1) {
			return true
		}
	}
}

// recheck returns the unix nanoseconds before which a failed refresh is
// not retried.
func (e *entry) recheck() int64 { return int64(e.state.Load() &^ 1) }

// setRecheck sets the failure recheck time.
func (e *entry) setRecheck(ns int64) {
	for {
		s := e.state.Load()
		if e.state.CompareAndSwap(s, uint64(ns)&^1|s&1) {
			return
		}
	}
}

// buildLog returns the query-log form of the entry's answer section,
// read back from the stored message.
func (e *entry) buildLog() *logData {
	m := e.msg()
	end, err := questionEnd(m)
	if err != nil {
		return new(logData)
	}
	return newLogData(wire.NameString(m[12:end-4]), answerRRs(m, end))
}

// questionEnd returns the offset just past the single question of the
// packed message m (which must have exactly one, uncompressed).
func questionEnd(m []byte) (int, error) {
	if len(m) < 12 || binary.BigEndian.Uint16(m[4:]) != 1 {
		return 0, wire.ErrFormat
	}
	off := 12
	for {
		if off >= len(m) {
			return 0, wire.ErrFormat
		}
		l := int(m[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 {
			return 0, wire.ErrFormat
		}
		off += l
	}
	if off+4 > len(m) {
		return 0, wire.ErrFormat
	}
	return off + 4, nil
}

// answerRRs unpacks the answer section of m, which starts at off. A
// record that does not unpack ends the list.
func answerRRs(m []byte, off int) []dns.RR {
	an := int(binary.BigEndian.Uint16(m[6:]))
	rrs := make([]dns.RR, 0, min(an, 16))
	for i := 0; i < an; i++ {
		rr, next, err := dns.UnpackRR(m, off)
		if err != nil || rr == nil {
			break
		}
		rrs = append(rrs, rr)
		off = next
	}
	return rrs
}

// allocSize is the size of the Go heap allocation holding n bytes: the
// runtime's size classes up to 32 KiB, whole pages above.
func allocSize(n int) int {
	if n <= 0 {
		return 0
	}
	if n > sizeClasses[len(sizeClasses)-1] {
		return (n + 8191) &^ 8191
	}
	lo, hi := 0, len(sizeClasses)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if sizeClasses[mid] < n {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return sizeClasses[lo]
}

// sizeClasses are the Go runtime's small object sizes
// (internal/runtime/gc/sizeclasses.go).
var sizeClasses = [...]int{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048,
	2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880,
	12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}
