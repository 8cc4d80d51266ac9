package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/appliance/internal/app"
)

const backupUsage = `Usage:
  seccloud backup run [-config FILE] [-dir DIR]      back up data_dir now (incremental)
  seccloud backup list [-config FILE] [-dir DIR]     list the snapshots, oldest first
  seccloud backup verify [ID] [-config FILE] [-dir DIR]
                                                   restore snapshot ID (default: latest) into a
                                                   scratch directory and check every file and the
                                                   event store's hash chain
  seccloud backup restore [ID] [-to DIR] [-config FILE] [-dir DIR]
                                                   restore snapshot ID (default: latest) into DIR
                                                   (default: data_dir, which must be empty or
                                                   absent: move the damaged one away first, with
                                                   the appliance stopped)
DIR defaults to backup.dir of the config.
`

func cmdBackup(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"want a backup subcommand\n" + backupUsage}
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, backupUsage)
		return flag.ErrHelp
	}
	sub := args[0]
	fs := flags("backup "+sub, "backup "+sub+" [ID] [flags]")
	cfgPath := configFlag(fs)
	dir := fs.String("dir", "", "backup location `DIR` (default: backup.dir)")
	to := fs.String("to", "", "restore into `DIR` (default: data_dir)")
	pos, err := parseInterleaved(fs, args[1:], stdout)
	if err != nil {
		return err
	}
	id := "latest"
	switch {
	case len(pos) == 1 && (sub == "verify" || sub == "restore"):
		id = pos[0]
	case len(pos) > 0:
		return usageError{"unexpected arguments\n" + backupUsage}
	}
	cfg, err := loadConfigFile(*cfgPath)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := app.OpenBackup(cfg, *dir, log)
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch sub {
	case "run":
		s, err := b.Run(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "snapshot %s: %d files, %d bytes, %d bytes new\n", s.ID, len(s.Files), s.Bytes, s.Copied)
		return nil
	case "list":
		ids, err := b.List()
		if err != nil {
			return err
		}
		for _, id := range ids {
			s, err := b.Load(id)
			if err != nil {
				fmt.Fprintf(stdout, "%s\tunreadable: %v\n", id, err)
				continue
			}
			fmt.Fprintf(stdout, "%s\t%d files\t%d bytes\n", s.ID, len(s.Files), s.Bytes)
		}
		return nil
	case "verify":
		scratch := filepath.Join(b.Dest(), "verify-scratch")
		rep, err := b.Verify(ctx, id, scratch, app.CheckRestored)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "snapshot %s: OK, %d files, %d bytes restored and checked\n", rep.Snapshot, rep.Files, rep.Bytes)
		return nil
	case "restore":
		target := *to
		if target == "" {
			target = cfg.Path(cfg.DataDir)
		}
		rep, err := b.Restore(ctx, id, target)
		if err != nil {
			return err
		}
		if err := app.CheckRestored(target); err != nil {
			return fmt.Errorf("restored, but the event store does not verify: %w", err)
		}
		fmt.Fprintf(stdout, "snapshot %s restored into %s: %d files, %d bytes, all checked\n", rep.Snapshot, target, rep.Files, rep.Bytes)
		return nil
	}
	return usageError{fmt.Sprintf("unknown backup subcommand %q\n%s", sub, backupUsage)}
}

func loadConfigFile(path string) (*config.Config, error) {
	if path == "" {
		return config.LoadDemo()
	}
	return config.Load(path)
}
