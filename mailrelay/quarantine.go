package mailrelay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jichitai/seccloud/mailrelay/internal/mailparse"
	"github.com/jichitai/seccloud/mailrelay/spam"
)

// QuarantineConfig configures the quarantine store. Dir empty = no
// quarantine: quarantine verdicts are then refused in the session (550)
// rather than lost.
type QuarantineConfig struct {
	// Dir holds the originals (<id>.eml) and their metadata (<id>.json),
	// each written to a temporary file, fsynced and renamed.
	Dir string
	// Retention is how long items are kept (default 30 days); older
	// items are deleted by a sweep every hour.
	Retention time.Duration
	// Forward, when set, receives a copy of each quarantined original
	// (not of sanitised originals) by SMTP: the isolated server.
	Forward *ForwardConfig
}

// ForwardConfig is the isolated server quarantined originals go to.
type ForwardConfig struct {
	// Addr is the SMTP server, host:port.
	Addr string
	// From is the envelope sender (default "quarantine@<Hostname>"); To
	// the recipient (required).
	From, To string
	// Timeout for one attempt (default 30 s); failed attempts are
	// retried after 1, 2, 4 … minutes, 8 times, and again after a
	// restart.
	Timeout time.Duration
}

// QuarantineItem is the metadata of a quarantined message.
type QuarantineItem struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Direction Direction `json:"direction"`
	Time      time.Time `json:"time"`
	Client    string    `json:"client,omitempty"`
	Helo      string    `json:"helo,omitempty"`
	From      string    `json:"from"`
	To        []string  `json:"to"`
	// HeaderFrom, Subject and MessageID come from the header.
	HeaderFrom string `json:"header_from,omitempty"`
	Subject    string `json:"subject,omitempty"`
	MessageID  string `json:"message_id,omitempty"`
	Size       int    `json:"size"`
	// Reason is "virus", "spam", "attachment", "ad", "policy" or
	// "sanitized" (an original kept after sanitisation; the sanitised
	// copy was delivered).
	Reason string `json:"reason"`
	// Rule and Detail are the deciding rule and its explanation.
	Rule   string  `json:"rule"`
	Detail string  `json:"detail,omitempty"`
	Score  float64 `json:"score,omitempty"`
	// Hits are the spam rules that matched, Virus the signature.
	Hits  []spam.Hit `json:"hits,omitempty"`
	Virus string     `json:"virus,omitempty"`
	// Forwarded is when the copy reached the isolated server.
	Forwarded *time.Time `json:"forwarded,omitempty"`
	// Released is when the message was released for delivery.
	Released *time.Time `json:"released,omitempty"`
	// Body8 and UTF8 are envelope properties kept for release.
	Body8 bool `json:"body8,omitempty"`
	UTF8  bool `json:"utf8,omitempty"`
}

// QuarantineView is an item with its header fields and text, for the
// console.
type QuarantineView struct {
	QuarantineItem
	Headers []mailparse.Field `json:"headers"`
	Text    string            `json:"text"`
	// Attachments are the file names (or media types) of non-text parts.
	Attachments []string `json:"attachments,omitempty"`
}

// QuarantineFilter selects items for List.
type QuarantineFilter struct {
	Tenant string    // "" = all tenants
	Reason string    // "" = all reasons
	Since  time.Time // zero = no lower bound
	Limit  int       // 0 = 1000
}

// ErrNotFound is returned for an unknown quarantine id.
var ErrNotFound = errors.New("mailrelay: quarantine item not found")

// Quarantine is the durable store of quarantined messages. Safe for
// concurrent use.
type Quarantine struct {
	cfg     QuarantineConfig
	now     func() time.Time
	log     *slog.Logger
	release func(ctx context.Context, it *QuarantineItem, data []byte) (string, error)
	fwdFrom string

	mu    sync.Mutex
	items map[string]*QuarantineItem

	stop chan struct{}
	wg   sync.WaitGroup
}

func openQuarantine(cfg QuarantineConfig, hostname string, now func() time.Time, log *slog.Logger) (*Quarantine, error) {
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if f := cfg.Forward; f != nil {
		if f.Addr == "" || f.To == "" {
			return nil, errors.New("mailrelay: Quarantine.Forward: Addr and To are required")
		}
		if f.Timeout <= 0 {
			f.Timeout = 30 * time.Second
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("mailrelay: quarantine: %w", err)
	}
	q := &Quarantine{cfg: cfg, now: now, log: log, items: map[string]*QuarantineItem{}, stop: make(chan struct{})}
	q.fwdFrom = "quarantine@" + hostname
	if cfg.Forward != nil && cfg.Forward.From != "" {
		q.fwdFrom = cfg.Forward.From
	}
	ents, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("mailrelay: quarantine: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(cfg.Dir, name))
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(cfg.Dir, name))
		if err != nil {
			return nil, fmt.Errorf("mailrelay: quarantine: %w", err)
		}
		var it QuarantineItem
		if err := json.Unmarshal(b, &it); err != nil || it.ID != id {
			log.Error("mailrelay: unreadable quarantine metadata skipped", "file", name, "err", err)
			continue
		}
		if _, err := os.Stat(q.emlPath(id)); err != nil {
			log.Error("mailrelay: quarantine item without its message skipped", "id", id)
			continue
		}
		q.items[id] = &it
	}
	q.wg.Add(1)
	go q.sweeper()
	if cfg.Forward != nil {
		for _, it := range q.items {
			if it.Forwarded == nil && it.Reason != "sanitized" {
				q.forwardLater(it.ID)
			}
		}
	}
	return q, nil
}

func (q *Quarantine) emlPath(id string) string  { return filepath.Join(q.cfg.Dir, id+".eml") }
func (q *Quarantine) jsonPath(id string) string { return filepath.Join(q.cfg.Dir, id+".json") }

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// writeFileSync writes b to path through a temporary file, fsyncs it,
// renames it into place and fsyncs the directory.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// put stores a message durably: the message first, then its metadata
// (an item is listed only once both are on disk).
func (q *Quarantine) put(it *QuarantineItem, data []byte) error {
	if !validID(it.ID) {
		return fmt.Errorf("mailrelay: quarantine: bad id %q", it.ID)
	}
	it.Size = len(data)
	if err := writeFileSync(q.emlPath(it.ID), data); err != nil {
		return fmt.Errorf("mailrelay: quarantine: %w", err)
	}
	if err := q.writeMeta(it); err != nil {
		os.Remove(q.emlPath(it.ID))
		return err
	}
	q.mu.Lock()
	q.items[it.ID] = it
	q.mu.Unlock()
	if q.cfg.Forward != nil && it.Reason != "sanitized" {
		q.forwardLater(it.ID)
	}
	return nil
}

func (q *Quarantine) writeMeta(it *QuarantineItem) error {
	b, err := json.MarshalIndent(it, "", " ")
	if err != nil {
		return fmt.Errorf("mailrelay: quarantine: %w", err)
	}
	if err := writeFileSync(q.jsonPath(it.ID), b); err != nil {
		return fmt.Errorf("mailrelay: quarantine: %w", err)
	}
	return nil
}

// List returns the items matching f, newest first.
func (q *Quarantine) List(f QuarantineFilter) []QuarantineItem {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	q.mu.Lock()
	out := make([]QuarantineItem, 0, len(q.items))
	for _, it := range q.items {
		if (f.Tenant == "" || it.Tenant == f.Tenant) && (f.Reason == "" || it.Reason == f.Reason) && !it.Time.Before(f.Since) {
			out = append(out, *it)
		}
	}
	q.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.After(out[j].Time)
		}
		return out[i].ID > out[j].ID
	})
	if len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out
}

// Get returns an item and its original message.
func (q *Quarantine) Get(id string) (QuarantineItem, []byte, error) {
	q.mu.Lock()
	it, ok := q.items[id]
	var cp QuarantineItem
	if ok {
		cp = *it
	}
	q.mu.Unlock()
	if !ok {
		return QuarantineItem{}, nil, ErrNotFound
	}
	b, err := os.ReadFile(q.emlPath(id))
	if err != nil {
		return cp, nil, fmt.Errorf("mailrelay: quarantine: %w", err)
	}
	return cp, b, nil
}

// View returns an item with its decoded header fields and text (HTML as
// text, at most 256 KiB).
func (q *Quarantine) View(id string) (QuarantineView, error) {
	it, b, err := q.Get(id)
	if err != nil {
		return QuarantineView{}, err
	}
	m := mailparse.Parse(b, mailparse.Limits{})
	v := QuarantineView{QuarantineItem: it, Headers: m.Header, Text: m.Text()}
	if len(v.Text) > 256<<10 {
		v.Text = v.Text[:256<<10]
	}
	for i := range m.Parts {
		p := &m.Parts[i]
		if p.Attachment || !p.IsText() {
			name := p.Filename
			if name == "" {
				name = p.MediaType
			}
			v.Attachments = append(v.Attachments, name)
		}
	}
	return v, nil
}

// Release queues the original for delivery to its recipients, as it
// would have been delivered, and marks the item released (it is kept
// until Delete or expiry). It returns the new queue id.
func (q *Quarantine) Release(ctx context.Context, id string) (string, error) {
	it, b, err := q.Get(id)
	if err != nil {
		return "", err
	}
	if q.release == nil {
		return "", errors.New("mailrelay: quarantine: release not available")
	}
	qid, err := q.release(ctx, &it, b)
	if err != nil {
		return "", err
	}
	now := q.now().UTC()
	q.mu.Lock()
	if p, ok := q.items[id]; ok {
		p.Released = &now
		it = *p
	}
	q.mu.Unlock()
	if err := q.writeMeta(&it); err != nil {
		q.log.Error("mailrelay: quarantine metadata not updated", "id", id, "err", err)
	}
	return qid, nil
}

// Delete removes an item.
func (q *Quarantine) Delete(id string) error {
	q.mu.Lock()
	_, ok := q.items[id]
	delete(q.items, id)
	q.mu.Unlock()
	if !ok {
		return ErrNotFound
	}
	err1 := os.Remove(q.jsonPath(id))
	err2 := os.Remove(q.emlPath(id))
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("mailrelay: quarantine: %w", err)
	}
	return nil
}

// Expire deletes the items received before now - Retention and returns
// how many.
func (q *Quarantine) Expire(now time.Time) int {
	cut := now.Add(-q.cfg.Retention)
	var old []string
	q.mu.Lock()
	for id, it := range q.items {
		if it.Time.Before(cut) {
			old = append(old, id)
		}
	}
	q.mu.Unlock()
	n := 0
	for _, id := range old {
		if q.Delete(id) == nil {
			n++
		}
	}
	return n
}

func (q *Quarantine) sweeper() {
	defer q.wg.Done()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	q.Expire(q.now())
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
			if n := q.Expire(q.now()); n > 0 {
				q.log.Info("mailrelay: quarantine items expired", "count", n)
			}
		}
	}
}

func (q *Quarantine) close() {
	select {
	case <-q.stop:
	default:
		close(q.stop)
	}
	q.wg.Wait()
}

// forwardLater sends the original to the isolated server in the
// background, with retries.
func (q *Quarantine) forwardLater(id string) {
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		delay := time.Minute
		for attempt := 0; attempt < 9; attempt++ {
			err := q.forward(id)
			if err == nil || errors.Is(err, ErrNotFound) {
				return
			}
			q.log.Warn("mailrelay: forwarding quarantined message failed", "id", id, "attempt", attempt+1, "err", err)
			select {
			case <-q.stop:
				return
			case <-time.After(delay):
			}
			delay *= 2
		}
	}()
}

func (q *Quarantine) forward(id string) error {
	it, b, err := q.Get(id)
	if err != nil {
		return err
	}
	f := q.cfg.Forward
	conn, err := net.DialTimeout("tcp", f.Addr, f.Timeout)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(f.Timeout))
	host, _, _ := net.SplitHostPort(f.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Mail(q.fwdFrom); err != nil {
		return err
	}
	if err := c.Rcpt(f.To); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	hdr := fmt.Sprintf("X-Seccloud-Quarantine: id=%s; tenant=%s; reason=%s; rule=%s\r\n", it.ID, it.Tenant, it.Reason, it.Rule)
	if _, err := w.Write([]byte(headerText(hdr[:len(hdr)-2]) + "\r\n")); err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	c.Quit()
	now := q.now().UTC()
	q.mu.Lock()
	if p, ok := q.items[id]; ok {
		p.Forwarded = &now
		it = *p
	}
	q.mu.Unlock()
	return q.writeMeta(&it)
}
