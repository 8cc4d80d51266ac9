package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
	"github.com/jichitai/seccloud/tenant"
)

// Admin runs the offline subcommands (history, rollback, store, events)
// against the data directory of a configuration.
type Admin struct {
	// ConfigPath is the config file; "" means the embedded demo.
	ConfigPath string
	// DataDir overrides the config's data_dir when set (for a config file
	// too broken to name its data directory).
	DataDir string
	// Out receives the command's output.
	Out io.Writer
}

// config loads the configuration as far as it decodes: the admin commands
// need only data_dir and history.keep, and must work on a broken file.
func (ad *Admin) config() (*config.Config, error) {
	var cfg *config.Config
	var err error
	if ad.ConfigPath == "" {
		cfg, err = config.LoadDemo()
	} else {
		cfg, err = config.LoadPartial(ad.ConfigPath)
	}
	if cfg == nil {
		if ad.DataDir == "" {
			return nil, fmt.Errorf("%w\n(pass -data-dir DIR to name the data directory)", err)
		}
		cfg, _ = config.Parse("", []byte("version: 1\nlisten: {console: 127.0.0.1:0}\n"))
	}
	if ad.DataDir != "" {
		abs, err := filepath.Abs(ad.DataDir)
		if err != nil {
			return nil, err
		}
		cfg.DataDir = abs
	}
	if cfg.DataDir == "" {
		cfg.DataDir = config.DefaultDataDir
	}
	return cfg, nil
}

func (ad *Admin) history() (*tenant.History, *config.Config, error) {
	cfg, err := ad.config()
	if err != nil {
		return nil, nil, err
	}
	keep := cfg.History.Keep
	if keep < 2 {
		keep = 0
	}
	if _, err := os.Stat(cfg.HistoryDir()); err != nil {
		return nil, nil, fmt.Errorf("no config history at %s (has the appliance run with this config?)", cfg.HistoryDir())
	}
	h, err := tenant.OpenHistory(tenant.HistoryConfig{Dir: cfg.HistoryDir(), Keep: keep})
	return h, cfg, err
}

// History prints the kept config generations, oldest first.
func (ad *Admin) History() error {
	h, _, err := ad.history()
	if err != nil {
		return err
	}
	gens, err := h.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(ad.Out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "GEN\tTIME\tSHA256\tBYTES\tNOTE")
	for _, g := range gens {
		fmt.Fprintf(tw, "%d\t%s\t%.12s\t%d\t%s\n", g.N, g.Time.Local().Format(time.RFC3339), g.SHA256, g.Size, g.Note)
	}
	return tw.Flush()
}

// Diff prints a unified diff from generation a to generation b.
func (ad *Admin) Diff(a, b int) error {
	h, _, err := ad.history()
	if err != nil {
		return err
	}
	d, err := h.Diff(a, b)
	if err != nil {
		return err
	}
	if d == "" {
		fmt.Fprintf(ad.Out, "generations %d and %d are identical\n", a, b)
		return nil
	}
	_, err = io.WriteString(ad.Out, d)
	return err
}

// Rollback restores generation n: it validates it, writes it to the config
// file atomically (temporary file and rename), commits it as a new
// generation noted "rollback to n", and asks a running appliance using the
// same config file to reload (its reload API, else SIGHUP).
func (ad *Admin) Rollback(n int) error {
	if ad.ConfigPath == "" {
		return errors.New("rollback needs -config FILE: the embedded demo config cannot be rewritten")
	}
	h, cfg, err := ad.history()
	if err != nil {
		return err
	}
	data, err := h.Load(n)
	if err != nil {
		return err
	}
	if _, err := config.Parse(ad.ConfigPath, data); err != nil {
		return fmt.Errorf("generation %d is not valid today, not restored:\n%w", n, err)
	}
	perm := os.FileMode(0o640)
	if st, err := os.Stat(ad.ConfigPath); err == nil {
		perm = st.Mode().Perm()
	}
	if err := tenant.WriteFileAtomic(ad.ConfigPath, data, perm); err != nil {
		return err
	}
	g, _, err := h.Commit(data, fmt.Sprintf("rollback to %d", n))
	if err != nil {
		return fmt.Errorf("restored %s but could not record the generation: %w", ad.ConfigPath, err)
	}
	fmt.Fprintf(ad.Out, "restored generation %d to %s (now generation %d)\n", n, ad.ConfigPath, g.N)
	return ad.signalRunning(cfg)
}

// signalRunning asks the appliance recorded in the run file to reload, if
// it runs with the same config file.
func (ad *Admin) signalRunning(cfg *config.Config) error {
	rf, err := readRunFile(cfg.RunFile())
	if err != nil {
		fmt.Fprintln(ad.Out, "no running appliance found; the restored config applies at the next start")
		return nil
	}
	abs, _ := filepath.Abs(ad.ConfigPath)
	if rf.Config != abs {
		fmt.Fprintf(ad.Out, "the running appliance (pid %d) uses %q, not this file; not reloaded\n", rf.Pid, rf.Config)
		return nil
	}
	proc, err := os.FindProcess(rf.Pid)
	if err == nil {
		err = proc.Signal(syscall.Signal(0))
	}
	if err != nil {
		fmt.Fprintf(ad.Out, "no running appliance (stale run file, pid %d); the restored config applies at the next start\n", rf.Pid)
		return nil
	}
	res, err := postReload(rf.Console)
	if err != nil {
		fmt.Fprintf(ad.Out, "reload API unreachable (%v); sending SIGHUP to pid %d\n", err, rf.Pid)
		return proc.Signal(syscall.SIGHUP)
	}
	if !res.OK {
		return fmt.Errorf("the running appliance refused the restored config:\n%v", res.Errors)
	}
	fmt.Fprintf(ad.Out, "running appliance (pid %d) reloaded: generation %d, %d tenants\n", rf.Pid, res.Generation, res.Tenants)
	return nil
}

// postReload calls POST /-/reload on a console address.
func postReload(console string) (ReloadResult, error) {
	var res ReloadResult
	host, port, err := net.SplitHostPort(console)
	if err != nil {
		return res, err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Post("http://"+net.JoinHostPort(host, port)+"/-/reload", "text/plain", nil)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return res, fmt.Errorf("reload API: %s: %w", resp.Status, err)
	}
	return res, nil
}

// VerifyStore checks the event store's sealed segments and hash chain. It
// returns an error naming the first broken segment.
func (ad *Admin) VerifyStore(ctx context.Context) error {
	cfg, err := ad.config()
	if err != nil {
		return err
	}
	dir := cfg.StoreDir()
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("no event store at %s (has the appliance run with this config?)", dir)
	}
	rep, err := store.VerifyDir(ctx, dir)
	fmt.Fprintf(ad.Out, "store %s: %d sealed segments (%d bytes) checked, %d expired, %d open\n",
		dir, rep.Segments, rep.Bytes, rep.Expired, rep.Open)
	if err != nil {
		if rep.Broken != "" {
			return fmt.Errorf("BROKEN at segment %s: %s", rep.Broken, rep.Problem)
		}
		return err
	}
	if rep.Head == "" {
		fmt.Fprintln(ad.Out, "OK (no sealed segment yet)")
	} else {
		fmt.Fprintf(ad.Out, "OK, chain head %s\n", rep.Head)
	}
	return nil
}

// Events prints the stored events f selects as ECS JSON lines. It opens the
// store read-only, so it works while the appliance runs.
func (ad *Admin) Events(ctx context.Context, f store.Filter) error {
	cfg, err := ad.config()
	if err != nil {
		return err
	}
	dir := cfg.StoreDir()
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("no event store at %s (has the appliance run with this config?)", dir)
	}
	st, err := store.Open(store.Config{Dir: dir, ReadOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	w := bufio.NewWriter(ad.Out)
	var buf []byte
	err = st.Query(ctx, f, func(e detect.Event) error {
		buf = append(detect.AppendECS(buf[:0], &e), '\n')
		_, err := w.Write(buf)
		return err
	})
	return errors.Join(err, w.Flush())
}
