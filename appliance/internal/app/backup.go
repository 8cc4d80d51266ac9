package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jichitai/seccloud/appliance/backup"
	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
)

// OpenBackup returns the backup of cfg's data directory to dir (cfg's
// backup.dir when dir is empty).
func OpenBackup(cfg *config.Config, dir string, log *slog.Logger) (*backup.Backup, error) {
	if dir == "" {
		dir = cfg.BackupDir()
	}
	if dir == "" {
		return nil, errors.New("no backup location: set backup.dir in the config or pass -dir")
	}
	return backup.New(backup.Config{
		Source: cfg.Path(cfg.DataDir), Dest: dir, Keep: cfg.Backup.Keep, Logger: log,
		// Lock and run files belong to the running process; the store's
		// manifest is copied before its segments.
		Exclude: []string{"LOCK", "*.lock", "seccloud.run"},
		First:   []string{"MANIFEST"},
	})
}

// CheckRestored is the check a verification runs on a restored data
// directory: the event store's hash chain, when it holds a store.
func CheckRestored(dir string) error {
	ev := filepath.Join(dir, "events")
	if _, err := os.Stat(ev); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := store.VerifyDir(context.Background(), ev)
	return err
}

// backupOnce makes, verifies and prunes one snapshot, emitting an event
// either way.
func (a *App) backupOnce(ctx context.Context, b *backup.Backup, verify bool, scratch string) error {
	snap, err := b.Run(ctx)
	if err == nil && verify {
		_, err = b.Verify(ctx, snap.ID, scratch, CheckRestored)
	}
	if err == nil {
		_, _, err = b.Prune()
	}
	e := detect.Event{Time: time.Now(), Module: "appliance", Dataset: "appliance.backup", Kind: "event",
		Category: "configuration", Type: "creation", Action: "backup", Outcome: "success",
		Message: fmt.Sprintf("backup %s: %d files, %d bytes, %d bytes new", snap.ID, len(snap.Files), snap.Bytes, snap.Copied)}
	if err != nil {
		e.Kind, e.Outcome, e.Message = "alert", "failure", "backup failed: "+err.Error()
		a.log.Error("daily backup failed", "err", err)
	} else {
		a.log.Info("daily backup done", "snapshot", snap.ID, "files", len(snap.Files), "bytes", snap.Bytes, "copied", snap.Copied, "verified", verify)
	}
	a.events.emit(e)
	return err
}

// runBackups makes a backup every day at backup.at (local time) until ctx
// is done. It does nothing when backup.dir is unset.
func (a *App) runBackups(ctx context.Context) {
	cfg := a.cfg.Load()
	if cfg.Backup.Dir == "" {
		return
	}
	b, err := OpenBackup(cfg, "", a.log)
	if err != nil {
		a.log.Error("backups off", "err", err)
		return
	}
	at, _ := time.Parse("15:04", cfg.Backup.At) // validated by config
	scratch := filepath.Join(cfg.BackupDir(), "verify-scratch")
	for {
		now := time.Now()
		next := time.Date(now.Year(), now.Month(), now.Day(), at.Hour(), at.Minute(), 0, 0, now.Location())
		if !next.After(now) {
			next = next.AddDate(0, 0, 1)
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		_ = a.backupOnce(ctx, b, *cfg.Backup.Verify, scratch)
	}
}
