package vuln_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/jichitai/seccloud/detect/vuln"
)

// FuzzFeed: any feed bytes load or fail cleanly, and checking an inventory
// against what loaded never panics.
func FuzzFeed(f *testing.F) {
	b, err := os.ReadFile("testdata/feed.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, "http_server", "2.4.50")
	f.Fuzz(func(t *testing.T, feed []byte, product, version string) {
		fd, err := vuln.ReadFeed(bytes.NewReader(feed), "fuzz.json")
		if err != nil {
			return
		}
		inv := vuln.Inventory{}
		inv.Add("t", "h", vuln.Software{Product: product, Version: version})
		db := vuln.New(inv, fd)
		db.IsVulnerable("t", "h")
		db.VulnEvidence("t", "h")
	})
}

// FuzzCompare: Compare is antisymmetric and reflexive.
func FuzzCompare(f *testing.F) {
	f.Add("2.4.9", "2.4.10")
	f.Add("1.0.0-rc1", "1.0.0")
	f.Fuzz(func(t *testing.T, a, b string) {
		if vuln.Compare(a, b) != -vuln.Compare(b, a) {
			t.Fatalf("Compare(%q, %q) = %d, reverse %d", a, b, vuln.Compare(a, b), vuln.Compare(b, a))
		}
		if vuln.Compare(a, a) != 0 {
			t.Fatalf("Compare(%q, itself) = %d", a, vuln.Compare(a, a))
		}
	})
}
