package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/mailrelay"
)

// Re-homing the mail queue of a dead node (docs/redundancy.md): the
// standby imports the dead node's queue directory into its own queue with
// `seccloud mail requeue -from DIR`. A running appliance does it itself
// (POST /api/mail/requeue, loopback only); a stopped one is imported into
// offline and delivers at its next start. mailrelay.Server.Rehome holds the
// logic: lock of the source, fsync, no duplicates when run twice.

// mailQueueDir is where the relay keeps its durable queue.
func mailQueueDir(cfg *config.Config) string { return filepath.Join(cfg.Path(cfg.DataDir), "mailq") }

// requeueRequest is the body of POST /api/mail/requeue.
type requeueRequest struct {
	// From is the absolute path of the other node's queue directory.
	From string `json:"from"`
	// Quarantine, if set, is the absolute path of the other node's
	// quarantine directory, taken over after the queue.
	Quarantine string `json:"quarantine,omitempty"`
}

// RequeueResult is what a re-home did: the queue, and the quarantine when
// asked.
type RequeueResult struct {
	Queue      mailrelay.RehomeReport      `json:"queue"`
	Quarantine *mailrelay.QuarantineRehome `json:"quarantine,omitempty"`
}

// mailRequeueAPI is POST /api/mail/requeue {"from": DIR, "quarantine":
// QDIR}: re-home the queue in DIR into this node's relay and deliver it
// from here, then (if QDIR is given) take over the quarantine in QDIR.
// 200 with a RequeueResult; 409 when DIR is still locked by a running
// relay; 400 for a bad DIR; 503 while the relay does not run. Loopback
// clients only.
func (a *App) mailRequeueAPI(w http.ResponseWriter, r *http.Request) {
	if !fromLoopback(r) {
		http.Error(w, "the requeue API is allowed from loopback addresses only", http.StatusForbidden)
		return
	}
	var req requeueRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || !filepath.IsAbs(req.From) ||
		(req.Quarantine != "" && !filepath.IsAbs(req.Quarantine)) {
		jsonError(w, http.StatusBadRequest, `want {"from": "/absolute/path/of/the/queue", "quarantine": "/optional/absolute/path"}`)
		return
	}
	var srv *mailrelay.Server
	for _, f := range a.funcs {
		if f.name != "mail" {
			continue
		}
		f.mu.Lock()
		if ms, ok := f.svc.(*mailService); ok {
			srv = ms.srv
		}
		f.mu.Unlock()
	}
	if srv == nil {
		jsonError(w, http.StatusServiceUnavailable, "mail relay not running")
		return
	}
	var res RequeueResult
	var err error
	res.Queue, err = srv.Rehome(req.From)
	if err == nil && req.Quarantine != "" {
		if q := srv.Quarantine(); q == nil {
			err = errors.New("this node keeps no quarantine")
		} else {
			var qr mailrelay.QuarantineRehome
			qr, err = q.Rehome(req.Quarantine)
			res.Quarantine = &qr
		}
	}
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, mailrelay.ErrQueueLocked) {
			code = http.StatusConflict
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error(), "result": res})
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(res)
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// MailRequeue moves every message queued in from — the mail queue
// directory of another node (<its data_dir>/mailq, its disk copied here or
// mounted) — into this node's queue, and, when quarantine is not empty,
// takes over that node's quarantine directory too. If this node's
// appliance runs (its run file names a live process) it is asked through
// its console API and delivers at once; otherwise the queue directory is
// written offline and the messages leave at the next start (the
// quarantine needs the running appliance). With asJSON the result is
// printed as JSON (RequeueResult).
func (ad *Admin) MailRequeue(from, quarantine string, asJSON bool) error {
	cfg, err := ad.config()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(from)
	if err != nil {
		return err
	}
	qabs := ""
	if quarantine != "" {
		if qabs, err = filepath.Abs(quarantine); err != nil {
			return err
		}
	}
	var res RequeueResult
	via := ""
	if rf, ok := runningAppliance(cfg); ok {
		via = fmt.Sprintf("running appliance (pid %d)", rf.Pid)
		res, err = postRequeue(rf.Console, abs, qabs)
	} else {
		if qabs != "" {
			return errors.New("-quarantine-from needs this node's appliance running (start it, then run the command again)")
		}
		via = "offline into " + mailQueueDir(cfg)
		res.Queue, err = mailrelay.RehomeDir(mailQueueDir(cfg), abs)
	}
	rep := res.Queue
	if err != nil {
		if errors.Is(err, mailrelay.ErrQueueLocked) {
			err = fmt.Errorf("%w\n(the queue is in use: is the node that owns it still running? stop it first)", err)
		}
		if n := len(rep.Imported); n > 0 {
			err = fmt.Errorf("%w\n(%d messages were imported before the error; run the command again to finish)", err, n)
		}
		return err
	}
	if asJSON {
		enc := json.NewEncoder(ad.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	if q := res.Quarantine; q != nil {
		fmt.Fprintf(ad.Out, "隔離メール: %s から %d 件を引き継ぎました (引き継ぎ済み %d 件、読めないもの %d 件)\n",
			q.Source, len(q.Imported), q.Duplicates, q.Skipped)
		fmt.Fprintf(ad.Out, "quarantine: took over %d items from %s (%d already held, %d unreadable left in place)\n",
			len(q.Imported), q.Source, q.Duplicates, q.Skipped)
	}
	fmt.Fprintf(ad.Out, "%s から %d 通を取り込みました (取り込み済みの重複 %d 通、%d バイト) — %s\n",
		abs, len(rep.Imported), rep.Duplicates, rep.Bytes, via)
	fmt.Fprintf(ad.Out, "imported %d messages from %s (%d already imported before, %d bytes) via %s\n",
		len(rep.Imported), abs, rep.Duplicates, rep.Bytes, via)
	if len(rep.Imported) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(ad.Out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE-ID\tTENANT\tFROM\tTO\tSIZE")
	for _, m := range rep.Imported {
		from := m.From
		if from == "" {
			from = "<>"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", m.ID, m.Tenant, from, strings.Join(m.To, ","), m.Size)
	}
	return tw.Flush()
}

// runningAppliance returns the run file of the appliance running on cfg's
// data directory, if its process is alive.
func runningAppliance(cfg *config.Config) (runFile, bool) {
	rf, err := readRunFile(cfg.RunFile())
	if err != nil {
		return rf, false
	}
	proc, err := os.FindProcess(rf.Pid)
	if err == nil {
		err = proc.Signal(syscall.Signal(0))
	}
	return rf, err == nil
}

// postRequeue calls POST /api/mail/requeue on a console address.
func postRequeue(console, from, quarantine string) (RequeueResult, error) {
	var rep RequeueResult
	host, port, err := net.SplitHostPort(console)
	if err != nil {
		return rep, err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	body, _ := json.Marshal(requeueRequest{From: from, Quarantine: quarantine})
	c := &http.Client{Timeout: 10 * time.Minute} // a large queue takes a while
	resp, err := c.Post("http://"+net.JoinHostPort(host, port)+"/api/mail/requeue", "application/json", bytes.NewReader(body))
	if err != nil {
		return rep, fmt.Errorf("requeue API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			return rep, fmt.Errorf("requeue API: %w", err)
		}
		return rep, nil
	}
	var e struct {
		Error  string        `json:"error"`
		Result RequeueResult `json:"result"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	err = fmt.Errorf("requeue API: %s: %s", resp.Status, e.Error)
	if resp.StatusCode == http.StatusConflict {
		err = fmt.Errorf("%w: %s", mailrelay.ErrQueueLocked, e.Error)
	}
	return e.Result, err
}
