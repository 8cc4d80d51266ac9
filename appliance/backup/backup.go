// Package backup makes incremental, verifiable backups of a directory tree
// (the appliance's data directory: events, incidents, mail queue,
// quarantine, config generations) to a second location, restores them, and
// proves a backup restores by restoring it into a scratch directory and
// checking every file's SHA-256.
//
// Layout of a backup location:
//
//	objects/ab/abcdef…   file contents, named by their SHA-256 (each stored once)
//	snapshots/ID.json    one manifest per backup: every file's path, size, mode, hash
//
// A file whose contents did not change since the last backup is not copied
// again (its object already exists), so daily backups of an append-only
// store cost only what was appended to it. Every object and manifest is
// written to a temporary name, fsynced and renamed, so a backup cut short by
// a crash leaves no half-written object that a later backup would trust.
//
// Backing up a live directory: files that vanish while the backup runs (a
// segment renamed when sealed) are skipped and the tree is listed again
// until no new file appears (at most [Config.Passes] times), and the files
// matched by [Config.First] (a store's manifest) are copied before the
// rest, so the copy of a manifest never names data newer than the copied
// data files. Each file is copied as it was when read.
package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Config configures a Backup.
type Config struct {
	// Source is the directory backed up. Required.
	Source string
	// Dest is the backup location, a directory (created if missing). It
	// must not lie inside Source. Required.
	Dest string
	// Keep is how many snapshots Prune keeps (the newest). Default 14.
	Keep int
	// Exclude lists slash-separated glob patterns (path.Match) of paths
	// relative to Source that are not backed up; a pattern without a slash
	// matches a base name anywhere. Lock and run files belong here.
	Exclude []string
	// First lists patterns (as Exclude) of files copied before all others.
	First []string
	// Passes bounds how many times the tree is listed while new files keep
	// appearing. Default 3.
	Passes int
	// Logger receives progress and skipped files. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// File is one file in a snapshot.
type File struct {
	Path   string      `json:"path"` // slash-separated, relative to Source
	Size   int64       `json:"size"`
	Mode   fs.FileMode `json:"mode"`
	MTime  time.Time   `json:"mtime"`
	SHA256 string      `json:"sha256"`
}

// Snapshot is the manifest of one backup.
type Snapshot struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Source  string    `json:"source"`
	Files   []File    `json:"files"`
	// Bytes is the total size of Files; Copied how many bytes this backup
	// had to store because no earlier backup held them.
	Bytes  int64 `json:"bytes"`
	Copied int64 `json:"copied"`
	// Skipped lists files that vanished or could not be read while backing up.
	Skipped []string `json:"skipped,omitempty"`
}

// Report is the result of Verify.
type Report struct {
	Snapshot string
	Files    int
	Bytes    int64
	// Bad lists the files whose object is missing or whose restored bytes
	// do not hash to the manifest's SHA-256.
	Bad []string
}

// OK reports whether every file verified.
func (r Report) OK() bool { return len(r.Bad) == 0 }

// ErrVerify is wrapped by the error Verify returns when a file does not
// restore to its recorded hash.
var ErrVerify = errors.New("backup: verify failed")

// Backup makes, lists, verifies, restores and prunes snapshots. Its methods
// are safe for concurrent use by one process; two processes must not write
// the same Dest at once.
type Backup struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg and returns a Backup. It creates Dest.
func New(cfg Config) (*Backup, error) {
	if cfg.Source == "" || cfg.Dest == "" {
		return nil, errors.New("backup: Source and Dest are required")
	}
	src, err := filepath.Abs(cfg.Source)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	dst, err := filepath.Abs(cfg.Dest)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if dst == src || strings.HasPrefix(dst, src+string(filepath.Separator)) {
		return nil, fmt.Errorf("backup: destination %s lies inside the source %s", dst, src)
	}
	cfg.Source, cfg.Dest = src, dst
	if cfg.Keep <= 0 {
		cfg.Keep = 14
	}
	if cfg.Passes <= 0 {
		cfg.Passes = 3
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for _, p := range append(slices.Clone(cfg.Exclude), cfg.First...) {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("backup: pattern %q: %w", p, err)
		}
	}
	for _, d := range []string{"objects", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(dst, d), 0o750); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
	}
	return &Backup{cfg: cfg, log: cfg.Logger}, nil
}

func match(patterns []string, rel string) bool {
	for _, p := range patterns {
		name := rel
		if !strings.Contains(p, "/") {
			name = path.Base(rel)
		}
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// Run makes a new snapshot of Source and returns its manifest.
func (b *Backup) Run(ctx context.Context) (Snapshot, error) {
	now := b.cfg.Now().UTC()
	snap := Snapshot{ID: now.Format("20060102T150405.000000000Z"), Created: now, Source: b.cfg.Source}
	prev := b.latestIndex()
	done := make(map[string]bool)
	for pass := 0; pass < b.cfg.Passes; pass++ {
		todo, err := b.list(done)
		if err != nil {
			return Snapshot{}, err
		}
		if len(todo) == 0 {
			break
		}
		for _, rel := range todo {
			if err := ctx.Err(); err != nil {
				return Snapshot{}, err
			}
			done[rel] = true
			f, copied, err := b.copyIn(rel, prev)
			if errors.Is(err, fs.ErrNotExist) {
				b.log.Info("backup: file vanished while backing up", "path", rel)
				continue
			}
			if err != nil {
				return Snapshot{}, err
			}
			snap.Files = append(snap.Files, f)
			snap.Bytes += f.Size
			snap.Copied += copied
		}
	}
	sort.Slice(snap.Files, func(i, j int) bool { return snap.Files[i].Path < snap.Files[j].Path })
	data, err := json.MarshalIndent(snap, "", " ")
	if err != nil {
		return Snapshot{}, fmt.Errorf("backup: %w", err)
	}
	if err := writeAtomic(filepath.Join(b.cfg.Dest, "snapshots", snap.ID+".json"), data); err != nil {
		return Snapshot{}, err
	}
	b.log.Info("backup: snapshot written", "id", snap.ID, "files", len(snap.Files), "bytes", snap.Bytes, "copied", snap.Copied)
	return snap, nil
}

// list returns the regular files under Source not yet in done, First
// matches first, each group in path order.
func (b *Backup) list(done map[string]bool) ([]string, error) {
	var first, rest []string
	err := filepath.WalkDir(b.cfg.Source, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != b.cfg.Source {
				return nil // removed while walking
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(b.cfg.Source, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if done[rel] || match(b.cfg.Exclude, rel) {
			return nil
		}
		if match(b.cfg.First, rel) {
			first = append(first, rel)
		} else {
			rest = append(rest, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backup: list %s: %w", b.cfg.Source, err)
	}
	return append(first, rest...), nil
}

// copyIn stores one file's contents as an object unless an object with the
// same hash exists. A file whose size and mtime equal the previous
// snapshot's and whose object exists is not read again.
func (b *Backup) copyIn(rel string, prev map[string]File) (File, int64, error) {
	src := filepath.Join(b.cfg.Source, filepath.FromSlash(rel))
	fi, err := os.Stat(src)
	if err != nil {
		return File{}, 0, err
	}
	if p, ok := prev[rel]; ok && p.Size == fi.Size() && p.MTime.Equal(fi.ModTime()) && p.Mode == fi.Mode() {
		if _, err := os.Stat(b.object(p.SHA256)); err == nil {
			return p, 0, nil
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return File{}, 0, err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Join(b.cfg.Dest, "objects"), ".tmp-*")
	if err != nil {
		return File{}, 0, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), in)
	if err != nil {
		tmp.Close()
		return File{}, 0, fmt.Errorf("backup: copy %s: %w", rel, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	f := File{Path: rel, Size: n, Mode: fi.Mode(), MTime: fi.ModTime(), SHA256: sum}
	obj := b.object(sum)
	if _, err := os.Stat(obj); err == nil {
		tmp.Close()
		return f, 0, nil
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return File{}, 0, fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return File{}, 0, fmt.Errorf("backup: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(obj), 0o750); err != nil {
		return File{}, 0, fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), obj); err != nil {
		return File{}, 0, fmt.Errorf("backup: %w", err)
	}
	if err := syncDir(filepath.Dir(obj)); err != nil {
		return File{}, 0, err
	}
	return f, n, nil
}

func (b *Backup) object(sum string) string {
	return filepath.Join(b.cfg.Dest, "objects", sum[:2], sum)
}

// latestIndex returns the newest readable snapshot's files by path.
func (b *Backup) latestIndex() map[string]File {
	snaps, err := b.List()
	if err != nil || len(snaps) == 0 {
		return nil
	}
	s, err := b.Load(snaps[len(snaps)-1])
	if err != nil {
		return nil
	}
	m := make(map[string]File, len(s.Files))
	for _, f := range s.Files {
		m[f.Path] = f
	}
	return m
}

// List returns the snapshot ids, oldest first.
func (b *Backup) List() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(b.cfg.Dest, "snapshots"))
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && !strings.HasPrefix(n, ".") {
			ids = append(ids, n)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Load reads one snapshot's manifest. id "latest" is the newest.
func (b *Backup) Load(id string) (Snapshot, error) {
	if id == "latest" {
		ids, err := b.List()
		if err != nil {
			return Snapshot{}, err
		}
		if len(ids) == 0 {
			return Snapshot{}, fmt.Errorf("backup: no snapshot in %s", b.cfg.Dest)
		}
		id = ids[len(ids)-1]
	}
	if id == "" || strings.ContainsAny(id, `/\`) || strings.HasPrefix(id, ".") {
		return Snapshot{}, fmt.Errorf("backup: bad snapshot id %q", id)
	}
	data, err := os.ReadFile(filepath.Join(b.cfg.Dest, "snapshots", id+".json"))
	if err != nil {
		return Snapshot{}, fmt.Errorf("backup: snapshot %s: %w", id, err)
	}
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return Snapshot{}, fmt.Errorf("backup: snapshot %s: %w", id, err)
	}
	for _, f := range s.Files {
		if !safeRel(f.Path) || len(f.SHA256) != 64 {
			return Snapshot{}, fmt.Errorf("backup: snapshot %s: bad entry %q", id, f.Path)
		}
	}
	return s, nil
}

func safeRel(p string) bool {
	return p != "" && !path.IsAbs(p) && path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../")
}

// Restore writes snapshot id into target, which must not exist or be empty,
// checking each file's hash as it is written. The restored files get their
// recorded mode and modification time.
func (b *Backup) Restore(ctx context.Context, id, target string) (Report, error) {
	s, err := b.Load(id)
	if err != nil {
		return Report{}, err
	}
	if ents, err := os.ReadDir(target); err == nil && len(ents) > 0 {
		return Report{}, fmt.Errorf("backup: restore target %s is not empty", target)
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return Report{}, fmt.Errorf("backup: %w", err)
	}
	rep := Report{Snapshot: s.ID}
	for _, f := range s.Files {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		ok, err := b.restoreFile(f, filepath.Join(target, filepath.FromSlash(f.Path)))
		if err != nil {
			return rep, err
		}
		rep.Files++
		rep.Bytes += f.Size
		if !ok {
			rep.Bad = append(rep.Bad, f.Path)
		}
	}
	if !rep.OK() {
		return rep, fmt.Errorf("%w: %d of %d files in snapshot %s (first %s)", ErrVerify, len(rep.Bad), rep.Files, s.ID, rep.Bad[0])
	}
	return rep, nil
}

// restoreFile copies one object to dst and reports whether both the object
// and the written file hash to f.SHA256.
func (b *Backup) restoreFile(f File, dst string) (bool, error) {
	in, err := os.Open(b.object(f.SHA256))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("backup: %w", err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return false, fmt.Errorf("backup: %w", err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.Mode.Perm()|0o200)
	if err != nil {
		return false, fmt.Errorf("backup: %w", err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return false, fmt.Errorf("backup: restore %s: %w", f.Path, err)
	}
	if err := out.Close(); err != nil {
		return false, fmt.Errorf("backup: %w", err)
	}
	if hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		return false, nil
	}
	_ = os.Chmod(dst, f.Mode.Perm())
	_ = os.Chtimes(dst, f.MTime, f.MTime)
	// Read back what landed on disk.
	got, err := hashFile(dst)
	if err != nil {
		return false, err
	}
	return got == f.SHA256, nil
}

// Verify restores snapshot id into a fresh directory under scratch, checks
// every file, and removes the directory again. check, when not nil, runs on
// the restored tree before removal (e.g. the event store's own chain check)
// and its error fails the verification.
func (b *Backup) Verify(ctx context.Context, id, scratch string, check func(dir string) error) (Report, error) {
	if err := os.MkdirAll(scratch, 0o750); err != nil {
		return Report{}, fmt.Errorf("backup: %w", err)
	}
	dir, err := os.MkdirTemp(scratch, "verify-*")
	if err != nil {
		return Report{}, fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(dir)
	rep, err := b.Restore(ctx, id, dir)
	if err != nil {
		return rep, err
	}
	if check != nil {
		if err := check(dir); err != nil {
			return rep, fmt.Errorf("%w: %w", ErrVerify, err)
		}
	}
	return rep, nil
}

// Prune removes all but the newest Keep snapshots and every object no kept
// snapshot names. It returns how many snapshots and objects it removed.
func (b *Backup) Prune() (snaps, objects int, err error) {
	ids, err := b.List()
	if err != nil {
		return 0, 0, err
	}
	keep := ids
	if len(ids) > b.cfg.Keep {
		keep = ids[len(ids)-b.cfg.Keep:]
	}
	live := make(map[string]bool)
	for _, id := range keep {
		s, err := b.Load(id)
		if err != nil {
			// An unreadable kept manifest: refuse to collect objects it may name.
			return 0, 0, err
		}
		for _, f := range s.Files {
			live[f.SHA256] = true
		}
	}
	for _, id := range ids[:len(ids)-len(keep)] {
		if err := os.Remove(filepath.Join(b.cfg.Dest, "snapshots", id+".json")); err != nil {
			return snaps, objects, fmt.Errorf("backup: %w", err)
		}
		snaps++
	}
	root := filepath.Join(b.cfg.Dest, "objects")
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := d.Name()
		if strings.HasPrefix(name, ".tmp-") || !live[name] {
			if err := os.Remove(p); err != nil {
				return err
			}
			if !strings.HasPrefix(name, ".tmp-") {
				objects++
			}
		}
		return nil
	})
	if err != nil {
		return snaps, objects, fmt.Errorf("backup: prune: %w", err)
	}
	return snaps, objects, nil
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return syncDir(filepath.Dir(name))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("backup: sync %s: %w", dir, err)
	}
	return nil
}

// Dest returns the backup location (absolute).
func (b *Backup) Dest() string { return b.cfg.Dest }
