// Command seccloud is the reference appliance of the municipal information
// security cloud: it reads one configuration file and wires the seccloud
// packages into one process. Run `seccloud -h` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/appliance/internal/app"
	"github.com/jichitai/seccloud/detect/store"
)

const usage = `seccloud — the municipal information security cloud appliance

Usage:
  seccloud run [-config FILE]            run the appliance (no -config: the embedded demo)
  seccloud check-config FILE             validate FILE; print every error with file:line:col
  seccloud print-config                  print the embedded demo config, commented
  seccloud config history [-config FILE] list the kept config generations
  seccloud config diff A B [-config FILE]
                                         unified diff from generation A to B
  seccloud config rollback N [-config FILE]
                                         restore generation N to FILE and reload a running appliance
  seccloud store verify [-config FILE]   check the event store's hash chain
  seccloud events [-tenant ID] [-module M] [-since T] [-until T] [-config FILE]
                                         print stored events as ECS JSON lines
  seccloud backup run|list|verify|restore [ID] [-config FILE] [-dir DIR]
                                         back up data_dir, list, verify by restoring, restore
  seccloud report monthly YYYY-MM [-tenant ID] [-format html|csv] [-o FILE] [-config FILE]
                                         the monthly report (whole cloud, or one tenant)
  seccloud mail requeue -from DIR [-json] [-config FILE]
                                         re-home a dead node's mail queue here (docs/redundancy.md)
  seccloud version                       print build information

Every subcommand that uses the data directory takes -config FILE (default:
the embedded demo config). T is RFC 3339 (2025-04-01T09:00:00+09:00) or a
date YYYY-MM-DD in local time; -until DATE includes that whole day.
Flags may be written with one or two dashes. "seccloud SUBCOMMAND -h" shows
a subcommand's flags.
`

// exit codes
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs the command line args and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	if isHelp(cmd) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	switch cmd {
	case "run":
		err = cmdRun(rest, stderr)
	case "check-config":
		err = cmdCheck(rest, stdout)
	case "print-config":
		err = cmdPrint(rest, stdout)
	case "config":
		err = cmdConfig(rest, stdout)
	case "store":
		err = cmdStore(rest, stdout)
	case "events":
		err = cmdEvents(rest, stdout)
	case "backup":
		err = cmdBackup(rest, stdout)
	case "report":
		err = cmdReport(rest, stdout)
	case "account":
		err = cmdAccount(rest, os.Stdin, stdout)
	case "mail":
		err = cmdMail(rest, stdout)
	case "version":
		err = cmdVersion(rest, stdout)
	default:
		fmt.Fprintf(stderr, "seccloud: unknown subcommand %q\n\n%s", cmd, usage)
		return exitUsage
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "seccloud %s: %v\n", cmd, err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "seccloud %s: %v\n", cmd, err)
	return exitFailure
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// flags returns a flag set for a subcommand that prints its usage to stdout
// on -h and reports errors as usageError.
func flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: seccloud %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string, out io.Writer) error {
	fs.SetOutput(out)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

// parseInterleaved parses flags that may come before or after the
// positional arguments ("config rollback 3 -config f" or "-config f 3").
func parseInterleaved(fs *flag.FlagSet, args []string, out io.Writer) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args, out); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func isHelp(s string) bool { return s == "-h" || s == "-help" || s == "--help" || s == "help" }

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "config `FILE` (default: the embedded demo config)")
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := flags("run", "run [-config FILE]")
	cfgPath := configFlag(fs)
	timeout := fs.Duration("shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected arguments: " + strings.Join(fs.Args(), " ")}
	}
	// Catch signals before starting, so an early SIGHUP is not fatal.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	a, err := app.New(app.Options{ConfigPath: *cfgPath, Log: stderr, Version: version()})
	if err != nil {
		return err
	}
	go func() {
		for {
			select {
			case <-hup:
				_, _ = a.Reload("signal") // Reload logs every error
			case <-ctx.Done():
				return
			}
		}
	}()
	return a.Run(ctx, *timeout)
}

func cmdCheck(args []string, stdout io.Writer) error {
	fs := flags("check-config", "check-config FILE")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"want exactly one FILE"}
	}
	cfg, err := config.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: OK (%d tenants)\n", fs.Arg(0), len(cfg.Tenants))
	for _, name := range config.FunctionNames {
		if cfg.Functions.Enabled(name) && !app.Built(name) {
			fmt.Fprintf(stdout, "note: functions.%s is on but the function is not built yet; it will not start\n", name)
		}
	}
	return nil
}

func cmdPrint(args []string, stdout io.Writer) error {
	fs := flags("print-config", "print-config")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	_, err := stdout.Write(config.Demo())
	return err
}

func cmdConfig(args []string, stdout io.Writer) error {
	const syn = "config history|diff A B|rollback N [-config FILE] [-data-dir DIR]"
	if len(args) == 0 {
		return usageError{"want a subcommand: " + syn}
	}
	sub := args[0]
	if isHelp(sub) {
		fmt.Fprintln(stdout, "Usage: seccloud "+syn)
		return flag.ErrHelp
	}
	fs := flags("config "+sub, syn)
	cfgPath := configFlag(fs)
	dataDir := fs.String("data-dir", "", "data directory `DIR` (default: the config's data_dir)")
	pos, err := parseInterleaved(fs, args[1:], stdout)
	if err != nil {
		return err
	}
	ad := &app.Admin{ConfigPath: *cfgPath, DataDir: *dataDir, Out: stdout}
	nums := make([]int, len(pos))
	for i, p := range pos {
		if nums[i], err = strconv.Atoi(p); err != nil || nums[i] < 1 {
			return usageError{fmt.Sprintf("%q is not a generation number", p)}
		}
	}
	switch {
	case sub == "history" && len(nums) == 0:
		return ad.History()
	case sub == "diff" && len(nums) == 2:
		return ad.Diff(nums[0], nums[1])
	case sub == "rollback" && len(nums) == 1:
		return ad.Rollback(nums[0])
	}
	return usageError{"usage: seccloud " + syn}
}

func cmdStore(args []string, stdout io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, "Usage: seccloud store verify [-config FILE]")
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "verify" {
		return usageError{"usage: seccloud store verify [-config FILE]"}
	}
	fs := flags("store verify", "store verify [-config FILE]")
	cfgPath := configFlag(fs)
	if err := parse(fs, args[1:], stdout); err != nil {
		return err
	}
	ad := &app.Admin{ConfigPath: *cfgPath, Out: stdout}
	return ad.VerifyStore(context.Background())
}

func cmdEvents(args []string, stdout io.Writer) error {
	fs := flags("events", "events [-tenant ID] [-module M] [-since T] [-until T] [-config FILE]")
	cfgPath := configFlag(fs)
	var f store.Filter
	fs.StringVar(&f.Tenant, "tenant", "", "only events of tenant `ID`")
	fs.StringVar(&f.Module, "module", "", "only events of module `M` (proxy, dns, mail, waf, detect, appliance)")
	since := fs.String("since", "", "only events at or after `T` (RFC 3339 or YYYY-MM-DD)")
	until := fs.String("until", "", "only events before `T` (RFC 3339, or YYYY-MM-DD: through that day)")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	var err error
	if f.Since, err = parseTime(*since, false); err != nil {
		return usageError{"-since: " + err.Error()}
	}
	if f.Until, err = parseTime(*until, true); err != nil {
		return usageError{"-until: " + err.Error()}
	}
	ad := &app.Admin{ConfigPath: *cfgPath, Out: stdout}
	return ad.Events(context.Background(), f)
}

// parseTime parses RFC 3339 or a local date; with endOfDay a date means the
// end of that day (the next midnight).
func parseTime(s string, endOfDay bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseInLocation(time.DateOnly, s, time.Local)
	if err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339 (2025-04-01T09:00:00+09:00) or YYYY-MM-DD, found %q", s)
	}
	if endOfDay {
		d = d.AddDate(0, 0, 1)
	}
	return d, nil
}

func cmdReport(args []string, stdout io.Writer) error {
	const syn = "report monthly YYYY-MM [-tenant ID] [-format html|csv] [-o FILE] [-config FILE]"
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, "Usage: seccloud "+syn)
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "monthly" {
		return usageError{"usage: seccloud " + syn}
	}
	fs := flags("report monthly", syn)
	cfgPath := configFlag(fs)
	tenant := fs.String("tenant", "", "only tenant `ID` (default: the whole cloud and every tenant)")
	format := fs.String("format", "html", "output `format`: html or csv")
	out := fs.String("o", "", "write to `FILE` instead of standard output")
	pos, err := parseInterleaved(fs, args[1:], stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"want exactly one month YYYY-MM"}
	}
	if *format != "html" && *format != "csv" {
		return usageError{"-format: want html or csv"}
	}
	w := stdout
	var f *os.File
	if *out != "" {
		if f, err = os.Create(*out); err != nil {
			return err
		}
		w = f
	}
	ad := &app.Admin{ConfigPath: *cfgPath, Out: w}
	err = ad.Report(pos[0], *tenant, *format)
	if f != nil {
		err = errors.Join(err, f.Close())
	}
	return err
}

func cmdVersion(args []string, stdout io.Writer) error {
	fs := flags("version", "version")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "seccloud", version())
	return nil
}

// buildVersion, when set at link time (-ldflags "-X main.buildVersion=v1.2.0"),
// replaces the module version, for builds without VCS information (a
// source tarball).
var buildVersion string

func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return buildVersion
	}
	v := bi.Main.Version
	if buildVersion != "" {
		v = buildVersion
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
	}
	return v + " " + bi.GoVersion
}
