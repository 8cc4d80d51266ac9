package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect/store/internal/format"
)

// seal compresses every buffered stream of p into blocks, appends the index
// and the chained footer, fsyncs, records the seal in the manifest and
// renames the part to its sealed name. The caller checkpoints afterwards.
func (s *Store) seal(p *openPart) error {
	keys := make([]streamKey, 0, len(p.streams))
	for k := range p.streams {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b streamKey) int {
		if c := strings.Compare(a.tenant, b.tenant); c != 0 {
			return c
		}
		return strings.Compare(a.module, b.module)
	})
	for _, k := range keys {
		if err := s.flush(p, k, p.streams[k]); err != nil {
			return err
		}
	}
	idxOff := p.size
	idx := format.AppendIndex(nil, p.blocks)
	if _, err := p.f.WriteAt(idx, idxOff); err != nil {
		return fmt.Errorf("store: seal %s: %w", p.name, err)
	}
	bodyLen := idxOff + int64(len(idx))
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(p.f, 0, bodyLen)); err != nil {
		return fmt.Errorf("store: seal %s: hash: %w", p.name, err)
	}
	name := partName(p.day, p.num, extSealed)
	ft := format.Footer{IndexOff: idxOff, Seq: s.seq + 1, Prev: s.head}
	h.Sum(ft.BodyHash[:0])
	ft.Link = format.Link(ft.Prev, ft.BodyHash, ft.Seq, name)
	if _, err := p.f.WriteAt(format.AppendFooter(nil, &ft), bodyLen); err != nil {
		return fmt.Errorf("store: seal %s: %w", p.name, err)
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("store: seal %s: %w", p.name, err)
	}
	rec := manRec{seq: ft.Seq, name: name, size: bodyLen + format.FooterSize, body: ft.BodyHash, prev: ft.Prev, link: ft.Link}
	if err := s.appendManifest(rec.String()); err != nil {
		return err
	}
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("store: seal %s: %w", p.name, err)
	}
	p.f = nil
	if err := os.Rename(filepath.Join(s.cfg.Dir, p.name), filepath.Join(s.cfg.Dir, name)); err != nil {
		return fmt.Errorf("store: seal %s: %w", p.name, err)
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		return err
	}
	s.seq, s.head = ft.Seq, ft.Link
	s.sealed[p.day] = append(s.sealed[p.day], name)
	delete(s.parts, p.day)
	s.log.Info("store: sealed segment", "segment", name, "seq", ft.Seq, "bytes", rec.size, "blocks", len(p.blocks))
	return nil
}

// checkpoint fsyncs every open part and replaces the write-ahead log by one
// that starts with the parts' committed lengths and carries the records not
// yet compressed into blocks.
func (s *Store) checkpoint() error {
	cp := format.Checkpoint{Seq: s.seq}
	days := make([]uint32, 0, len(s.parts))
	for d := range s.parts {
		days = append(days, d)
	}
	slices.Sort(days)
	for _, d := range days {
		p := s.parts[d]
		if err := p.f.Sync(); err != nil {
			return fmt.Errorf("store: checkpoint %s: %w", p.name, err)
		}
		cp.Parts = append(cp.Parts, format.PartLen{Name: p.name, Len: p.size})
	}
	buf := append([]byte(nil), format.WALMagic...)
	buf = format.BeginFrame(buf, format.FrameCheckpoint)
	buf = format.AppendCheckpoint(buf, &cp)
	format.FinishFrame(buf, len(format.WALMagic))
	for _, d := range days {
		for _, st := range s.parts[d].streams {
			if len(st.recs) == 0 {
				continue
			}
			start := len(buf)
			buf = format.BeginFrame(buf, format.FrameBatch)
			for _, r := range st.recs {
				buf = format.AppendBatchRecord(buf, st.buf[r.off:r.off+r.n])
			}
			format.FinishFrame(buf, start)
		}
	}
	tmp := filepath.Join(s.cfg.Dir, walName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.cfg.Dir, walName)); err != nil {
		f.Close()
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		f.Close()
		return err
	}
	if s.wal != nil {
		s.wal.Close()
	}
	s.wal, s.walSize, s.walBase = f, int64(len(buf)), int64(len(buf))
	s.log.Debug("store: checkpoint", "parts", len(cp.Parts), "wal_bytes", len(buf))
	return nil
}

// Expire deletes every sealed segment part of the UTC days wholly older
// than the retention (day end + Retention <= Now) and returns how many it
// deleted. Each deletion is first recorded in the manifest, so Verify still
// checks the chain across deleted segments. Open parts of such days are
// deleted once sealed. The store also expires automatically on Open and on
// the first write of each UTC day.
func (s *Store) Expire(ctx context.Context) (int, error) {
	if s.cfg.ReadOnly {
		return 0, ErrReadOnly
	}
	if s.cfg.Retention < 0 {
		return 0, nil
	}
	s.expMu.Lock()
	defer s.expMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return s.expire(s.cfg.Now())
}

// expire runs with mu and expMu held.
func (s *Store) expire(now time.Time) (int, error) {
	if s.cfg.Retention < 0 {
		return 0, nil
	}
	var days []uint32
	for d := range s.sealed {
		if !dayStart(d).Add(24*time.Hour + s.cfg.Retention).After(now) {
			days = append(days, d)
		}
	}
	slices.Sort(days)
	n := 0
	for _, d := range days {
		for _, name := range s.sealed[d] {
			seq, ok := s.manSeq[name]
			if !ok {
				s.log.Warn("store: expiring segment missing from manifest", "segment", name)
			}
			if err := s.appendManifest(fmt.Sprintf("expire %d %s %s", seq, name, now.UTC().Format(time.RFC3339))); err != nil {
				return n, err
			}
			if err := os.Remove(filepath.Join(s.cfg.Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return n, fmt.Errorf("store: expire: %w", err)
			}
			delete(s.manSeq, name)
			n++
			s.log.Info("store: expired segment", "segment", name)
		}
		delete(s.sealed, d)
	}
	if n > 0 {
		if err := syncDir(s.cfg.Dir); err != nil {
			return n, err
		}
	}
	return n, nil
}

// The manifest is a text file of lines:
//
//	seal <seq> <name> <size> <body sha256 hex> <prev link hex> <link hex>
//	expire <seq> <name> <RFC 3339 time>
type manRec struct {
	seq              uint64
	name             string
	size             int64
	body, prev, link [32]byte
	expire           bool
}

func (r manRec) String() string {
	return fmt.Sprintf("seal %d %s %d %x %x %x", r.seq, r.name, r.size, r.body, r.prev, r.link)
}

// parseManifest parses manifest bytes. It returns the records of every
// complete line; a last line without newline is a torn tail (its offset is
// returned as good). A malformed complete line is reported in bad (1-based
// line number) and skipped.
func parseManifest(b []byte) (recs []manRec, good int, bad int, err error) {
	line := 0
	for good < len(b) {
		i := bytes.IndexByte(b[good:], '\n')
		if i < 0 {
			break
		}
		line++
		r, perr := parseManLine(string(b[good : good+i]))
		good += i + 1
		if perr != nil {
			if bad == 0 {
				bad, err = line, perr
			}
			continue
		}
		recs = append(recs, r)
	}
	return recs, good, bad, err
}

func parseManLine(l string) (manRec, error) {
	f := strings.Fields(l)
	var r manRec
	var err error
	switch {
	case len(f) == 7 && f[0] == "seal":
		if r.seq, err = strconv.ParseUint(f[1], 10, 64); err != nil {
			return r, errors.New("bad sequence number")
		}
		r.name = f[2]
		if r.size, err = strconv.ParseInt(f[3], 10, 64); err != nil || r.size < 0 {
			return r, errors.New("bad size")
		}
		for i, h := range []*[32]byte{&r.body, &r.prev, &r.link} {
			if len(f[4+i]) != 64 {
				return r, errors.New("bad hash")
			}
			if _, err := hex.Decode(h[:], []byte(f[4+i])); err != nil {
				return r, errors.New("bad hash")
			}
		}
	case len(f) == 4 && f[0] == "expire":
		if r.seq, err = strconv.ParseUint(f[1], 10, 64); err != nil {
			return r, errors.New("bad sequence number")
		}
		r.name, r.expire = f[2], true
	default:
		return r, errors.New("unknown record")
	}
	if _, _, ext, ok := parseName(r.name); !ok || ext != extSealed {
		return r, fmt.Errorf("bad segment name %q", r.name)
	}
	return r, nil
}

func (s *Store) appendManifest(line string) error {
	if _, err := s.man.WriteString(line + "\n"); err != nil {
		return fmt.Errorf("store: manifest: %w", err)
	}
	if err := s.man.Sync(); err != nil {
		return fmt.Errorf("store: manifest: %w", err)
	}
	if r, err := parseManLine(line); err == nil && !r.expire {
		s.manSeq[r.name] = r.seq
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: sync dir: %w", err)
	}
	return nil
}
