package families

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFamiliesGenerateValidDeterministicNames(t *testing.T) {
	words := []string{"thick", "arrive", "weather", "distance", "follow", "garden"}
	require.Len(t, All, 18)
	seen := map[string]bool{}
	for _, f := range All {
		assert.False(t, seen[f.Name], "duplicate family %s", f.Name)
		seen[f.Name] = true
		a := f.Generate(7, 50, words)
		assert.Equal(t, a, f.Generate(7, 50, words), "%s: same seed, same names", f.Name)
		for _, n := range a {
			_, ok := dns.IsDomainName(n)
			assert.True(t, ok, "%s: %q", f.Name, n)
			assert.Contains(t, n, ".", f.Name)
		}
	}
}
