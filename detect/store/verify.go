package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/jichitai/seccloud/detect/store/internal/format"
)

// Report is the outcome of Verify.
type Report struct {
	// Segments counts the sealed segments whose bytes were checked.
	Segments int
	// Bytes counts the bytes hashed.
	Bytes int64
	// Expired counts chain records of segments deleted by retention; their
	// links are still checked, their bytes are gone.
	Expired int
	// Open counts the parts still taking events; they join the chain when
	// sealed and are not checked.
	Open int
	// Head is the hex link hash of the newest sealed segment ("" when
	// none). Record it outside the appliance to detect a rewritten chain.
	Head string
	// Broken names the first segment, in chain order, whose bytes or link
	// do not match (or "MANIFEST" when the chain file itself is damaged);
	// empty when everything matches.
	Broken string
	// Problem says what did not match.
	Problem string
}

// OK reports whether nothing was found broken.
func (r Report) OK() bool { return r.Broken == "" }

// Verify recomputes the SHA-256 of every sealed segment and the hash chain
// that links each to the previous one, and reports the first segment whose
// bytes or link do not match, and sealed segments missing from the chain.
// It returns a non-nil error wrapping ErrVerify when something is broken
// (the Report says what), or another error when it could not check.
func (s *Store) Verify(ctx context.Context) (Report, error) {
	s.expMu.Lock()
	defer s.expMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Report{}, ErrClosed
	}
	mb, err := os.ReadFile(filepath.Join(s.cfg.Dir, manName))
	s.mu.Unlock()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return Report{}, fmt.Errorf("store: verify: %w", err)
	}
	return verifyChain(ctx, s.cfg.Dir, mb)
}

// VerifyDir verifies the store in dir without opening it (see
// Store.Verify): use it for a store another process writes. A segment that
// the writer expires during the check may be reported missing; check
// again.
func VerifyDir(ctx context.Context, dir string) (Report, error) {
	mb, err := os.ReadFile(filepath.Join(dir, manName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return Report{}, fmt.Errorf("store: verify: %w", err)
	}
	return verifyChain(ctx, dir, mb)
}

func verifyChain(ctx context.Context, dir string, mb []byte) (Report, error) {
	var rep Report
	broken := func(name, problem string) (Report, error) {
		rep.Broken, rep.Problem = name, problem
		return rep, fmt.Errorf("%w: segment %s: %s", ErrVerify, name, problem)
	}
	recs, _, bad, perr := parseManifest(mb)
	if bad != 0 {
		return broken(manName, fmt.Sprintf("line %d: %v", bad, perr))
	}
	expired := make(map[string]uint64)
	for _, r := range recs {
		if r.expire {
			expired[r.name] = r.seq
		}
	}
	live := make(map[string]bool)
	sealed := make(map[string]uint64)
	var prev [32]byte
	var last uint64
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if r.expire {
			if seq, ok := sealed[r.name]; !ok || seq != r.seq {
				return broken(r.name, "expiry recorded for a segment the chain does not hold")
			}
			rep.Expired++
			delete(live, r.name)
			continue
		}
		if _, dup := sealed[r.name]; dup {
			return broken(r.name, "sealed twice in the chain")
		}
		if r.seq != last+1 {
			return broken(r.name, fmt.Sprintf("sequence number %d does not follow %d (a segment is missing from the chain)", r.seq, last))
		}
		if r.prev != prev {
			return broken(r.name, "link to the previous segment does not match")
		}
		if format.Link(r.prev, r.body, r.seq, r.name) != r.link {
			return broken(r.name, "chain hash does not match its record")
		}
		sealed[r.name], prev, last = r.seq, r.link, r.seq
		if seq, ok := expired[r.name]; ok && seq == r.seq {
			continue
		}
		live[r.name] = true
		n, problem, err := checkSegment(dir, r)
		if err != nil {
			return rep, err
		}
		if problem != "" {
			return broken(r.name, problem)
		}
		rep.Segments++
		rep.Bytes += n
	}
	if last > 0 {
		rep.Head = hex.EncodeToString(prev[:])
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, fmt.Errorf("store: verify: %w", err)
	}
	for _, e := range ents {
		_, _, ext, ok := parseName(e.Name())
		switch {
		case !ok:
		case ext == extOpen:
			rep.Open++
		case !live[e.Name()]:
			if _, ok := expired[e.Name()]; ok {
				continue // expiry recorded, removal interrupted
			}
			return broken(e.Name(), "sealed segment is not in the chain")
		}
	}
	return rep, nil
}

// checkSegment hashes one sealed segment and compares it with its chain
// record; problem is non-empty when it does not match.
func checkSegment(dir string, r manRec) (int64, string, error) {
	f, err := os.Open(filepath.Join(dir, r.name))
	if errors.Is(err, os.ErrNotExist) {
		return 0, "file is missing", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("store: verify: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, "", fmt.Errorf("store: verify: %w", err)
	}
	if st.Size() != r.size {
		return 0, fmt.Sprintf("size %d, chain records %d", st.Size(), r.size), nil
	}
	ft, err := readFooter(f, st.Size())
	if err != nil {
		return 0, fmt.Sprintf("footer: %v", err), nil
	}
	h := sha256.New()
	body := st.Size() - format.FooterSize
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, body)); err != nil {
		return 0, "", fmt.Errorf("store: verify: %s: %w", r.name, err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	switch {
	case sum != r.body:
		return 0, "content hash does not match (bytes changed)", nil
	case ft.BodyHash != r.body || ft.Prev != r.prev || ft.Link != r.link || ft.Seq != r.seq:
		return 0, "footer does not match the chain", nil
	}
	return st.Size(), "", nil
}
