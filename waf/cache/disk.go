package cache

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// disk is the optional second tier: entries evicted from memory, one file
// each, with the index in memory. It is safe for concurrent use.
type disk struct {
	dir string
	max int64

	mu    sync.Mutex
	idx   map[string][]*diskRef // primary key -> variants
	lru   *list.List            // of *diskRef, most recent at front
	bytes int64                 // file bytes, bounded by max
	// The index lives in memory: idxBytes (its real size, see refSize;
	// written under mu, read without it by the memory tier, which counts
	// it in MaxBytes) is bounded by maxIdx, so that many small files
	// cannot grow it without limit.
	idxBytes atomic.Int64
	maxIdx   int64
}

type diskRef struct {
	primary   string
	varyNames []string
	varyVals  []string
	file      string
	size      int64 // file bytes
	mem       int64 // index bytes (refSize)
	el        *list.Element
}

// refSize is the memory one index entry holds: the ref, its list element,
// its file name, its key (kept alive by the ref once the memory copy is
// gone) and its map slot. The Vary arrays are counted as in entrySize.
func refSize(primary string, varyNames, varyVals []string) int64 {
	n := allocSize(int(unsafe.Sizeof(diskRef{}))) + allocSize(int(unsafe.Sizeof(list.Element{}))) +
		allocSize(variantFileLen) + allocSize(len(primary)) + indexSlotBytes
	n += allocSize(16*len(varyNames)) + allocSize(16*len(varyVals))
	for i := range varyVals {
		n += allocSize(len(varyVals[i])) + allocSize(len(varyNames[i]))
	}
	return n
}

// variantFileLen is the length of variantFile's names.
const variantFileLen = 32 + len(".ce")

// diskRecord is the file format (gob).
type diskRecord struct {
	Primary             string
	VaryNames, VaryVals []string
	Status              int
	Header              http.Header
	Body                []byte
	ReqTime, RespTime   time.Time
	Date                time.Time
	AgeValue, Lifetime  time.Duration
	CC                  Directives
	ETag, LastMod       string
}

func newDisk(dir string, max, maxIdx int64) (*disk, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: disk tier: %w", err)
	}
	old, err := filepath.Glob(filepath.Join(dir, "*.ce"))
	if err != nil {
		return nil, fmt.Errorf("cache: disk tier: %w", err)
	}
	for _, f := range old {
		_ = os.Remove(f)
	}
	return &disk{dir: dir, max: max, maxIdx: maxIdx, idx: map[string][]*diskRef{}, lru: list.New()}, nil
}

func variantFile(e *entry) string {
	h := sha256.New()
	h.Write([]byte(e.primary))
	for i := range e.varyNames {
		h.Write([]byte{0})
		h.Write([]byte(e.varyNames[i]))
		h.Write([]byte{0})
		h.Write([]byte(e.varyVals[i]))
	}
	return hex.EncodeToString(h.Sum(nil)[:16]) + ".ce"
}

// put writes e to disk, evicting the least recently used files beyond max.
func (d *disk) put(e *entry, log *slog.Logger) {
	var buf bytes.Buffer
	rec := diskRecord{Primary: e.primary, VaryNames: e.varyNames, VaryVals: e.varyVals, Status: e.status,
		Header: e.header, Body: e.body, ReqTime: e.reqTime, RespTime: e.respTime, Date: e.date,
		AgeValue: e.ageValue, Lifetime: e.lifetime, CC: e.cc, ETag: e.etag, LastMod: e.lastMod}
	if err := gob.NewEncoder(&buf).Encode(&rec); err != nil {
		log.Warn("cache: disk encode", "key", e.primary, "err", err)
		return
	}
	size := int64(buf.Len())
	if size > d.max {
		return
	}
	name := variantFile(e)
	if err := os.WriteFile(filepath.Join(d.dir, name), buf.Bytes(), 0o600); err != nil {
		log.Warn("cache: disk write", "key", e.primary, "err", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removeLocked(e.primary, func(r *diskRef) bool { return r.file == name }, false)
	ref := &diskRef{primary: e.primary, varyNames: e.varyNames, varyVals: e.varyVals, file: name, size: size}
	ref.mem = refSize(ref.primary, ref.varyNames, ref.varyVals)
	ref.el = d.lru.PushFront(ref)
	d.idx[e.primary] = append(d.idx[e.primary], ref)
	d.bytes += size
	d.idxBytes.Add(ref.mem)
	for (d.bytes > d.max || d.idxBytes.Load() > d.maxIdx) && d.lru.Len() > 0 {
		v := d.lru.Back().Value.(*diskRef)
		d.removeLocked(v.primary, func(r *diskRef) bool { return r == v }, true)
	}
}

// get reads the variant of key matching r, removing it from the disk tier
// (it moves back to memory), and reports whether any variant of key is on
// disk.
func (d *disk) get(key string, r *http.Request) (*entry, bool) {
	d.mu.Lock()
	refs := d.idx[key]
	var ref *diskRef
	for _, x := range refs {
		if (&entry{varyNames: x.varyNames, varyVals: x.varyVals}).matches(r) {
			ref = x
			break
		}
	}
	if ref == nil {
		d.mu.Unlock()
		return nil, len(refs) > 0
	}
	d.removeLocked(key, func(x *diskRef) bool { return x == ref }, false)
	d.mu.Unlock()
	path := filepath.Join(d.dir, ref.file)
	b, err := os.ReadFile(path)
	_ = os.Remove(path)
	if err != nil {
		return nil, true
	}
	var rec diskRecord
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&rec); err != nil || rec.Primary != key {
		return nil, true
	}
	e := &entry{primary: rec.Primary, varyNames: rec.VaryNames, varyVals: rec.VaryVals, status: rec.Status,
		header: rec.Header, body: rec.Body, reqTime: rec.ReqTime, respTime: rec.RespTime, date: rec.Date,
		ageValue: rec.AgeValue, lifetime: rec.Lifetime, cc: rec.CC, etag: rec.ETag, lastMod: rec.LastMod}
	if e.header == nil {
		e.header = http.Header{}
	}
	e.size = entrySize(e)
	return e, true
}

// removeLocked drops the refs of key selected by sel; with del the file
// is removed now (otherwise the caller handles it).
func (d *disk) removeLocked(key string, sel func(*diskRef) bool, del bool) int {
	refs := d.idx[key]
	kept := refs[:0]
	n := 0
	for _, r := range refs {
		if sel(r) {
			d.lru.Remove(r.el)
			d.bytes -= r.size
			d.idxBytes.Add(-r.mem)
			n++
			if del {
				_ = os.Remove(filepath.Join(d.dir, r.file))
			}
			continue
		}
		kept = append(kept, r)
	}
	if len(kept) == 0 {
		delete(d.idx, key)
	} else {
		d.idx[key] = kept
	}
	return n
}

// drop removes the disk copy of e's variant.
func (d *disk) drop(key string, e *entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.idx[key]; !ok {
		return
	}
	d.removeLocked(key, func(r *diskRef) bool { return sameVariant(&entry{varyNames: r.varyNames, varyVals: r.varyVals}, e) }, true)
}

func (d *disk) dropKey(key string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.removeLocked(key, func(*diskRef) bool { return true }, true)
}

func (d *disk) dropPrefix(p string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for k := range d.idx {
		if strings.HasPrefix(k, p) {
			n += d.removeLocked(k, func(*diskRef) bool { return true }, true)
		}
	}
	return n
}

func (d *disk) stats() (n int, bytes, idxBytes int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lru.Len(), d.bytes, d.idxBytes.Load()
}
