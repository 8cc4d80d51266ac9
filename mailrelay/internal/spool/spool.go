// Package spool is the durable message store of the mail relay: an
// append-only journal of segment files with group commit.
//
// Every accepted message is appended to the active segment as one record
// (length, CRC-32C, payload) and Put returns only after the segment was
// fsynced, so a message acknowledged with 250 survives kill -9 and power
// loss. Concurrent Puts share one fsync (group commit), which is what lets
// the relay keep up with many sessions on an ordinary disk.
//
// A message's state changes (remaining recipients after a temporary
// failure) are written as a new record with a higher generation; the
// newest generation wins on recovery. Done records mark a message
// finished. A segment is deleted once no live message has its newest
// record in it and every older segment is gone (segments are deleted in
// order, so a Done record never disappears before the message it ends).
//
// Recovery reads the segments in order and stops reading a segment at the
// first torn or corrupt record (a crash in the middle of an append); what
// followed it was never acknowledged.
package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Record types.
const (
	recMessage = 'M'
	recDone    = 'D'
	recImport  = 'I' // a message imported from another node's spool (import.go)
)

const (
	magic      = 0x4d52 // "MR"
	headerSize = 10     // magic(2) + len(4) + crc(4)
	// MaxRecord bounds one record (a message plus its envelope).
	MaxRecord = 256 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrClosed is returned by operations on a closed Spool.
var ErrClosed = errors.New("spool: closed")

// ErrLocked is returned by Open when another Spool (in this or another
// process) has the directory open.
var ErrLocked = errors.New("spool: directory in use by another process")

// Ref locates a stored message record so its data can be read back.
type Ref struct {
	Seg    uint64 // segment sequence number
	Off    int64  // offset of the data bytes in the segment
	Len    int64  // length of the data bytes
	record int64  // offset of the record header
}

// Entry is one live message found on recovery.
type Entry struct {
	ID       string
	Gen      uint32
	Envelope []byte // opaque to the spool
	Ref      Ref
	imported bool // newest record is an import record
}

// Options configures Open. Dir is required.
type Options struct {
	// Dir holds the segment files; created if missing.
	Dir string
	// SegmentSize is the size after which a new segment is started; 0
	// means 64 MiB.
	SegmentSize int64
	// NoSync turns fsync off (tests and benchmarks of the CPU path only;
	// never in production).
	NoSync bool
}

// Spool is the journal. Its methods are safe for concurrent use.
type Spool struct {
	dir     string
	segSize int64
	noSync  bool

	reqs chan *request
	done chan struct{}

	mu     sync.Mutex
	segs   map[uint64]*segment // open or retained segments
	active *segment
	closed bool
	err    error // sticky write error

	lock  *os.File   // dir/LOCK, flocked while open
	impMu sync.Mutex // one Rehome at a time; guards imp after Open
	imp   importLedger
}

type segment struct {
	seq  uint64
	f    *os.File
	size int64
	live int
}

type request struct {
	rec  []byte
	sync bool
	// dataOff is the offset of the data inside rec (message records).
	dataOff, dataLen int64
	ref              Ref
	err              chan error
	// release, when set, names a segment whose live count drops once this
	// record is durable (copy forward / done).
	release    uint64
	hasRelease bool
}

// Open opens (creating if needed) the spool in opt.Dir, recovers its
// content and returns the live entries, oldest first.
func Open(opt Options) (*Spool, []Entry, error) {
	if opt.Dir == "" {
		return nil, nil, errors.New("spool: Dir is empty")
	}
	if opt.SegmentSize <= 0 {
		opt.SegmentSize = 64 << 20
	}
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := lockDir(opt.Dir)
	if err != nil {
		return nil, nil, err
	}
	s := &Spool{
		dir: opt.Dir, segSize: opt.SegmentSize, noSync: opt.NoSync,
		reqs: make(chan *request, 1024), done: make(chan struct{}),
		segs: make(map[uint64]*segment), lock: lock,
	}
	fail := func(err error) (*Spool, []Entry, error) {
		for _, g := range s.segs {
			g.f.Close()
		}
		s.imp.close()
		if lock != nil {
			lock.Close()
		}
		return nil, nil, err
	}
	entries, last, err := s.recover()
	if err != nil {
		return fail(err)
	}
	if err := s.imp.open(s.dir, s.noSync, entries); err != nil {
		return fail(err)
	}
	if err := s.newSegment(last + 1); err != nil {
		return fail(err)
	}
	s.collect()
	go s.commitLoop()
	return s, entries, nil
}

func segName(seq uint64) string { return fmt.Sprintf("seg-%016x.log", seq) }

func (s *Spool) recover() ([]Entry, uint64, error) {
	names, err := filepath.Glob(filepath.Join(s.dir, "seg-*.log"))
	if err != nil {
		return nil, 0, fmt.Errorf("spool: %w", err)
	}
	// Leftover temporary files are never acknowledged data.
	tmps, _ := filepath.Glob(filepath.Join(s.dir, "*.tmp"))
	for _, t := range tmps {
		os.Remove(t)
	}
	var seqs []uint64
	for _, n := range names {
		var seq uint64
		if _, err := fmt.Sscanf(filepath.Base(n), "seg-%016x.log", &seq); err == nil {
			seqs = append(seqs, seq)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	type state struct {
		e     Entry
		order int
	}
	live := make(map[string]*state)
	order := 0
	var last uint64
	for _, seq := range seqs {
		last = seq
		f, err := os.Open(filepath.Join(s.dir, segName(seq)))
		if err != nil {
			return nil, 0, fmt.Errorf("spool: %w", err)
		}
		seg := &segment{seq: seq, f: f}
		s.segs[seq] = seg
		r := bufio.NewReaderSize(f, 1<<16)
		var off int64
	records:
		for {
			payload, n, err := readRecord(r)
			if err != nil {
				break // EOF or torn tail: ignore the rest
			}
			typ, id, rest, ok := splitPayload(payload)
			if !ok {
				break
			}
			switch typ {
			case recMessage, recImport:
				if len(rest) < 4+4 {
					break records
				}
				gen := binary.BigEndian.Uint32(rest)
				envLen := int(binary.BigEndian.Uint32(rest[4:]))
				if 8+envLen > len(rest) {
					break records
				}
				env := append([]byte(nil), rest[8:8+envLen]...)
				dataStart := off + int64(headerSize) + int64(len(payload)-len(rest)) + int64(8+envLen)
				st := live[id]
				if st == nil || gen >= st.e.Gen {
					order++
					live[id] = &state{order: order, e: Entry{ID: id, Gen: gen, Envelope: env, imported: typ == recImport,
						Ref: Ref{Seg: seq, Off: dataStart, Len: int64(len(rest) - 8 - envLen), record: off}}}
				}
			case recDone:
				delete(live, id)
			}
			off += int64(n)
		}
		seg.size = off
	}
	out := make([]Entry, 0, len(live))
	for _, st := range live {
		out = append(out, st.e)
	}
	sort.Slice(out, func(i, j int) bool { return live[out[i].ID].order < live[out[j].ID].order })
	for _, e := range out {
		s.segs[e.Ref.Seg].live++
	}
	return out, last, nil
}

// readRecord reads one record and returns its payload and total size.
func readRecord(r *bufio.Reader) ([]byte, int, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, 0, err
	}
	if binary.BigEndian.Uint16(h[:]) != magic {
		return nil, 0, errors.New("spool: bad magic")
	}
	n := binary.BigEndian.Uint32(h[2:])
	if n > MaxRecord {
		return nil, 0, errors.New("spool: record too large")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, 0, err
	}
	if crc32.Checksum(p, castagnoli) != binary.BigEndian.Uint32(h[6:]) {
		return nil, 0, errors.New("spool: bad checksum")
	}
	return p, headerSize + int(n), nil
}

func splitPayload(p []byte) (typ byte, id string, rest []byte, ok bool) {
	if len(p) < 2 {
		return 0, "", nil, false
	}
	typ = p[0]
	l := int(p[1])
	if 2+l > len(p) {
		return 0, "", nil, false
	}
	return typ, string(p[2 : 2+l]), p[2+l:], true
}

func (s *Spool) newSegment(seq uint64) error {
	f, err := os.OpenFile(filepath.Join(s.dir, segName(seq)), os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if !s.noSync {
		if err := syncDir(s.dir); err != nil {
			f.Close()
			return err
		}
	}
	seg := &segment{seq: seq, f: f}
	s.segs[seq] = seg
	s.active = seg
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync dir: %w", err)
	}
	return nil
}

// collect deletes, oldest first, the segments that hold nothing live.
// s.mu must be held.
func (s *Spool) collect() {
	for {
		var oldest *segment
		for _, g := range s.segs {
			if oldest == nil || g.seq < oldest.seq {
				oldest = g
			}
		}
		if oldest == nil || oldest == s.active || oldest.live > 0 {
			return
		}
		oldest.f.Close()
		os.Remove(filepath.Join(s.dir, segName(oldest.seq)))
		delete(s.segs, oldest.seq)
	}
}

func encodeMessage(id string, gen uint32, env, data []byte) ([]byte, int64) {
	return encodeRecord(recMessage, id, gen, env, data)
}

func encodeRecord(typ byte, id string, gen uint32, env, data []byte) ([]byte, int64) {
	plen := 2 + len(id) + 8 + len(env) + len(data)
	b := make([]byte, headerSize+plen)
	binary.BigEndian.PutUint16(b, magic)
	binary.BigEndian.PutUint32(b[2:], uint32(plen))
	p := b[headerSize:]
	p[0] = typ
	p[1] = byte(len(id))
	n := 2 + copy(p[2:], id)
	binary.BigEndian.PutUint32(p[n:], gen)
	binary.BigEndian.PutUint32(p[n+4:], uint32(len(env)))
	n += 8
	n += copy(p[n:], env)
	dataOff := headerSize + n
	copy(p[n:], data)
	binary.BigEndian.PutUint32(b[6:], crc32.Checksum(p, castagnoli))
	return b, int64(dataOff)
}

func encodeDone(id string) []byte {
	plen := 2 + len(id)
	b := make([]byte, headerSize+plen)
	binary.BigEndian.PutUint16(b, magic)
	binary.BigEndian.PutUint32(b[2:], uint32(plen))
	p := b[headerSize:]
	p[0] = recDone
	p[1] = byte(len(id))
	copy(p[2:], id)
	binary.BigEndian.PutUint32(b[6:], crc32.Checksum(p, castagnoli))
	return b
}

func validID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("spool: bad id %q", id)
	}
	return nil
}

// Put stores generation gen of message id with its envelope and data and
// returns once it is durable. If prev is non-nil it is the Ref of the
// previous generation, released once the new one is durable.
func (s *Spool) Put(id string, gen uint32, env, data []byte, prev *Ref) (Ref, error) {
	if err := validID(id); err != nil {
		return Ref{}, err
	}
	if len(env)+len(data)+80 > MaxRecord {
		return Ref{}, errors.New("spool: message too large")
	}
	rec, dataOff := encodeMessage(id, gen, env, data)
	req := &request{rec: rec, sync: true, dataOff: dataOff, dataLen: int64(len(data)), err: make(chan error, 1)}
	if prev != nil {
		req.release, req.hasRelease = prev.Seg, true
	}
	if err := s.submit(req); err != nil {
		return Ref{}, err
	}
	if err := <-req.err; err != nil {
		return Ref{}, err
	}
	return req.ref, nil
}

// Done marks message id finished and releases its record ref. It does not
// wait for the disk: a crash before the next fsync at worst delivers the
// message again.
func (s *Spool) Done(id string, ref Ref) error {
	req := &request{rec: encodeDone(id), release: ref.Seg, hasRelease: true}
	return s.submit(req)
}

func (s *Spool) submit(req *request) (err error) {
	s.mu.Lock()
	closed, serr := s.closed, s.err
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if serr != nil {
		return serr
	}
	defer func() {
		if recover() != nil { // closed channel: raced with Close
			err = ErrClosed
		}
	}()
	s.reqs <- req
	return nil
}

func (s *Spool) commitLoop() {
	defer close(s.done)
	var batch []*request
	var buf []byte
	for {
		req, ok := <-s.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], req)
	drain:
		for len(batch) < 256 {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.mu.Lock()
		err := s.err
		if err == nil && s.active.size >= s.segSize {
			err = s.newSegment(s.active.seq + 1)
		}
		seg := s.active
		s.mu.Unlock()
		needSync := false
		buf = buf[:0]
		off := seg.size
		for _, r := range batch {
			if r.err != nil {
				r.ref = Ref{Seg: seg.seq, Off: off + r.dataOff, Len: r.dataLen, record: off}
			}
			off += int64(len(r.rec))
			buf = append(buf, r.rec...)
			needSync = needSync || r.sync
		}
		if err == nil {
			_, err = seg.f.WriteAt(buf, seg.size)
		}
		if err == nil && needSync && !s.noSync {
			err = seg.f.Sync()
		}
		s.mu.Lock()
		if err != nil {
			s.err = fmt.Errorf("spool: write: %w", err)
		} else {
			seg.size = off
			for _, r := range batch {
				if r.err != nil {
					seg.live++
				}
				if r.hasRelease {
					if g := s.segs[r.release]; g != nil {
						g.live--
					}
				}
			}
			s.collect()
		}
		s.mu.Unlock()
		if cap(buf) > 8<<20 {
			buf = nil
		}
		for _, r := range batch {
			if r.err != nil {
				r.err <- err
			}
		}
	}
}

// ReadData reads the data bytes of the record at ref.
func (s *Spool) ReadData(ref Ref) ([]byte, error) {
	s.mu.Lock()
	seg := s.segs[ref.Seg]
	s.mu.Unlock()
	if seg == nil {
		return nil, fmt.Errorf("spool: segment %d gone", ref.Seg)
	}
	b := make([]byte, ref.Len)
	if _, err := seg.f.ReadAt(b, ref.Off); err != nil {
		return nil, fmt.Errorf("spool: read: %w", err)
	}
	return b, nil
}

// Segments returns the names of the segment files currently kept (for
// tests and monitoring).
func (s *Spool) Segments() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for seq := range s.segs {
		out = append(out, segName(seq))
	}
	sort.Strings(out)
	return out
}

// Close flushes pending records, syncs and closes the files.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.reqs)
	<-s.done
	s.impMu.Lock() // waits for a Rehome in progress (its writes now fail)
	ierr := s.imp.close()
	s.impMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []string
	if ierr != nil {
		errs = append(errs, ierr.Error())
	}
	for _, g := range s.segs {
		if g == s.active && !s.noSync {
			if err := g.f.Sync(); err != nil {
				errs = append(errs, err.Error())
			}
		}
		g.f.Close()
	}
	if s.lock != nil {
		s.lock.Close()
	}
	if len(errs) > 0 {
		return fmt.Errorf("spool: close: %s", strings.Join(errs, "; "))
	}
	return nil
}
