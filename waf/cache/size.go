package cache

import (
	"net/http"
	"sort"
	"unsafe"
)

// The memory bound (Config.MaxBytes) counts what the Go runtime really
// allocates for a stored response, not just the bytes of its body: every
// allocation is rounded up to the runtime's size class, and the structures
// around the body (the entry, its header map, the index slot) are counted
// with their actual layout. TestMemoryBoundRealBytes checks the model
// against runtime.MemStats.

// sizeClasses are the Go runtime's small-object size classes
// (runtime/sizeclasses.go); larger objects take whole 8 KiB pages.
var sizeClasses = [...]int{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792,
	2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240,
	10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}

// allocSize is the heap memory an allocation of n bytes takes.
func allocSize(n int) int64 {
	if n <= 0 {
		return 0
	}
	if n > sizeClasses[len(sizeClasses)-1] {
		return int64((n + 8191) &^ 8191)
	}
	return int64(sizeClasses[sort.SearchInts(sizeClasses[:], n)])
}

// mapSize approximates the memory of a Go map of n entries whose key and
// value take slot bytes together (Go 1.24+ swiss tables: groups of 8
// slots plus 8 control bytes, at most 7/8 full, capacity a power of two).
func mapSize(n int, slot int) int64 {
	const header = 48
	group := 8 + 8*slot
	if n <= 8 {
		return header + allocSize(group)
	}
	capacity := 8
	for capacity*7/8 < n {
		capacity *= 2
	}
	return header + 64 + allocSize(capacity/8*group)
}

const (
	// indexSlotBytes is what one primary key costs in Cache.m beyond its
	// string: the map slot (string + slice header, 40 bytes) at the
	// average load of a growing swiss table, and the []*entry array.
	indexSlotBytes = 64 + 8
	entryBytes     = int64(unsafe.Sizeof(entry{}))
	headerSlot     = int(unsafe.Sizeof("") + unsafe.Sizeof([]string(nil)))
)

// entrySize is the memory an entry holds: the entry itself, its key and
// index slot, its header (map, value arrays and strings), its Vary values
// and its body (by capacity).
func entrySize(e *entry) int64 {
	n := allocSize(int(entryBytes)) + allocSize(len(e.primary)) + indexSlotBytes
	n += headerSize(e.header)
	n += allocSize(cap(e.body))
	n += allocSize(16*len(e.varyNames)) + allocSize(16*len(e.varyVals))
	for i := range e.varyVals {
		n += allocSize(len(e.varyVals[i])) + allocSize(len(e.varyNames[i]))
	}
	return n
}

// headerSize is the memory of h as copyHeader lays it out: the map, one
// array for all the values, the names and the values.
func headerSize(h http.Header) int64 {
	n := mapSize(len(h), headerSlot)
	values := 0
	for k, vs := range h {
		n += allocSize(len(k)) // the common names are shared; counted anyway
		values += len(vs)
		for _, v := range vs {
			n += allocSize(len(v))
		}
	}
	return n + allocSize(16*values)
}

// copyHeader returns a copy of h without the fields named in skip, with
// all values in one array (like http.Header.Clone, but without keeping
// the skipped values alive in that array).
func copyHeader(h http.Header, skip ...string) http.Header {
	nv, nk := 0, 0
	for k, vs := range h {
		if !contains(skip, k) {
			nv += len(vs)
			nk++
		}
	}
	sv := make([]string, nv)
	out := make(http.Header, nk)
	for k, vs := range h {
		if vs == nil || contains(skip, k) {
			if vs == nil && !contains(skip, k) {
				out[k] = nil
			}
			continue
		}
		n := copy(sv, vs)
		out[k] = sv[:n:n]
		sv = sv[n:]
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
