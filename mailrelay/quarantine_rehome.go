package mailrelay

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// QuarantineRehome says what Quarantine.Rehome did.
type QuarantineRehome struct {
	// Source is the quarantine directory read.
	Source string `json:"source"`
	// Imported are the ids of the items now held here.
	Imported []string `json:"imported"`
	// Duplicates counts items this quarantine already held (an earlier
	// run): only marked in the source.
	Duplicates int `json:"duplicates"`
	// Skipped counts unreadable items (metadata without its message, bad
	// JSON); they stay in the source as they were.
	Skipped int `json:"skipped"`
}

// rehomedSuffix is appended to the files of a source item once it is held
// here: the node that owned it no longer lists it when it returns.
const rehomedSuffix = ".rehomed"

// Rehome takes over the quarantine of another relay that is gone: every
// item (<id>.eml and <id>.json) in dir — its quarantine directory, on a
// copied disk or a shared mount — is copied here durably (temp file, fsync,
// rename, directory fsync; message first, metadata second) under its id,
// listed at once, forwarded to the isolated server if configured and not
// yet forwarded, and then marked in dir by renaming both files to
// "<name>.rehomed", so the other relay does not list it again when it
// returns. Items already held here are only marked, so a second run, or a
// run after a crash half-way, copies nothing twice.
//
// The other relay must not be running (its quarantine has no lock: take
// over its mail queue first — Server.Rehome refuses a live one — or fence
// the node). Safe for concurrent use with the other methods.
func (q *Quarantine) Rehome(dir string) (QuarantineRehome, error) {
	rep := QuarantineRehome{Source: dir}
	own, err1 := filepath.Abs(q.cfg.Dir)
	src, err2 := filepath.Abs(dir)
	if err := errors.Join(err1, err2); err != nil {
		return rep, fmt.Errorf("mailrelay: quarantine rehome: %w", err)
	}
	if own == src {
		return rep, fmt.Errorf("mailrelay: quarantine rehome: %s is this quarantine's own directory", dir)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return rep, fmt.Errorf("mailrelay: quarantine rehome: %w", err)
	}
	marked := false
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		meta := filepath.Join(src, e.Name())
		eml := filepath.Join(src, id+".eml")
		var it QuarantineItem
		b, err := os.ReadFile(meta)
		if err == nil {
			err = json.Unmarshal(b, &it)
		}
		if err != nil || it.ID != id || !validID(id) {
			q.log.Error("mailrelay: quarantine rehome: unreadable item skipped", "file", meta, "err", err)
			rep.Skipped++
			continue
		}
		q.mu.Lock()
		_, held := q.items[id]
		q.mu.Unlock()
		if held {
			rep.Duplicates++
		} else {
			data, err := os.ReadFile(eml)
			if err != nil {
				q.log.Error("mailrelay: quarantine rehome: item without its message skipped", "id", id, "err", err)
				rep.Skipped++
				continue
			}
			if err := q.adopt(&it, data); err != nil {
				return rep, err
			}
			rep.Imported = append(rep.Imported, id)
		}
		if err := errors.Join(os.Rename(meta, meta+rehomedSuffix), os.Rename(eml, eml+rehomedSuffix)); err != nil {
			return rep, fmt.Errorf("mailrelay: quarantine rehome: marking the source: %w", err)
		}
		marked = true
	}
	if marked {
		if err := syncDirPath(src); err != nil {
			return rep, fmt.Errorf("mailrelay: quarantine rehome: %w", err)
		}
	}
	if len(rep.Imported) > 0 || rep.Duplicates > 0 {
		q.log.Info("mailrelay: quarantine re-homed", "source", dir, "imported", len(rep.Imported), "duplicates", rep.Duplicates)
	}
	return rep, nil
}

// adopt stores an item taken from another quarantine as it was (its size,
// times, forwarded and released marks kept).
func (q *Quarantine) adopt(it *QuarantineItem, data []byte) error {
	if err := writeFileSync(q.emlPath(it.ID), data); err != nil {
		return fmt.Errorf("mailrelay: quarantine rehome: %w", err)
	}
	if err := q.writeMeta(it); err != nil {
		os.Remove(q.emlPath(it.ID))
		return err
	}
	q.mu.Lock()
	q.items[it.ID] = it
	q.mu.Unlock()
	if q.cfg.Forward != nil && it.Forwarded == nil && it.Reason != "sanitized" {
		q.forwardLater(it.ID)
	}
	return nil
}

func syncDirPath(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
