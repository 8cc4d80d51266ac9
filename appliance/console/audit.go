package console

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// AuditFile is the file name of the audit log inside a data dir.
const AuditFile = "audit.jsonl"

// AuditEntry is one line of the audit log: who did what, when, from
// where, and whether it was allowed.
type AuditEntry struct {
	Time    time.Time `json:"time"`
	User    string    `json:"user,omitempty"` // "" before login
	Role    Role      `json:"role,omitempty"`
	Tenant  string    `json:"tenant,omitempty"` // the account's tenant
	Remote  string    `json:"remote"`           // client address
	Action  string    `json:"action"`           // e.g. "login", "incident.ack"
	Target  string    `json:"target,omitempty"` // e.g. the incident id
	Outcome string    `json:"outcome"`          // "success", "failure" or "denied"
	Detail  string    `json:"detail,omitempty"`
}

// Audit is an append-only JSON-lines audit log; each Append is fsynced
// before it returns. Safe for concurrent use.
type Audit struct {
	mu   sync.Mutex
	f    *os.File
	path string
	err  error
}

// OpenAudit opens (or creates, mode 0600) the audit log at path.
func OpenAudit(path string) (*Audit, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("console: audit: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("console: audit: %w", err)
	}
	return &Audit{f: f, path: path}, nil
}

// Append writes e durably (a zero Time is set to now).
func (a *Audit) Append(e AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return errors.New("console: audit: closed")
	}
	if _, err := a.f.Write(append(b, '\n')); err != nil {
		a.err = err
		return fmt.Errorf("console: audit: %w", err)
	}
	if err := a.f.Sync(); err != nil {
		a.err = err
		return fmt.Errorf("console: audit: %w", err)
	}
	return nil
}

// Err returns the last write error.
func (a *Audit) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Entries reads the whole log back, oldest first, keeping the entries
// keep selects (nil keeps all). A torn last line is skipped.
func (a *Audit) Entries(keep func(*AuditEntry) bool) ([]AuditEntry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f, err := os.Open(a.path)
	if err != nil {
		return nil, fmt.Errorf("console: audit: %w", err)
	}
	defer f.Close()
	var out []AuditEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e AuditEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		if keep == nil || keep(&e) {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

// Close closes the log.
func (a *Audit) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}
