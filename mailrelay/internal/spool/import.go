package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ledgerName is the file, beside the segments, that lists the id of every
// message imported from another spool, one per line.
const ledgerName = "imported.ids"

// importLedger remembers durably the ids of the messages imported from
// other spools, so that importing one queue twice (or again after a crash
// half-way) never queues a message twice. Its methods are called with
// Spool.impMu held (Rehome) or before the Spool is shared (Open).
type importLedger struct {
	f      *os.File
	ids    map[string]struct{}
	noSync bool
}

// open loads the ledger of dir and adds to it the live entries whose
// newest record is an import record: they were written by a Rehome that
// died before its ledger write, and are known here from now on.
func (l *importLedger) open(dir string, noSync bool, live []Entry) error {
	l.noSync = noSync
	l.ids = make(map[string]struct{})
	path := filepath.Join(dir, ledgerName)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: import ledger: %w", err)
	}
	existed := err == nil
	// A last line without its newline was being written when the process
	// died: drop it (its message, if durable, is re-added below).
	if keep := bytes.LastIndexByte(b, '\n') + 1; keep != len(b) {
		if err := os.Truncate(path, int64(keep)); err != nil {
			return fmt.Errorf("spool: import ledger: %w", err)
		}
		b = b[:keep]
	}
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if len(line) > 0 {
			l.ids[string(line)] = struct{}{}
		}
	}
	l.f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: import ledger: %w", err)
	}
	if !existed && !noSync {
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	var missing []string
	for _, e := range live {
		if _, ok := l.ids[e.ID]; e.imported && !ok {
			missing = append(missing, e.ID)
		}
	}
	return l.add(missing)
}

func (l *importLedger) has(id string) bool {
	_, ok := l.ids[id]
	return ok
}

// add appends ids and returns once they are durable.
func (l *importLedger) add(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	var b []byte
	for _, id := range ids {
		b = append(append(b, id...), '\n')
	}
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("spool: import ledger: %w", err)
	}
	if !l.noSync {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("spool: import ledger: %w", err)
		}
	}
	for _, id := range ids {
		l.ids[id] = struct{}{}
	}
	return nil
}

func (l *importLedger) close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// RehomeStats counts what Rehome did.
type RehomeStats struct {
	// Imported is the number of messages newly queued in this spool.
	Imported int
	// Duplicates is the number of messages found in the source that this
	// spool had imported before (an earlier run that stopped half-way, or
	// another copy of the same queue): not queued again, only marked done
	// in the source.
	Duplicates int
	// Bytes is the size of the imported messages' data.
	Bytes int64
}

// Rehomed is one message Rehome queued in this spool.
type Rehomed struct {
	// Entry is the message as it is now stored here: the source's id,
	// generation and envelope, and a Ref into this spool.
	Entry
	// Data is the message data.
	Data []byte
}

// Rehome imports every live message of the spool in srcDir — the queue of
// another node, on a copied disk or a shared mount — into s, and calls each
// (if not nil) for every message newly queued, once it is durable here.
//
// The protocol never loses a message and never queues one twice:
//
//  1. the source is opened with Open, so it is locked and recovered as
//     its own node would do; a node still running holds the lock and
//     Rehome fails with ErrLocked;
//  2. messages are written here as import records under their source ids
//     (group commit, fsync) and their ids are appended to this spool's
//     import ledger (fsync) before each is called — a crash between the
//     two is repaired by Open, which adds live import records to the
//     ledger before anything can deliver them;
//  3. then each is marked done in the source, and the source is closed
//     (fsync), so the node that owned it delivers nothing of it when it
//     returns. Messages already in the ledger are only marked done.
//
// Running Rehome twice on the same source imports nothing the second time.
// Rehome calls on one Spool run one at a time; other operations go on
// meanwhile. It returns what it did so far with an error.
func (s *Spool) Rehome(srcDir string, each func(Rehomed)) (RehomeStats, error) {
	var st RehomeStats
	if err := checkSource(s.dir, srcDir); err != nil {
		return st, err
	}
	s.impMu.Lock()
	defer s.impMu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return st, ErrClosed
	}
	src, ents, err := Open(Options{Dir: srcDir, NoSync: s.noSync})
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return st, fmt.Errorf("%w (is the node that owns it still running?)", err)
		}
		return st, err
	}
	const maxBatch, maxBatchBytes = 256, 32 << 20
	type item struct {
		e    Entry // in the source
		data []byte
		req  *request
	}
	var batch []item
	var batchBytes int64
	flush := func() error {
		defer func() { batch, batchBytes = batch[:0], 0 }()
		for i := range batch {
			it := &batch[i]
			rec, dataOff := encodeRecord(recImport, it.e.ID, it.e.Gen, it.e.Envelope, it.data)
			it.req = &request{rec: rec, sync: true, dataOff: dataOff, dataLen: int64(len(it.data)), err: make(chan error, 1)}
			if err := s.submit(it.req); err != nil {
				for _, prev := range batch[:i] {
					<-prev.req.err
				}
				return err
			}
		}
		var errs []error
		ids := make([]string, 0, len(batch))
		for _, it := range batch {
			if err := <-it.req.err; err != nil {
				errs = append(errs, err)
				continue
			}
			ids = append(ids, it.e.ID)
		}
		// Whatever became durable is recorded, even if part of the batch
		// failed; Open would add it anyway.
		if err := s.imp.add(ids); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		for _, it := range batch {
			st.Imported++
			st.Bytes += int64(len(it.data))
			if each != nil {
				e := it.e
				e.Ref, e.imported = it.req.ref, true
				each(Rehomed{Entry: e, Data: it.data})
			}
			src.Done(it.e.ID, it.e.Ref)
		}
		return nil
	}
	for _, e := range ents {
		if s.imp.has(e.ID) {
			st.Duplicates++
			src.Done(e.ID, e.Ref)
			continue
		}
		if err := validID(e.ID); err != nil || bytes.IndexByte([]byte(e.ID), '\n') >= 0 {
			return st, errors.Join(fmt.Errorf("spool: source holds a bad id %q", e.ID), src.Close())
		}
		data, err := src.ReadData(e.Ref)
		if err != nil {
			return st, errors.Join(err, src.Close())
		}
		batch = append(batch, item{e: e, data: data})
		batchBytes += int64(len(data))
		if len(batch) >= maxBatch || batchBytes >= maxBatchBytes {
			if err := flush(); err != nil {
				return st, errors.Join(err, src.Close())
			}
		}
	}
	if len(batch) > 0 {
		if err := flush(); err != nil {
			return st, errors.Join(err, src.Close())
		}
	}
	if err := src.Close(); err != nil {
		return st, fmt.Errorf("spool: marking the source done: %w", err)
	}
	return st, nil
}

// checkSource refuses a source that is this spool's own directory or
// holds no spool (a typing error must not create an empty one).
func checkSource(own, src string) error {
	a, err1 := filepath.Abs(own)
	b, err2 := filepath.Abs(src)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if a == b {
		return fmt.Errorf("spool: %s is this queue's own directory", src)
	}
	st, err := os.Stat(b)
	if err != nil {
		return fmt.Errorf("spool: source: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("spool: source %s is not a directory", src)
	}
	segs, _ := filepath.Glob(filepath.Join(b, "seg-*.log"))
	if len(segs) == 0 {
		return fmt.Errorf("spool: source %s holds no queue (no seg-*.log files)", src)
	}
	return nil
}
