package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/jichitai/seccloud/appliance/internal/app"
)

// cmdMail runs `seccloud mail requeue -from DIR`: re-home the mail queue
// of a dead node into this node's queue (docs/redundancy.md).
func cmdMail(args []string, stdout io.Writer) error {
	const syn = "mail requeue -from DIR [-quarantine-from QDIR] [-json] [-config FILE] [-data-dir DIR]"
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, "Usage: seccloud "+syn)
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "requeue" {
		return usageError{"usage: seccloud " + syn}
	}
	fs := flags("mail requeue", syn)
	cfgPath := configFlag(fs)
	dataDir := fs.String("data-dir", "", "this node's data directory `DIR` (default: the config's data_dir)")
	from := fs.String("from", "", "the other node's mail queue directory `DIR` (its data_dir/mailq, copied here or mounted)")
	quarantine := fs.String("quarantine-from", "", "also take over the other node's quarantine directory `QDIR` (its data_dir/quarantine); needs this node's appliance running")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parse(fs, args[1:], stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected arguments; usage: seccloud " + syn}
	}
	if *from == "" {
		return usageError{"-from DIR is required; usage: seccloud " + syn}
	}
	ad := &app.Admin{ConfigPath: *cfgPath, DataDir: *dataDir, Out: stdout}
	return ad.MailRequeue(*from, *quarantine, *asJSON)
}
