package store

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store/internal/format"
)

// Filter selects events for Query. The zero Filter selects everything.
type Filter struct {
	// Tenant selects one tenant's events (organization.id); empty selects
	// all tenants, including events without a tenant.
	Tenant string
	// Module selects one module's events ("proxy", "dns", ...); empty
	// selects all.
	Module string
	// Since selects events at or after it; zero means no lower bound.
	Since time.Time
	// Until selects events before it; zero means no upper bound.
	Until time.Time
}

func (f *Filter) bounds() (lo, hi int64) {
	lo, hi = math.MinInt64, math.MaxInt64
	if !f.Since.IsZero() {
		lo = clampNano(f.Since)
	}
	if !f.Until.IsZero() {
		hi = clampNano(f.Until)
	}
	return lo, hi
}

func clampNano(t time.Time) int64 {
	switch {
	case t.Before(format.MinTime):
		return math.MinInt64
	case t.After(format.MaxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func (f *Filter) matches(tenant, module string, minT, maxT, lo, hi int64) bool {
	return (f.Tenant == "" || f.Tenant == tenant) && (f.Module == "" || f.Module == module) && maxT >= lo && minT < hi
}

// Query calls fn for every stored event that f selects, including events
// not yet compressed into a block, in time order: days in order and, within
// a day, by Time (events with equal times in an unspecified but stable
// order). Only the blocks whose index entry (tenant, module, time range)
// can match are read. Events come back with Time in UTC.
//
// Query streams: it holds at most the blocks whose time ranges overlap in
// memory. An error from fn stops the query and is returned as is; Query
// also stops when ctx is done. Events written while a query runs may or
// may not be seen.
func (s *Store) Query(ctx context.Context, f Filter, fn func(detect.Event) error) error {
	lo, hi := f.bounds()
	if lo >= hi {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	var days []uint32
	for d := range s.sealed {
		days = append(days, d)
	}
	for d := range s.parts {
		if _, ok := s.sealed[d]; !ok {
			days = append(days, d)
		}
	}
	s.mu.Unlock()
	slices.Sort(days)
	for _, d := range days {
		start := dayStart(d).UnixNano()
		if start >= hi || start+dayNanos <= lo {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		q, err := s.daySources(d, &f, lo, hi)
		if err != nil {
			return err
		}
		err = q.run(ctx, s, &f, lo, hi, fn)
		q.close()
		if err != nil {
			return err
		}
	}
	return nil
}

// dayQuery is what one day's query reads: blocks in files and records
// still in memory.
type dayQuery struct {
	files  []*os.File
	blocks []blockRef
	mem    [][]memRec
}

type blockRef struct {
	f    *os.File
	name string
	bi   format.BlockInfo
}

type memRec struct {
	t   int64
	rec []byte
}

func (q *dayQuery) close() {
	for _, f := range q.files {
		f.Close()
	}
}

// daySources snapshots a day's parts under the lock: it opens the files
// (so a concurrent seal or expiry cannot pull them away) and copies the
// matching buffered records.
func (s *Store) daySources(day uint32, f *Filter, lo, hi int64) (*dayQuery, error) {
	q := &dayQuery{}
	s.mu.Lock()
	var sealed []*os.File
	var sealedNames []string
	for _, name := range s.sealed[day] {
		fh, err := os.Open(filepath.Join(s.cfg.Dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			s.mu.Unlock()
			q.close()
			return nil, fmt.Errorf("store: query: %w", err)
		}
		q.files = append(q.files, fh)
		sealed = append(sealed, fh)
		sealedNames = append(sealedNames, name)
	}
	if p := s.parts[day]; p != nil {
		var fh *os.File
		for _, b := range p.blocks {
			if !f.matches(b.Tenant, b.Module, b.MinT, b.MaxT, lo, hi) {
				continue
			}
			if fh == nil {
				var err error
				fh, err = os.Open(filepath.Join(s.cfg.Dir, p.name))
				if errors.Is(err, os.ErrNotExist) && s.cfg.ReadOnly {
					// The writer sealed it since this snapshot was
					// taken; the blocks kept their offsets.
					fh, err = os.Open(filepath.Join(s.cfg.Dir, partName(p.day, p.num, extSealed)))
				}
				if err != nil {
					s.mu.Unlock()
					q.close()
					return nil, fmt.Errorf("store: query: %w", err)
				}
				q.files = append(q.files, fh)
			}
			q.blocks = append(q.blocks, blockRef{f: fh, name: p.name, bi: b})
		}
		for k, st := range p.streams {
			if len(st.recs) == 0 || !f.matches(k.tenant, k.module, math.MinInt64, math.MaxInt64, lo, hi) {
				continue
			}
			var m []memRec
			var buf []byte
			for _, r := range st.recs {
				if r.t >= lo && r.t < hi {
					m = append(m, memRec{t: r.t, rec: st.buf[r.off : r.off+r.n]})
					buf = append(buf, st.buf[r.off:r.off+r.n]...)
				}
			}
			// Repoint the copies at buf: the stream buffer changes once
			// the lock is released.
			off := 0
			for i := range m {
				n := len(m[i].rec)
				m[i].rec = buf[off : off+n : off+n]
				off += n
			}
			if len(m) > 0 {
				slices.SortStableFunc(m, func(a, b memRec) int { return cmpInt(a.t, b.t) })
				q.mem = append(q.mem, m)
			}
		}
	}
	s.mu.Unlock()

	for i, fh := range sealed {
		blocks, err := readIndex(fh)
		if err != nil {
			q.close()
			return nil, fmt.Errorf("store: query: segment %s: %w", sealedNames[i], err)
		}
		for _, b := range blocks {
			if f.matches(b.Tenant, b.Module, b.MinT, b.MaxT, lo, hi) {
				q.blocks = append(q.blocks, blockRef{f: fh, name: sealedNames[i], bi: b})
			}
		}
	}
	return q, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readIndex reads a sealed part's index.
func readIndex(f *os.File) ([]format.BlockInfo, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	ft, err := readFooter(f, st.Size())
	if err != nil {
		return nil, err
	}
	end := st.Size() - format.FooterSize
	b := make([]byte, end-ft.IndexOff)
	if _, err := f.ReadAt(b, ft.IndexOff); err != nil {
		return nil, err
	}
	return format.DecodeIndex(b, ft.IndexOff)
}

// cursor walks the time-sorted records of one block or memory buffer.
type cursor struct {
	recs  []memRec
	i     int
	order int
	raw   []byte
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i].recs[h[i].i].t, h[j].recs[h[j].i].t
	if a != b {
		return a < b
	}
	return h[i].order < h[j].order
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// run merges the day's sources in time order, loading a block only when
// the merge reaches its first event time.
func (q *dayQuery) run(ctx context.Context, s *Store, f *Filter, lo, hi int64, fn func(detect.Event) error) error {
	type pending struct {
		minT int64
		blk  *blockRef
		mem  []memRec
	}
	var pend []pending
	for i := range q.blocks {
		pend = append(pend, pending{minT: q.blocks[i].bi.MinT, blk: &q.blocks[i]})
	}
	for _, m := range q.mem {
		pend = append(pend, pending{minT: m[0].t, mem: m})
	}
	slices.SortStableFunc(pend, func(a, b pending) int { return cmpInt(a.minT, b.minT) })

	var h cursorHeap
	var free [][]byte
	var comp []byte
	order := 0
	var ev detect.Event
	for n := 0; ; n++ {
		for len(pend) > 0 && (len(h) == 0 || pend[0].minT <= h[0].recs[h[0].i].t) {
			p := pend[0]
			pend = pend[1:]
			c := &cursor{order: order, recs: p.mem}
			order++
			if p.blk != nil {
				var raw []byte
				if len(free) > 0 {
					raw, free = free[len(free)-1], free[:len(free)-1]
				}
				var err error
				comp, raw, c.recs, err = s.loadBlock(p.blk, comp, raw, lo, hi)
				if err != nil {
					return err
				}
				c.raw = raw
			}
			if len(c.recs) > 0 {
				heap.Push(&h, c)
			} else if c.raw != nil {
				free = append(free, c.raw)
			}
		}
		if len(h) == 0 {
			return nil
		}
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		c := h[0]
		if err := format.DecodeRecord(c.recs[c.i].rec, &ev); err != nil {
			return fmt.Errorf("store: query: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
		c.i++
		if c.i == len(c.recs) {
			heap.Pop(&h)
			if c.raw != nil {
				free = append(free, c.raw[:0])
			}
		} else {
			heap.Fix(&h, 0)
		}
	}
}

// loadBlock reads, checks and decompresses one block and returns its
// records within [lo, hi).
func (s *Store) loadBlock(b *blockRef, comp, raw []byte, lo, hi int64) ([]byte, []byte, []memRec, error) {
	comp = slices.Grow(comp[:0], int(b.bi.Len))[:b.bi.Len]
	if _, err := b.f.ReadAt(comp, b.bi.Offset); err != nil && !(errors.Is(err, io.EOF)) {
		return comp, raw, nil, fmt.Errorf("store: query: %s: %w", b.name, err)
	}
	payload, err := format.CheckBlock(comp)
	if err != nil {
		return comp, raw, nil, fmt.Errorf("store: query: %s block at %d: %w", b.name, b.bi.Offset, err)
	}
	raw, err = s.dec.DecodeAll(payload, raw[:0])
	if err != nil {
		return comp, raw, nil, fmt.Errorf("store: query: %s block at %d: %w", b.name, b.bi.Offset, err)
	}
	recs := make([]memRec, 0, b.bi.Count)
	err = format.ReadBatch(raw, func(rec []byte) error {
		t, err := format.RecordTime(rec)
		if err != nil {
			return err
		}
		if t >= lo && t < hi {
			recs = append(recs, memRec{t: t, rec: rec})
		}
		return nil
	})
	if err != nil {
		return comp, raw, nil, fmt.Errorf("store: query: %s block at %d: %w", b.name, b.bi.Offset, err)
	}
	return comp, raw, recs, nil
}
