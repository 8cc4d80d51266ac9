package report

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// On-disk format (version 1), all integers little-endian:
//
//	wal:            "SCRWAL1\n" | gen u64 | frame*
//	frame:          len u32 | crc32c u32 (of payload) | payload
//	yyyymm.rollup:  "SCROLL1\n" | gen u64 | payload | crc32c u32 (of all before)
//	payload:        uvarint n | n × row
//	row:            kind u8 | sev u8 | hour uvarint | tenant, a, b (uvarint len + bytes) |
//	                4 × counter varint
//
// gen orders snapshots and logs: a checkpoint writes the month snapshots
// with gen+1, then a new log with gen+1. On recovery the log's rows of a
// month whose snapshot has a gen above the log's are already in the
// snapshot (the crash came between the two steps) and are skipped.

const (
	walMagic  = "SCRWAL1\n"
	snapMagic = "SCROLL1\n"
	walName   = "rollup.wal"
	hdrLen    = 16
	maxFrame  = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendRows(b []byte, d delta) []byte {
	b = binary.AppendUvarint(b, uint64(len(d)))
	for k, c := range d {
		b = append(b, k.kind, k.sev)
		b = binary.AppendUvarint(b, uint64(uint32(k.hour)))
		for _, s := range [...]string{k.tenant, k.a, k.b} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
		for _, v := range c {
			b = binary.AppendVarint(b, v)
		}
	}
	return b
}

func appendFrame(b []byte, d delta) []byte {
	start := len(b)
	b = append(b, make([]byte, 8)...)
	b = appendRows(b, d)
	payload := b[start+8:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, castagnoli))
	return b
}

// decodeRows adds the rows of payload to d. Strings are interned through
// in so a month's thousands of rows share their tenant and rule strings.
func decodeRows(p []byte, d delta, in map[string]string) error {
	n, w := binary.Uvarint(p)
	if w <= 0 {
		return errors.New("bad row count")
	}
	p = p[w:]
	if n > uint64(len(p))/7+1 {
		return errors.New("row count larger than the data")
	}
	str := func() (string, error) {
		l, w := binary.Uvarint(p)
		if w <= 0 || l > uint64(len(p)-w) {
			return "", errors.New("bad string")
		}
		b := p[w : w+int(l)]
		p = p[w+int(l):]
		if s, ok := in[string(b)]; ok {
			return s, nil
		}
		s := string(b)
		in[s] = s
		return s, nil
	}
	for range n {
		if len(p) < 3 {
			return errors.New("short row")
		}
		var k key
		k.kind, k.sev = p[0], p[1]
		if k.kind == 0 || k.kind > kindMax || k.sev > 3 {
			return fmt.Errorf("bad row kind %d / level %d", k.kind, k.sev)
		}
		p = p[2:]
		h, w := binary.Uvarint(p)
		if w <= 0 || h > 1<<31-1 {
			return errors.New("bad hour")
		}
		p = p[w:]
		k.hour = int32(h)
		var err error
		if k.tenant, err = str(); err != nil {
			return err
		}
		if k.a, err = str(); err != nil {
			return err
		}
		if k.b, err = str(); err != nil {
			return err
		}
		var c counters
		for i := range c {
			v, w := binary.Varint(p)
			if w <= 0 {
				return errors.New("bad counter")
			}
			c[i] = v
			p = p[w:]
		}
		d.add(k, c[0], c[1], c[2], c[3])
	}
	if len(p) != 0 {
		return errors.New("trailing bytes")
	}
	return nil
}

// readSnapshot reads a month snapshot; a missing file is (nil, 0, nil).
func readSnapshot(path string) (delta, uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("report: %w", err)
	}
	if len(b) < hdrLen+4 || string(b[:8]) != snapMagic {
		return nil, 0, fmt.Errorf("report: %s: not a rollup snapshot", path)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, 0, fmt.Errorf("report: %s: checksum mismatch", path)
	}
	gen := binary.LittleEndian.Uint64(b[8:16])
	d := delta{}
	if err := decodeRows(body[hdrLen:], d, map[string]string{}); err != nil {
		return nil, 0, fmt.Errorf("report: %s: %w", path, err)
	}
	return d, gen, nil
}

func snapGen(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var h [hdrLen]byte
	if _, err := io.ReadFull(f, h[:]); err != nil || string(h[:8]) != snapMagic {
		return 0, fmt.Errorf("report: %s: not a rollup snapshot", path)
	}
	return binary.LittleEndian.Uint64(h[8:]), nil
}

// snapshots returns the month ids and gens of the snapshot files in dir.
func (r *Rollup) snapshots() (map[int]uint64, error) {
	ents, err := os.ReadDir(r.cfg.Dir)
	if errors.Is(err, os.ErrNotExist) && r.cfg.ReadOnly {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	out := map[int]uint64{}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".rollup")
		if !ok || len(name) != 6 {
			continue
		}
		id, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		g, err := snapGen(filepath.Join(r.cfg.Dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out[id] = g
	}
	return out, nil
}

func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

func walHeader(gen uint64) []byte {
	b := append([]byte(walMagic), make([]byte, 8)...)
	binary.LittleEndian.PutUint64(b[8:], gen)
	return b
}

// recover reads the snapshots' gens and replays the log into pending,
// cutting a torn tail (not in ReadOnly), then opens the log for appending.
func (r *Rollup) recover() error {
	snaps, err := r.snapshots()
	if err != nil {
		return err
	}
	path := filepath.Join(r.cfg.Dir, walName)
	f, err := os.Open(path)
	var gen uint64
	good := int64(0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		for _, g := range snaps {
			gen = max(gen, g)
		}
	case err != nil:
		return fmt.Errorf("report: %w", err)
	default:
		gen, good, err = r.replay(f, path)
		f.Close()
		if err != nil {
			return err
		}
		for m := range r.pending {
			if snaps[m] > gen {
				delete(r.pending, m) // already folded in by an interrupted checkpoint
			}
		}
	}
	r.gen = gen
	if r.cfg.ReadOnly {
		return nil
	}
	if good == 0 {
		// No usable log: start one.
		if err := writeFileSync(path, walHeader(gen)); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		good = hdrLen
	}
	w, err := os.OpenFile(path, os.O_RDWR, 0o640)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := w.Truncate(good); err != nil {
		w.Close()
		return fmt.Errorf("report: %w", err)
	}
	if _, err := w.Seek(good, io.SeekStart); err != nil {
		w.Close()
		return fmt.Errorf("report: %w", err)
	}
	r.wal, r.walSize = w, good
	return nil
}

// replay applies the log's frames and returns its gen and the length of its
// good prefix (0 when the header is bad).
func (r *Rollup) replay(f *os.File, path string) (uint64, int64, error) {
	br := bufio.NewReaderSize(f, 1<<16)
	var h [hdrLen]byte
	if _, err := io.ReadFull(br, h[:]); err != nil || string(h[:8]) != walMagic {
		r.log.Warn("report: rollup log has no valid header; starting a new one", "file", path)
		gens, _ := r.snapshots()
		var g uint64
		for _, x := range gens {
			g = max(g, x)
		}
		return g, 0, nil
	}
	gen := binary.LittleEndian.Uint64(h[8:])
	good := int64(hdrLen)
	in := map[string]string{}
	var fh [8]byte
	for {
		if _, err := io.ReadFull(br, fh[:]); err != nil {
			if err != io.EOF {
				r.log.Warn("report: torn rollup log tail dropped", "file", path, "offset", good)
			}
			return gen, good, nil
		}
		n := binary.LittleEndian.Uint32(fh[:4])
		if n > maxFrame {
			r.log.Warn("report: bad rollup log frame dropped", "file", path, "offset", good)
			return gen, good, nil
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil || crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(fh[4:]) {
			r.log.Warn("report: torn rollup log tail dropped", "file", path, "offset", good)
			return gen, good, nil
		}
		d := delta{}
		if err := decodeRows(p, d, in); err != nil {
			r.log.Warn("report: bad rollup log frame dropped", "file", path, "offset", good, "err", err)
			return gen, good, nil
		}
		r.applyLocked(d)
		good += int64(8 + n)
	}
}

// checkpointLocked folds pending into the snapshots (gen+1), then starts a
// new log with gen+1. Called with r.mu held. A failure part-way leaves some
// months in newer snapshots than the log: the Rollup then refuses writes
// until reopened (recovery sorts it out exactly), rather than risk counting
// those months twice or losing rows a crash would skip.
func (r *Rollup) checkpointLocked() (err error) {
	r.lastCkpt = r.cfg.Now()
	if r.err != nil {
		return r.err
	}
	if len(r.pending) == 0 && r.walSize <= hdrLen {
		return nil
	}
	next := r.gen + 1
	var written []int
	defer func() {
		if err != nil {
			for _, id := range written {
				delete(r.pending, id) // in the snapshot now
			}
			r.err = err
		}
	}()
	for id, d := range r.pending {
		path := filepath.Join(r.cfg.Dir, snapName(id))
		rows, _, err := readSnapshot(path)
		if err != nil {
			return err
		}
		if rows == nil {
			rows = d
		} else {
			rows.merge(d)
		}
		b := append([]byte(snapMagic), make([]byte, 8)...)
		binary.LittleEndian.PutUint64(b[8:], next)
		b = appendRows(b, rows)
		b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
		if err := writeFileSync(path, b); err != nil {
			return fmt.Errorf("report: checkpoint: %w", err)
		}
		written = append(written, id)
	}
	if err := syncDir(r.cfg.Dir); err != nil {
		return fmt.Errorf("report: checkpoint: %w", err)
	}
	path := filepath.Join(r.cfg.Dir, walName)
	if err := writeFileSync(path, walHeader(next)); err != nil {
		return fmt.Errorf("report: checkpoint: %w", err)
	}
	if err := syncDir(r.cfg.Dir); err != nil {
		return fmt.Errorf("report: checkpoint: %w", err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("report: checkpoint: %w", err)
	}
	if r.wal != nil {
		r.wal.Close()
	}
	r.wal, r.walSize, r.gen = w, hdrLen, next
	r.pending = map[int]delta{}
	r.log.Info("report: rollup checkpoint", "gen", next)
	return nil
}
