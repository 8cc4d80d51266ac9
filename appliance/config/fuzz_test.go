package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the loader: it must return a config or
// errors, never panic, and every error must carry the file name. Seeds: the
// demo and every file in testdata/; crashers go to testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add(Demo())
	files, _ := filepath.Glob("testdata/*.*")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err == nil {
			if c == nil || c.Directory() == nil || c.Version != Version {
				t.Fatalf("nil error but config %+v", c)
			}
			return
		}
		errs, ok := err.(Errors)
		if !ok || len(errs) == 0 {
			t.Fatalf("want non-empty Errors, got %T %v", err, err)
		}
		for _, e := range errs {
			if e.File != "fuzz.yaml" || e.Msg == "" {
				t.Fatalf("bad error %#v", e)
			}
			_ = e.Error()
		}
	})
}
