package console

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/jichitai/seccloud/tenant"
)

// SessionsFile is the file name of the sessions inside a data dir.
const SessionsFile = "sessions.json"

// sessionSaveEvery is how stale a session's last-seen time may be in the
// file: a restart may end a session up to this much earlier than its
// idle limit would.
const sessionSaveEvery = time.Minute

// storedSession is a session as written to Config.SessionsPath. The
// cookie value is not stored, only its SHA-256: the file alone does not
// let anyone log in.
type storedSession struct {
	Key     string    `json:"key"`
	User    string    `json:"user"`
	Tenant  string    `json:"tenant,omitempty"`
	Role    Role      `json:"role"`
	CSRF    string    `json:"csrf"`
	Created time.Time `json:"created"`
	Seen    time.Time `json:"seen"`
}

func sessionKey(cookie string) string {
	h := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(h[:])
}

// loadSessions reads Config.SessionsPath (a missing file is no
// sessions). Expired sessions and sessions whose account is gone or
// changed are dropped.
func (c *Console) loadSessions() error {
	if c.cfg.SessionsPath == "" {
		return nil
	}
	b, err := os.ReadFile(c.cfg.SessionsPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("console: sessions: %w", err)
	}
	list, err := parseSessions(b)
	if err != nil {
		// A damaged file logs everyone out; it must not stop the console.
		c.log.Warn("sessions file unreadable; starting without sessions", "path", c.cfg.SessionsPath, "err", err)
		return nil
	}
	now := c.cfg.Now()
	for _, st := range list {
		s := &session{key: st.Key, csrf: st.CSRF, created: st.Created, seen: st.Seen, saved: st.Seen,
			acct: Account{User: st.User, Tenant: st.Tenant, Role: st.Role}}
		if c.expired(s, now) {
			continue
		}
		if a, ok := c.cfg.Accounts.lookup(st.User); !ok || a.Tenant != st.Tenant || a.Role != st.Role {
			continue
		}
		c.sessions[s.key] = s
	}
	return nil
}

// parseSessions decodes a sessions file strictly: every entry needs a
// 64-hex key, a user, a valid role and a CSRF token.
func parseSessions(b []byte) ([]storedSession, error) {
	var list []storedSession
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, err
	}
	for i, st := range list {
		if k, err := hex.DecodeString(st.Key); err != nil || len(k) != sha256.Size {
			return nil, fmt.Errorf("entry %d: bad key", i)
		}
		if st.User == "" || !st.Role.Valid() || len(st.CSRF) < 16 {
			return nil, fmt.Errorf("entry %d: incomplete", i)
		}
	}
	return list, nil
}

// saveSessions writes the live sessions to Config.SessionsPath
// atomically (temporary file, fsync, rename). A failed write is logged:
// the sessions still work until a restart.
func (c *Console) saveSessions() {
	if c.cfg.SessionsPath == "" {
		return
	}
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	now := c.cfg.Now()
	c.mu.Lock()
	list := make([]storedSession, 0, len(c.sessions))
	for _, s := range c.sessions {
		if c.expired(s, now) {
			continue
		}
		list = append(list, storedSession{Key: s.key, User: s.acct.User, Tenant: s.acct.Tenant, Role: s.acct.Role,
			CSRF: s.csrf, Created: s.created.UTC(), Seen: s.seen.UTC()})
	}
	c.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Key < list[j].Key })
	b, err := json.MarshalIndent(list, "", "  ")
	if err == nil {
		err = os.MkdirAll(filepath.Dir(c.cfg.SessionsPath), 0o750)
	}
	if err == nil {
		err = tenant.WriteFileAtomic(c.cfg.SessionsPath, append(b, '\n'), 0o600)
	}
	if err != nil {
		c.log.Error("sessions not saved", "path", c.cfg.SessionsPath, "err", err)
	}
}
