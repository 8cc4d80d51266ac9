package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/jichitai/seccloud/tenant"
)

// Role is what an account may do.
type Role string

// The roles. An operator (SOC) sees and acts on every tenant; a tenant
// admin sees and acts on its own tenant only; a tenant viewer only reads
// its own tenant.
const (
	RoleOperator Role = "operator"
	RoleAdmin    Role = "admin"
	RoleViewer   Role = "viewer"
)

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { return r == RoleOperator || r == RoleAdmin || r == RoleViewer }

// Defaults of AccountsConfig.
const (
	// DefaultMaxAccounts is the cap of accounts per tenant (the
	// specification's "up to about 5 per body").
	DefaultMaxAccounts = tenant.MaxAccounts
	// MinPasswordLen is the shortest password accepted.
	MinPasswordLen = 10
	// AccountsFile is the file name of the accounts inside a data dir.
	AccountsFile = "accounts.json"
)

// Argon2Params are the argon2id parameters of new password hashes. Hashes
// carry their parameters, so changing them affects new passwords only.
type Argon2Params struct {
	Time    uint32 // iterations
	Memory  uint32 // KiB
	Threads uint8
	KeyLen  uint32
	SaltLen uint32
}

// DefaultArgon2 are OWASP's recommended argon2id parameters (2023
// cheat sheet): 19 MiB of memory, 2 iterations, 1 thread, a 16-byte salt
// and a 32-byte hash. BenchmarkHashPassword measures one hash (README.md).
var DefaultArgon2 = Argon2Params{Time: 2, Memory: 19 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}

// Errors of Accounts.
var (
	ErrAccountExists  = errors.New("console: account already exists")
	ErrNoAccount      = errors.New("console: no such account")
	ErrTooManyAccount = errors.New("console: too many accounts for the tenant")
)

// Account is one console login. Operators have no Tenant.
type Account struct {
	User    string    `json:"user"`
	Tenant  string    `json:"tenant,omitempty"`
	Role    Role      `json:"role"`
	Hash    string    `json:"hash"`           // argon2id, PHC string form
	TOTP    string    `json:"totp,omitempty"` // base32 secret; empty = no second factor
	Created time.Time `json:"created"`
}

// AccountsConfig configures OpenAccounts.
type AccountsConfig struct {
	// Path is the JSON file of the accounts; created on the first Add.
	// Required.
	Path string
	// MaxPerTenant caps the accounts of one tenant; 0 means
	// DefaultMaxAccounts (5).
	MaxPerTenant int
	// Argon2 are the hash parameters of new passwords; the zero value
	// means DefaultArgon2.
	Argon2 Argon2Params
	// Now gives the time; nil means time.Now.
	Now func() time.Time
}

// Accounts is the account file: accounts with argon2id password hashes
// and optional TOTP secrets, written atomically (temporary file, fsync,
// rename). A change made by another process (the `seccloud account`
// command) is picked up at the next lookup. Safe for concurrent use.
type Accounts struct {
	cfg   AccountsConfig
	mu    sync.Mutex
	users map[string]*Account
	stamp fileStamp
	dummy string // hash verified for unknown users, so timing does not tell
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// OpenAccounts reads the account file (a missing file is an empty set).
func OpenAccounts(cfg AccountsConfig) (*Accounts, error) {
	if cfg.Path == "" {
		return nil, errors.New("console: AccountsConfig.Path is required")
	}
	if cfg.MaxPerTenant == 0 {
		cfg.MaxPerTenant = DefaultMaxAccounts
	}
	if cfg.MaxPerTenant < 0 {
		return nil, fmt.Errorf("console: AccountsConfig.MaxPerTenant %d is negative", cfg.MaxPerTenant)
	}
	if cfg.Argon2 == (Argon2Params{}) {
		cfg.Argon2 = DefaultArgon2
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Accounts{cfg: cfg}
	var err error
	if a.dummy, err = hashPassword("dummy password for unknown users", cfg.Argon2); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.load(true); err != nil {
		return nil, err
	}
	return a, nil
}

// load re-reads the file if it changed since the last read (always when
// force). Called with mu held.
func (a *Accounts) load(force bool) error {
	st, err := os.Stat(a.cfg.Path)
	if errors.Is(err, os.ErrNotExist) {
		if a.users == nil || force {
			a.users = map[string]*Account{}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("console: accounts: %w", err)
	}
	stamp := fileStamp{st.ModTime(), st.Size()}
	if !force && stamp == a.stamp && a.users != nil {
		return nil
	}
	b, err := os.ReadFile(a.cfg.Path)
	if err != nil {
		return fmt.Errorf("console: accounts: %w", err)
	}
	var list []*Account
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("console: accounts: %s: %w", a.cfg.Path, err)
	}
	users := make(map[string]*Account, len(list))
	for _, acc := range list {
		users[acc.User] = acc
	}
	a.users, a.stamp = users, stamp
	return nil
}

func (a *Accounts) save() error {
	list := make([]*Account, 0, len(a.users))
	for _, acc := range a.users {
		list = append(list, acc)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].User < list[j].User })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(a.cfg.Path), 0o750); err != nil {
		return fmt.Errorf("console: accounts: %w", err)
	}
	if err := tenant.WriteFileAtomic(a.cfg.Path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("console: accounts: %w", err)
	}
	if st, err := os.Stat(a.cfg.Path); err == nil {
		a.stamp = fileStamp{st.ModTime(), st.Size()}
	}
	return nil
}

// ValidUser reports whether name is an acceptable login name: 1–64 of
// a-z, 0-9, '.', '_', '-'.
func ValidUser(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Add creates an account. Operators must have no tenant, tenant admins and
// viewers must have one; a tenant holds at most MaxPerTenant accounts.
func (a *Accounts) Add(user, tenantID string, role Role, password string) error {
	switch {
	case !ValidUser(user):
		return fmt.Errorf("console: user %q: want 1-64 of a-z 0-9 . _ -", user)
	case !role.Valid():
		return fmt.Errorf("console: role %q: want operator, admin or viewer", role)
	case role == RoleOperator && tenantID != "":
		return errors.New("console: an operator belongs to no tenant")
	case role != RoleOperator && tenantID == "":
		return fmt.Errorf("console: role %s needs a tenant", role)
	case len([]rune(password)) < MinPasswordLen:
		return fmt.Errorf("console: password too short (want at least %d characters)", MinPasswordLen)
	}
	h, err := hashPassword(password, a.cfg.Argon2)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.load(false); err != nil {
		return err
	}
	if _, ok := a.users[user]; ok {
		return fmt.Errorf("%w: %s", ErrAccountExists, user)
	}
	if tenantID != "" {
		n := 0
		for _, acc := range a.users {
			if acc.Tenant == tenantID {
				n++
			}
		}
		if n >= a.cfg.MaxPerTenant {
			return fmt.Errorf("%w: %s has %d (at most %d)", ErrTooManyAccount, tenantID, n, a.cfg.MaxPerTenant)
		}
	}
	a.users[user] = &Account{User: user, Tenant: tenantID, Role: role, Hash: h, Created: a.cfg.Now().UTC()}
	return a.save()
}

// SetPassword replaces an account's password.
func (a *Accounts) SetPassword(user, password string) error {
	if len([]rune(password)) < MinPasswordLen {
		return fmt.Errorf("console: password too short (want at least %d characters)", MinPasswordLen)
	}
	h, err := hashPassword(password, a.cfg.Argon2)
	if err != nil {
		return err
	}
	return a.update(user, func(acc *Account) { acc.Hash = h })
}

// SetTOTP sets (secret in base32) or clears ("") an account's second
// factor.
func (a *Accounts) SetTOTP(user, secret string) error {
	if secret != "" {
		if _, err := decodeTOTPSecret(secret); err != nil {
			return err
		}
	}
	return a.update(user, func(acc *Account) { acc.TOTP = secret })
}

// Remove deletes an account.
func (a *Accounts) Remove(user string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.load(false); err != nil {
		return err
	}
	if _, ok := a.users[user]; !ok {
		return fmt.Errorf("%w: %s", ErrNoAccount, user)
	}
	delete(a.users, user)
	return a.save()
}

func (a *Accounts) update(user string, fn func(*Account)) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.load(false); err != nil {
		return err
	}
	acc, ok := a.users[user]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoAccount, user)
	}
	cp := *acc
	fn(&cp)
	a.users[user] = &cp
	return a.save()
}

// List returns the accounts sorted by user, without their hashes and
// secrets.
func (a *Accounts) List() []Account {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.load(false)
	out := make([]Account, 0, len(a.users))
	for _, acc := range a.users {
		cp := *acc
		cp.Hash, cp.TOTP = "", ""
		if acc.TOTP != "" {
			cp.TOTP = "set"
		}
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

// Len returns the number of accounts.
func (a *Accounts) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.load(false)
	return len(a.users)
}

// lookup returns a copy of the account (hash and secret included).
func (a *Accounts) lookup(user string) (Account, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.load(false)
	acc, ok := a.users[user]
	if !ok {
		return Account{}, false
	}
	return *acc, true
}

// Verify checks user's password; it takes as long for an unknown user as
// for a known one.
func (a *Accounts) Verify(user, password string) (Account, bool) {
	acc, ok := a.lookup(user)
	h := acc.Hash
	if !ok {
		h = a.dummy
	}
	good := checkPassword(h, password)
	if !ok || !good {
		return Account{}, false
	}
	return acc, true
}

// hashPassword returns the PHC string form of an argon2id hash:
// $argon2id$v=19$m=19456,t=2,p=1$SALT$HASH (unpadded base64).
func hashPassword(password string, p Argon2Params) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("console: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// checkPassword verifies password against a PHC argon2id string.
func checkPassword(phc, password string) bool {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var v int
	var p Argon2Params
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil ||
		p.Memory == 0 || p.Memory > 1<<18 || p.Time == 0 || p.Time > 16 || p.Threads == 0 || p.Threads > 16 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 128 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// RandomPassword returns a random password of 20 characters from an
// alphabet without look-alikes (about 110 bits).
func RandomPassword() (string, error) {
	const alpha = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	out := make([]byte, 0, 20)
	var buf [32]byte
	for len(out) < 20 {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", err
		}
		for _, c := range buf {
			// Rejection sampling: 224 = 4*56, so no character is favoured.
			if int(c) < 4*len(alpha) && len(out) < 20 {
				out = append(out, alpha[int(c)%len(alpha)])
			}
		}
	}
	return string(out), nil
}
