package console

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAccountsRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", AccountsFile)
	a, err := OpenAccounts(AccountsConfig{Path: path, MaxPerTenant: 2, Argon2: cheapArgon2})
	require.NoError(t, err)
	cases := []struct {
		name, user, tenant string
		role               Role
		pw                 string
		err                string
	}{
		{"operator", "soc", "", RoleOperator, testPassword, ""},
		{"admin", "a1", "aoba", RoleAdmin, testPassword, ""},
		{"viewer", "a2", "aoba", RoleViewer, testPassword, ""},
		{"over the cap", "a3", "aoba", RoleViewer, testPassword, "too many accounts"},
		{"duplicate", "soc", "", RoleOperator, testPassword, "already exists"},
		{"operator with tenant", "soc2", "aoba", RoleOperator, testPassword, "no tenant"},
		{"admin without tenant", "x", "", RoleAdmin, testPassword, "needs a tenant"},
		{"short password", "x", "midori", RoleAdmin, "short", "too short"},
		{"bad name", "X Y", "midori", RoleAdmin, testPassword, "want 1-64"},
		{"bad role", "x", "midori", Role("root"), testPassword, "want operator"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := a.Add(c.user, c.tenant, c.role, c.pw)
			if c.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, c.err)
			}
		})
	}
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.NotContains(t, string(b), testPassword)
	assert.Contains(t, string(b), "$argon2id$v=19$m=64,t=1,p=1$")

	_, ok := a.Verify("a1", testPassword)
	assert.True(t, ok)
	_, ok = a.Verify("a1", testPassword+"x")
	assert.False(t, ok)
	_, ok = a.Verify("nobody", testPassword)
	assert.False(t, ok)
	for _, acc := range a.List() {
		assert.Empty(t, acc.Hash, "List never hands out hashes")
	}
}

// Another process (the seccloud account command) adds an account: the
// running console sees it at the next lookup.
func TestAccountsReloadAfterOutsideChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), AccountsFile)
	running, err := OpenAccounts(AccountsConfig{Path: path, Argon2: cheapArgon2})
	require.NoError(t, err)
	cli, err := OpenAccounts(AccountsConfig{Path: path, Argon2: cheapArgon2})
	require.NoError(t, err)
	require.NoError(t, cli.Add("new-op", "", RoleOperator, testPassword))
	_, ok := running.Verify("new-op", testPassword)
	assert.True(t, ok)
	require.NoError(t, cli.SetPassword("new-op", "another password!"))
	// Same size, maybe the same mtime granularity: force a visible change.
	future := time.Now().Add(time.Second)
	require.NoError(t, os.Chtimes(path, future, future))
	_, ok = running.Verify("new-op", "another password!")
	assert.True(t, ok)
}

func TestDefaultArgon2Hash(t *testing.T) {
	h, err := hashPassword(testPassword, DefaultArgon2)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$"), h)
	assert.True(t, checkPassword(h, testPassword))
	assert.False(t, checkPassword(h, "wrong"))
}

func TestRandomPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		p, err := RandomPassword()
		require.NoError(t, err)
		require.Len(t, p, 20)
		assert.False(t, seen[p])
		seen[p] = true
	}
}

func TestAuditAppendAndRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), AuditFile)
	a, err := OpenAudit(path)
	require.NoError(t, err)
	require.NoError(t, a.Append(AuditEntry{User: "soc", Action: "login", Outcome: "success", Remote: "127.0.0.1"}))
	require.NoError(t, a.Close())
	// A torn last line (crash mid-write) is skipped; the log goes on.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, _ = f.WriteString(`{"time":"2026-`)
	f.Close()
	a, err = OpenAudit(path)
	require.NoError(t, err)
	defer a.Close()
	list, err := a.Entries(nil)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "soc", list[0].User)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}
