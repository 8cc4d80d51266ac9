package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAccountCommand creates accounts with the binary (password on stdin),
// then logs in on the running appliance's console with them.
func TestAccountCommand(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	console := freeAddr(t)
	cfg := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(configYAML(filepath.Join(dir, "data"), console,
		tenantYAML("aoba", "あおば市", "127.0.1.0/24"), tenantYAML("midori", "みどり町", "127.0.2.0/24"))), 0o600))
	add := func(stdin string, args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"account", "add", "-config", cfg}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		require.NoError(t, err)
		return string(out), 0
	}
	out, rc := add("aoba admin password\n", "-user", "aoba-admin", "-role", "admin", "-tenant", "aoba")
	require.Equal(t, 0, rc, out)
	out, rc = add("operator password!\n", "--user", "soc", "--role", "operator")
	require.Equal(t, 0, rc, out)
	out, rc = add("", "-user", "x", "-role", "viewer", "-tenant", "aoba")
	assert.Equal(t, 1, rc, "no password on stdin")
	assert.Contains(t, out, "no password")
	out, rc = add("short\n", "-user", "x", "-role", "viewer", "-tenant", "aoba")
	assert.Equal(t, 1, rc)
	assert.Contains(t, out, "too short")
	_, rc = add("x\n", "-role", "viewer")
	assert.Equal(t, 2, rc, "usage: no -user")
	_, rc = add("x\n", "-user", "x", "-role", "root")
	assert.Equal(t, 2, rc, "usage: bad role")
	out, rc = seccloud(t, bin, "account", "list", "-config", cfg)
	require.Equal(t, 0, rc, out)
	assert.Contains(t, out, "aoba-admin")
	assert.Contains(t, out, "soc")
	st, err := os.Stat(filepath.Join(dir, "data", "console", "accounts.json"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	a := start(t, bin, console, "-config", cfg)
	res, err := http.Post("http://"+console+"/api/v1/session", "application/json",
		bytes.NewReader([]byte(`{"user":"aoba-admin","password":"aoba admin password"}`)))
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	// An account added while the appliance runs works at once.
	out, rc = add("viewer password!\n", "-user", "aoba-view", "-role", "viewer", "-tenant", "aoba")
	require.Equal(t, 0, rc, out)
	res, err = http.Post("http://"+console+"/api/v1/session", "application/json",
		bytes.NewReader([]byte(`{"user":"aoba-view","password":"viewer password!"}`)))
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	a.signal(syscall.SIGTERM)
	require.NoError(t, a.wait(30*time.Second))
}
