package store

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/jichitai/seccloud/detect/store/internal/format"
)

// recover loads the manifest, the segment parts and the write-ahead log,
// repairing what a crash left (see Open).
func (s *Store) recover() error {
	dir, ro := s.cfg.Dir, s.cfg.ReadOnly
	now := s.cfg.Now()

	// Manifest: the chain of sealed parts.
	manPath := filepath.Join(dir, manName)
	mb, err := os.ReadFile(manPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: manifest: %w", err)
	}
	recs, good, bad, perr := parseManifest(mb)
	if bad != 0 {
		s.log.Error("store: manifest damaged; run Verify", "line", bad, "err", perr)
	}
	if good < len(mb) && !ro {
		s.log.Warn("store: truncating torn manifest tail", "bytes", len(mb)-good)
		if err := os.Truncate(manPath, int64(good)); err != nil {
			return fmt.Errorf("store: manifest: %w", err)
		}
	}
	sealedRecs := make(map[string]manRec)
	expired := make(map[string]bool)
	for _, r := range recs {
		if r.expire {
			delete(sealedRecs, r.name)
			expired[r.name] = true
			continue
		}
		sealedRecs[r.name] = r
		if r.seq > s.seq {
			s.seq, s.head = r.seq, r.link
		}
	}
	s.manSeq = make(map[string]uint64, len(sealedRecs))
	for n, r := range sealedRecs {
		s.manSeq[n] = r.seq
	}
	if !ro {
		if s.man, err = os.OpenFile(manPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640); err != nil {
			return fmt.Errorf("store: manifest: %w", err)
		}
	}

	// Segment parts on disk.
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var opens []string
	for _, e := range ents {
		day, _, ext, ok := parseName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if ext == extOpen {
			opens = append(opens, e.Name())
			continue
		}
		if _, live := sealedRecs[e.Name()]; expired[e.Name()] && !live {
			if !ro {
				s.log.Info("store: removing expired segment left by a crash", "segment", e.Name())
				if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
					return fmt.Errorf("store: %w", err)
				}
			}
			continue
		}
		s.sealed[day] = append(s.sealed[day], e.Name())
	}

	// Write-ahead log.
	walb, err := os.ReadFile(filepath.Join(dir, walName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: write-ahead log: %w", err)
	}
	var cp *format.Checkpoint
	var batches [][]byte
	if len(walb) > 0 {
		if !bytes.HasPrefix(walb, []byte(format.WALMagic)) {
			s.log.Error("store: write-ahead log has no valid header; ignoring it")
		} else {
			end, _ := format.ReadFrames(walb[len(format.WALMagic):], func(typ byte, payload []byte) error {
				switch {
				case cp == nil && typ == format.FrameCheckpoint:
					c, err := format.DecodeCheckpoint(payload)
					if err != nil {
						return err
					}
					cp = &c
				case cp != nil && typ == format.FrameBatch:
					batches = append(batches, payload)
				default:
					return fmt.Errorf("unexpected frame type %d", typ)
				}
				return nil
			})
			if cp == nil {
				s.log.Error("store: write-ahead log has no valid checkpoint; ignoring it")
			} else if torn := len(walb) - len(format.WALMagic) - end; torn > 0 {
				s.log.Warn("store: dropping torn write-ahead log tail", "bytes", torn)
			}
		}
	}
	cpLen := make(map[string]int64)
	sealedAfter := make(map[uint32]bool)
	if cp != nil {
		for _, p := range cp.Parts {
			cpLen[p.Name] = p.Len
		}
		for n, r := range sealedRecs {
			if r.seq > cp.Seq {
				d, _, _, _ := parseName(n)
				sealedAfter[d] = true
			}
		}
	}

	// Open parts: finish interrupted seals, cut unindexed tails.
	slices.Sort(opens)
	for _, name := range opens {
		day, num, _, _ := parseName(name)
		sname := partName(day, num, extSealed)
		if r, ok := sealedRecs[sname]; ok {
			if err := s.finishSeal(name, sname, r); err != nil {
				return err
			}
			continue
		}
		if expired[sname] {
			if !ro {
				os.Remove(filepath.Join(dir, name))
			}
			continue
		}
		if old := s.parts[day]; old != nil {
			return fmt.Errorf("store: two open parts for one day: %s and %s: %w", old.name, name, format.ErrCorrupt)
		}
		committed, trusted := int64(-1), false
		if cp != nil {
			committed, trusted = format.FileHeaderSize, true
			if l, ok := cpLen[name]; ok {
				committed = l
			}
		}
		p, err := s.openPart(name, day, num, committed, trusted)
		if err != nil {
			return err
		}
		if p != nil {
			s.parts[day] = p
		}
	}
	for d, names := range s.sealed {
		slices.SortFunc(names, func(a, b string) int {
			_, x, _, _ := parseName(a)
			_, y, _, _ := parseName(b)
			return cmp.Compare(x, y)
		})
		s.sealed[d] = names
	}

	// Replay the log into the stream buffers.
	n := 0
	for _, b := range batches {
		err := format.ReadBatch(b, func(rec []byte) error {
			t, err := format.RecordTime(rec)
			if err != nil {
				return err
			}
			tenant, module, err := format.RecordKey(rec)
			if err != nil {
				return err
			}
			day := dayOf(t)
			if sealedAfter[day] {
				return nil
			}
			n++
			return s.add(day, streamKey{tenant, module}, rec, t, now)
		})
		if err != nil {
			return fmt.Errorf("store: replay write-ahead log: %w", err)
		}
	}
	if n > 0 {
		s.log.Info("store: replayed write-ahead log", "events", n)
	}
	if ro {
		return nil
	}
	if err := s.checkpoint(); err != nil {
		return err
	}
	return s.maintain(now)
}

// finishSeal handles an open part whose seal the manifest records: the
// process died between recording the seal and renaming the file.
func (s *Store) finishSeal(name, sname string, r manRec) error {
	dir := s.cfg.Dir
	day, _, _, _ := parseName(sname)
	if slices.Contains(s.sealed[day], sname) {
		if !s.cfg.ReadOnly {
			s.log.Warn("store: removing stale open copy of a sealed segment", "segment", name)
			return os.Remove(filepath.Join(dir, name))
		}
		return nil
	}
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	ft, err := readFooter(f, st.Size())
	if err != nil || st.Size() != r.size || ft.Link != r.link {
		return fmt.Errorf("store: %s: manifest records its seal but the file does not match: %w", name, format.ErrCorrupt)
	}
	if s.cfg.ReadOnly {
		s.sealed[day] = append(s.sealed[day], name)
		return nil
	}
	if err := os.Rename(filepath.Join(dir, name), filepath.Join(dir, sname)); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	s.log.Info("store: finished interrupted seal", "segment", sname)
	s.sealed[day] = append(s.sealed[day], sname)
	return syncDir(dir)
}

// openPart opens an open part, indexes its blocks up to committed (or, when
// committed is unknown (-1), up to the first block failing its CRC) and
// cuts what lies beyond.
func (s *Store) openPart(name string, day, num uint32, committed int64, trusted bool) (*openPart, error) {
	ro := s.cfg.ReadOnly
	path := filepath.Join(s.cfg.Dir, name)
	flag := os.O_RDWR
	if ro {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	size := st.Size()
	hdr := make([]byte, format.FileHeaderSize)
	_, herr := f.ReadAt(hdr, 0)
	if herr == nil {
		var d, n uint32
		if d, n, herr = format.ParseFileHeader(hdr); herr == nil && (d != day || n != num) {
			herr = format.ErrCorrupt
		}
	}
	if herr != nil {
		if trusted && committed > format.FileHeaderSize {
			f.Close()
			return nil, fmt.Errorf("store: %s: bad file header: %w", name, format.ErrCorrupt)
		}
		if ro {
			f.Close()
			return &openPart{day: day, num: num, name: name, size: format.FileHeaderSize, streams: make(map[streamKey]*stream)}, nil
		}
		s.log.Warn("store: rewriting torn part header", "part", name)
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
		if _, err := f.WriteAt(format.AppendFileHeader(nil, day, num), 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
		size = format.FileHeaderSize
	}
	if committed > size {
		s.log.Error("store: part shorter than its checkpoint; keeping its intact blocks", "part", name, "size", size, "checkpoint", committed)
		committed, trusted = -1, false
	}
	limit, check := committed, !trusted
	if committed < 0 {
		limit = size
	}
	blocks, end, err := scanBlocks(f, limit, check)
	if err != nil {
		f.Close()
		return nil, err
	}
	if trusted && end != committed {
		s.log.Error("store: part index ends before its checkpoint", "part", name, "end", end, "checkpoint", committed)
	}
	if end < size && !ro {
		s.log.Warn("store: cutting part tail not covered by the checkpoint", "part", name, "bytes", size-end)
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	// A recovered part's late-event window is over: seal it as soon as its
	// day is due.
	p := &openPart{day: day, num: num, name: name, size: end, blocks: blocks, streams: make(map[streamKey]*stream)}
	if ro {
		f.Close()
	} else {
		p.f = f // kept for appending
	}
	return p, nil
}

// scanBlocks reads block headers from the file header to limit and
// returns the index and the end of the last whole block (checking every
// block's CRC when check is set).
func scanBlocks(f io.ReaderAt, limit int64, check bool) ([]format.BlockInfo, int64, error) {
	var blocks []format.BlockInfo
	off := int64(format.FileHeaderSize)
	hdr := make([]byte, format.MaxBlockHeader)
	var whole []byte
	for off < limit {
		h := hdr[:min(int64(len(hdr)), limit-off)]
		if _, err := f.ReadAt(h, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("store: scan blocks: %w", err)
		}
		bi, err := format.ParseBlockHeader(h)
		if err != nil || bi.Len > limit-off {
			break
		}
		if check {
			whole = slices.Grow(whole[:0], int(bi.Len))[:bi.Len]
			if _, err := f.ReadAt(whole, off); err != nil {
				break
			}
			if _, err := format.CheckBlock(whole); err != nil {
				break
			}
		}
		bi.Offset = off
		blocks = append(blocks, bi)
		off += bi.Len
	}
	return blocks, off, nil
}

// readFooter reads and parses the footer of a sealed part of the given
// size.
func readFooter(f io.ReaderAt, size int64) (format.Footer, error) {
	if size < format.FileHeaderSize+format.FooterSize {
		return format.Footer{}, fmt.Errorf("footer: file too short: %w", format.ErrCorrupt)
	}
	b := make([]byte, format.FooterSize)
	if _, err := f.ReadAt(b, size-format.FooterSize); err != nil {
		return format.Footer{}, err
	}
	return format.ParseFooter(b, size)
}
