package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store/internal/format"
)

// Defaults of Config.
const (
	// DefaultRetention is 1827 days (5×365+2): never less than five
	// calendar years, whatever leap days the five years hold.
	DefaultRetention = (5*365 + 2) * 24 * time.Hour
	// DefaultSealDelay is how long a day's part stays open after the UTC
	// day ended, so that events delayed by batching still join it.
	DefaultSealDelay = time.Hour
	// DefaultBlockSize is the uncompressed size at which one tenant's and
	// module's buffered events are compressed into a block.
	DefaultBlockSize = 256 << 10
	// DefaultWALSize is the write-ahead log size that triggers a
	// checkpoint.
	DefaultWALSize = 128 << 20
)

// Errors returned by the store.
var (
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("store: closed")
	// ErrReadOnly is returned by WriteEvents and Expire on a store opened
	// with Config.ReadOnly.
	ErrReadOnly = errors.New("store: read-only")
	// ErrVerify is wrapped by the error Verify returns when a segment or
	// the chain does not match.
	ErrVerify = errors.New("store: verification failed")
)

// Config configures a Store. Only Dir is required; every other field's
// zero value selects the documented default.
type Config struct {
	// Dir is the directory that holds the store (required). Open creates
	// it (mode 0750) when missing, unless ReadOnly.
	Dir string
	// Retention is how long events are kept. A UTC day's segments are
	// deleted once the whole day is older than Retention, i.e. when
	// day end + Retention <= Now. Zero means DefaultRetention (1827 days);
	// negative means keep forever.
	Retention time.Duration
	// SealDelay is how long after its UTC day ended a day's segment part
	// stays open for late events, and how long a part opened for late
	// events of an already sealed day stays open. Zero means
	// DefaultSealDelay (1 hour); negative is an error.
	SealDelay time.Duration
	// BlockSize is the uncompressed byte size at which the buffered events
	// of one (day, tenant, module) are compressed into a block. Zero means
	// DefaultBlockSize (256 KiB); allowed range 4 KiB – 64 MiB.
	BlockSize int
	// WALSize is how many bytes the write-ahead log may grow by before the
	// store checkpoints: it fsyncs the segment parts and starts a new log
	// holding only the events not yet in a block. Zero means DefaultWALSize (128 MiB);
	// minimum 1 MiB.
	WALSize int64
	// ReadOnly opens the store for Query and Verify only: no lock is taken,
	// no file is created, repaired or deleted, and the events still in the
	// write-ahead log are read into memory. A read-only store is a
	// snapshot of the moment it was opened; open it again to see newer
	// events. Use it to read the store of a running appliance.
	ReadOnly bool
	// Now returns the current time: it decides sealing and retention, and
	// stamps events whose Time is zero. Nil means time.Now.
	Now func() time.Time
	// Logger receives seals, checkpoints, repairs and expiry. Nil discards.
	Logger *slog.Logger
}

// Store is the embedded default event store: append-only, zstd-compressed
// daily segments under Config.Dir with a per-segment index by time, tenant
// and module, a hash chain over sealed segments, crash-safe writes and
// retention. See the package documentation and README for the format.
//
// All methods are safe for concurrent use. A Store must be closed with
// Close; only one process may open a directory for writing at a time.
type Store struct {
	cfg    Config
	log    *slog.Logger
	enc    *zstd.Encoder
	dec    *zstd.Decoder
	lock   *os.File
	bufs   sync.Pool
	expMu  sync.Mutex // held by Expire and Verify
	mu     sync.Mutex // guards everything below
	closed bool
	failed error // sticky write failure

	wal     *os.File
	walSize int64
	walBase int64                // log size right after the last checkpoint
	parts   map[uint32]*openPart // UTC day → its open part
	sealed  map[uint32][]string  // UTC day → sealed part names, in part order
	seq     uint64               // of the last sealed part
	head    [32]byte             // its link
	man     *os.File             // manifest, append-only
	manSeq  map[string]uint64    // sealed, unexpired part name → seq
	lastExp uint32               // day of the last automatic expiry

	raw, comp, blk []byte // flush scratch
}

// openPart is the one segment part of a day still taking events.
type openPart struct {
	day     uint32
	num     uint32
	name    string // file name with the .open suffix
	f       *os.File
	size    int64 // bytes written (file header + blocks)
	blocks  []format.BlockInfo
	streams map[streamKey]*stream
	opened  time.Time
}

type streamKey struct{ tenant, module string }

// stream buffers the records of one (day, tenant, module) until a block.
// buf holds them length-prefixed, as in a block's raw payload.
type stream struct {
	buf      []byte
	recs     []recRef
	unsorted bool // some record is older than the one before it
}

type recRef struct {
	off, n int32
	t      int64
}

var _ detect.BatchWriter = (*Store)(nil)

// Open opens (creating when needed) the store in cfg.Dir. It repairs what a
// crash left: it truncates a torn write-ahead log tail, drops partly
// written blocks and re-buffers the events the log still holds, finishes
// an interrupted seal, removes segments whose expiry was recorded, then
// seals due days and applies retention.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("store: Config.Dir is required")
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	switch {
	case cfg.SealDelay < 0:
		return nil, fmt.Errorf("store: Config.SealDelay %v is negative", cfg.SealDelay)
	case cfg.SealDelay == 0:
		cfg.SealDelay = DefaultSealDelay
	}
	switch {
	case cfg.BlockSize == 0:
		cfg.BlockSize = DefaultBlockSize
	case cfg.BlockSize < 4<<10 || cfg.BlockSize > 64<<20:
		return nil, fmt.Errorf("store: Config.BlockSize %d out of range 4096-67108864", cfg.BlockSize)
	}
	switch {
	case cfg.WALSize == 0:
		cfg.WALSize = DefaultWALSize
	case cfg.WALSize < 1<<20:
		return nil, fmt.Errorf("store: Config.WALSize %d below 1 MiB", cfg.WALSize)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		cfg:    cfg,
		log:    log,
		parts:  make(map[uint32]*openPart),
		sealed: make(map[uint32][]string),
	}
	var err error
	s.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("store: zstd encoder: %w", err)
	}
	s.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, fmt.Errorf("store: zstd decoder: %w", err)
	}
	if !cfg.ReadOnly {
		if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if s.lock, err = lockDir(cfg.Dir); err != nil {
			return nil, err
		}
	}
	if err := s.recover(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

// WriteEvents stores events. It returns after the batch is written to the
// operating system as one CRC-checked write-ahead log record, so every
// event of a batch whose WriteEvents returned nil survives a crash of the
// process (kill -9); call Sync for power-loss durability. The events slice
// is not retained.
//
// Each event goes to the segment of its own UTC day, however far from Now
// that day is. An event whose Time is zero, or outside the years 1678–2262
// (the range of UnixNano), is stored with Time set to Now. Tenant and
// Module longer than 255 bytes are refused (the whole batch, before
// anything is written).
//
// After a write failure the store refuses further writes (the error is
// returned again); reopen it to recover from the log.
func (s *Store) WriteEvents(ctx context.Context, events []detect.Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.cfg.ReadOnly {
		return ErrReadOnly
	}
	now := s.cfg.Now()
	b, _ := s.bufs.Get().(*batchBuf)
	if b == nil {
		b = new(batchBuf)
	}
	defer s.bufs.Put(b)
	if err := b.encode(events, now); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.failed != nil {
		return s.failed
	}
	if _, err := s.wal.Write(b.frame); err != nil {
		// Cut a partial frame so later frames are not lost behind it.
		if terr := s.wal.Truncate(s.walSize); terr != nil {
			s.failed = fmt.Errorf("store: write-ahead log unusable: %w", errors.Join(err, terr))
		}
		return fmt.Errorf("store: write-ahead log: %w", err)
	}
	s.walSize += int64(len(b.frame))
	for i := range b.refs {
		r := &b.refs[i]
		if err := s.add(r.day, r.key, b.frame[r.off:r.off+r.n], r.t, now); err != nil {
			return s.fail(err)
		}
	}
	if err := s.maintain(now); err != nil {
		return s.fail(err)
	}
	return nil
}

// fail makes err sticky.
func (s *Store) fail(err error) error {
	s.failed = fmt.Errorf("store: refusing writes after failure: %w", err)
	s.log.Error("store: write failed; reopen the store to recover", "err", err)
	return err
}

// batchBuf is a WriteEvents call's encoding scratch.
type batchBuf struct {
	frame []byte
	rec   []byte
	refs  []batchRef
}

type batchRef struct {
	off, n int
	t      int64
	day    uint32
	key    streamKey
}

func (b *batchBuf) encode(events []detect.Event, now time.Time) error {
	b.frame = format.BeginFrame(b.frame[:0], format.FrameBatch)
	b.refs = b.refs[:0]
	lastIdx, lastDay := int64(-1<<62), uint32(0)
	for i := range events {
		e := &events[i]
		if len(e.Tenant) > format.MaxKey {
			return fmt.Errorf("store: event %d: tenant id longer than %d bytes", i, format.MaxKey)
		}
		if len(e.Module) > format.MaxKey {
			return fmt.Errorf("store: event %d: module longer than %d bytes", i, format.MaxKey)
		}
		if e.Time.IsZero() || e.Time.Before(format.MinTime) || e.Time.After(format.MaxTime) {
			c := *e
			c.Time = now
			e = &c
		}
		b.rec = format.AppendRecord(b.rec[:0], e)
		b.frame = binary.AppendUvarint(b.frame, uint64(len(b.rec)))
		off := len(b.frame)
		b.frame = append(b.frame, b.rec...)
		t := e.Time.UnixNano()
		if idx := floorDiv(t, dayNanos); idx != lastIdx {
			lastIdx, lastDay = idx, dayOf(t)
		}
		b.refs = append(b.refs, batchRef{off: off, n: len(b.rec), t: t, day: lastDay, key: streamKey{e.Tenant, e.Module}})
	}
	format.FinishFrame(b.frame, 0)
	return nil
}

// add buffers one record in its day's open part, creating the part when
// needed, and compresses the stream into a block when it is full.
func (s *Store) add(day uint32, key streamKey, rec []byte, t int64, now time.Time) error {
	p := s.parts[day]
	if p == nil {
		var err error
		if p, err = s.createPart(day, now); err != nil {
			return err
		}
	}
	st := p.streams[key]
	if st == nil {
		st = &stream{}
		p.streams[key] = st
	}
	if n := len(st.recs); n > 0 && t < st.recs[n-1].t {
		st.unsorted = true
	}
	st.buf = binary.AppendUvarint(st.buf, uint64(len(rec)))
	st.recs = append(st.recs, recRef{off: int32(len(st.buf)), n: int32(len(rec)), t: t})
	st.buf = append(st.buf, rec...)
	if len(st.buf) >= s.cfg.BlockSize && p.f != nil && !s.cfg.ReadOnly {
		return s.flush(p, key, st)
	}
	return nil
}

// createPart opens a new part for day: number 0, or one past the day's
// last sealed part.
func (s *Store) createPart(day uint32, now time.Time) (*openPart, error) {
	num := uint32(0)
	if names := s.sealed[day]; len(names) > 0 {
		_, n, _, _ := parseName(names[len(names)-1])
		num = n + 1
	}
	p := &openPart{day: day, num: num, name: partName(day, num, extOpen), streams: make(map[streamKey]*stream), opened: now, size: format.FileHeaderSize}
	if !s.cfg.ReadOnly {
		f, err := os.OpenFile(filepath.Join(s.cfg.Dir, p.name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return nil, fmt.Errorf("store: create part: %w", err)
		}
		if _, err := f.Write(format.AppendFileHeader(nil, day, num)); err != nil {
			f.Close()
			return nil, fmt.Errorf("store: create part %s: %w", p.name, err)
		}
		p.f = f
	}
	s.parts[day] = p
	return p, nil
}

// flush compresses a stream into one block appended to its part.
func (s *Store) flush(p *openPart, key streamKey, st *stream) error {
	if len(st.recs) == 0 {
		return nil
	}
	raw := st.buf
	if st.unsorted {
		slices.SortStableFunc(st.recs, func(a, b recRef) int { return cmp.Compare(a.t, b.t) })
		raw = s.raw[:0]
		for _, r := range st.recs {
			raw = format.AppendBatchRecord(raw, st.buf[r.off:r.off+r.n])
		}
		s.raw = raw
	}
	s.comp = s.enc.EncodeAll(raw, s.comp[:0])
	bi := format.BlockInfo{
		Offset: p.size,
		Count:  len(st.recs),
		MinT:   st.recs[0].t,
		MaxT:   st.recs[len(st.recs)-1].t,
		Tenant: key.tenant,
		Module: key.module,
		RawLen: len(raw),
	}
	s.blk = format.AppendBlock(s.blk[:0], &bi, s.comp)
	if _, err := p.f.WriteAt(s.blk, p.size); err != nil {
		return fmt.Errorf("store: write block to %s: %w", p.name, err)
	}
	p.size += bi.Len
	p.blocks = append(p.blocks, bi)
	st.buf = st.buf[:0]
	st.recs = st.recs[:0]
	st.unsorted = false
	return nil
}

// maintain seals due parts, checkpoints a full log and applies retention
// once per UTC day.
func (s *Store) maintain(now time.Time) error {
	var due []*openPart
	for _, p := range s.parts {
		if s.sealDue(p, now) {
			due = append(due, p)
		}
	}
	if len(due) > 0 {
		slices.SortFunc(due, func(a, b *openPart) int { return cmp.Compare(a.day, b.day) })
		for _, p := range due {
			if err := s.seal(p); err != nil {
				return err
			}
		}
		if err := s.checkpoint(); err != nil {
			return err
		}
	} else if s.walSize-s.walBase >= s.cfg.WALSize {
		if err := s.checkpoint(); err != nil {
			return err
		}
	}
	if today := dayOf(now.UnixNano()); today != s.lastExp && s.cfg.Retention > 0 && s.expMu.TryLock() {
		defer s.expMu.Unlock()
		s.lastExp = today
		if _, err := s.expire(now); err != nil {
			s.log.Error("store: retention", "err", err)
		}
	}
	return nil
}

func (s *Store) sealDue(p *openPart, now time.Time) bool {
	end := dayStart(p.day).Add(24 * time.Hour)
	return !now.Before(end.Add(s.cfg.SealDelay)) && !now.Before(p.opened.Add(s.cfg.SealDelay))
}

// Sync makes every acknowledged event durable against power loss: it
// fsyncs the write-ahead log (segment parts are fsynced at each checkpoint
// and seal).
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.wal == nil {
		return nil
	}
	if err := s.wal.Sync(); err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	return nil
}

// Close seals the parts that are due, checkpoints (so the next Open replays
// little), fsyncs and closes the files and releases the directory lock.
// Parts of days not yet due stay open and take events again after the next
// Open. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if !s.cfg.ReadOnly && s.failed == nil {
		err = s.maintain(s.cfg.Now())
		if err == nil {
			err = s.checkpoint()
		}
	}
	s.closeFiles()
	return err
}

func (s *Store) closeFiles() {
	for _, p := range s.parts {
		if p.f != nil {
			p.f.Close()
		}
	}
	if s.wal != nil {
		s.wal.Close()
	}
	if s.man != nil {
		s.man.Close()
	}
	if s.lock != nil {
		unlockDir(s.lock)
	}
	s.enc.Close()
	s.dec.Close()
}

// Days and names.

const (
	extOpen   = ".open"
	extSealed = ".seg"
	walName   = "wal"
	manName   = "MANIFEST"
	lockName  = "LOCK"
)

const dayNanos = int64(24 * time.Hour)

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// dayOf returns the UTC day of a UnixNano time as yyyymmdd.
func dayOf(ns int64) uint32 {
	y, m, d := time.Unix(0, ns).UTC().Date()
	return uint32(y*10000 + int(m)*100 + d)
}

func dayStart(day uint32) time.Time {
	return time.Date(int(day/10000), time.Month(day/100%100), int(day%100), 0, 0, 0, 0, time.UTC)
}

func partName(day, num uint32, ext string) string {
	return fmt.Sprintf("%08d-%03d%s", day, num, ext)
}

// parseName parses "yyyymmdd-nnn.ext".
func parseName(name string) (day, num uint32, ext string, ok bool) {
	var base string
	switch {
	case filepath.Ext(name) == extOpen:
		ext, base = extOpen, name[:len(name)-len(extOpen)]
	case filepath.Ext(name) == extSealed:
		ext, base = extSealed, name[:len(name)-len(extSealed)]
	default:
		return 0, 0, "", false
	}
	if len(base) < 12 || base[8] != '-' {
		return 0, 0, "", false
	}
	var d, n uint64
	for _, c := range base[:8] {
		if c < '0' || c > '9' {
			return 0, 0, "", false
		}
		d = d*10 + uint64(c-'0')
	}
	for _, c := range base[9:] {
		if c < '0' || c > '9' || n > 1e8 {
			return 0, 0, "", false
		}
		n = n*10 + uint64(c-'0')
	}
	if partName(uint32(d), uint32(n), ext) != name || dayOf(dayStart(uint32(d)).UnixNano()) != uint32(d) {
		return 0, 0, "", false
	}
	return uint32(d), uint32(n), ext, true
}
