package tenant_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/tenant"
)

func TestHistoryCommitLoadRollback(t *testing.T) {
	dir := t.TempDir()
	clock := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	h, err := tenant.OpenHistory(tenant.HistoryConfig{Dir: dir, Keep: 3, Now: func() time.Time { return clock }})
	require.NoError(t, err)

	_, ok, err := h.Latest()
	require.NoError(t, err)
	assert.False(t, ok)

	v1 := []byte("version: 1\ntenants: []\n")
	g1, created, err := h.Commit(v1, "startup")
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, 1, g1.N)

	_, created, err = h.Commit(v1, "reload")
	require.NoError(t, err)
	assert.False(t, created, "identical config makes no generation")

	v2 := []byte("version: 1\ntenants: [a]\n")
	g2, created, err := h.Commit(v2, "reload")
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, 2, g2.N)

	got, err := h.Load(1)
	require.NoError(t, err)
	assert.Equal(t, v1, got)

	// Keep=3: commit three more, the first two are pruned.
	for i := range 3 {
		_, _, err := h.Commit([]byte(fmt.Sprintf("v%d\n", i+3)), "reload")
		require.NoError(t, err)
	}
	gens, err := h.List()
	require.NoError(t, err)
	require.Len(t, gens, 3)
	assert.Equal(t, []int{3, 4, 5}, []int{gens[0].N, gens[1].N, gens[2].N})
	_, err = h.Load(1)
	assert.ErrorContains(t, err, "no generation 1 (kept: 3, 4, 5)")

	// A reopened history continues the numbering.
	h2, err := tenant.OpenHistory(tenant.HistoryConfig{Dir: dir, Keep: 3})
	require.NoError(t, err)
	g, _, err := h2.Commit([]byte("v6\n"), "x")
	require.NoError(t, err)
	assert.Equal(t, 6, g.N)
}

func TestHistoryDetectsCorruption(t *testing.T) {
	dir := t.TempDir()
	h, err := tenant.OpenHistory(tenant.HistoryConfig{Dir: dir})
	require.NoError(t, err)
	_, _, err = h.Commit([]byte("a: 1\n"), "")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "gen-000001.yaml"), []byte("a: 2\n"), 0o640))
	_, err = h.Load(1)
	assert.ErrorContains(t, err, "corrupt")
}

func TestHistoryConfigErrors(t *testing.T) {
	_, err := tenant.OpenHistory(tenant.HistoryConfig{})
	assert.ErrorContains(t, err, "Dir is required")
	_, err = tenant.OpenHistory(tenant.HistoryConfig{Dir: t.TempDir(), Keep: 1})
	assert.ErrorContains(t, err, "minimum of 2")
}

func TestUnifiedDiff(t *testing.T) {
	a := "l1\nl2\nl3\nl4\nl5\nl6\nl7\nl8\nl9\nl10\nl11\nl12\n"
	b := "l1\nl2\nX3\nl4\nl5\nl6\nl7\nl8\nl9\nl10\nl11\nl12\nl13\n"
	want := `--- a
+++ b
@@ -1,6 +1,6 @@
 l1
 l2
-l3
+X3
 l4
 l5
 l6
@@ -10,3 +10,4 @@
 l10
 l11
 l12
+l13
`
	assert.Equal(t, want, tenant.UnifiedDiff("a", "b", []byte(a), []byte(b)))
	assert.Empty(t, tenant.UnifiedDiff("a", "b", []byte(a), []byte(a)))
}

// TestUnifiedDiffAppliesWithPatch checks the diff against GNU patch, when it
// is installed, on many generated pairs of texts.
func TestUnifiedDiffAppliesWithPatch(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		t.Skip("patch not installed")
	}
	dir := t.TempDir()
	for seed := range 40 {
		a, b := genText(seed, 30), genText(seed*7+3, 30)
		d := tenant.UnifiedDiff("a", "b", []byte(a), []byte(b))
		f := filepath.Join(dir, "f")
		require.NoError(t, os.WriteFile(f, []byte(a), 0o644))
		cmd := exec.Command("patch", "-s", f)
		cmd.Stdin = strings.NewReader(d)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "seed %d: %s\n%s", seed, out, d)
		got, err := os.ReadFile(f)
		require.NoError(t, err)
		require.Equal(t, b, string(got), "seed %d", seed)
	}
}

func genText(seed, n int) string {
	var sb strings.Builder
	x := uint32(seed*2654435761 + 1)
	for range n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		fmt.Fprintf(&sb, "line %d\n", x%12)
	}
	return sb.String()
}
