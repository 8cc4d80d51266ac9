package corpus

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// CRSStage is one stage of a CRS regression test (go-ftw format).
type CRSStage struct {
	// ID is "<rule>-<test>" (with "/<stage>" when a test has several).
	ID     string
	RuleID int
	// Raw is the request as sent (verbatim request line, headers, body),
	// with Host set to host when the test's Host is "localhost".
	Raw []byte
	// Expectations on the rules that matched; Checked is false when the
	// stage only has status or regex expectations (not evaluated here).
	ExpectIDs, NoExpectIDs []int
	Checked                bool
	// Override is the reason from the Coraza overrides file, when the
	// CRS project itself expects this stage to differ on Coraza.
	Override string
}

type ftwFile struct {
	RuleID int `yaml:"rule_id"`
	Tests  []struct {
		TestID int `yaml:"test_id"`
		Stages []struct {
			Input struct {
				Method         *string           `yaml:"method"`
				URI            *string           `yaml:"uri"`
				Version        *string           `yaml:"version"`
				Headers        map[string]string `yaml:"headers"`
				Data           *string           `yaml:"data"`
				Autocomplete   *bool             `yaml:"autocomplete_headers"`
				EncodedRequest string            `yaml:"encoded_request"`
			} `yaml:"input"`
			Output struct {
				Log struct {
					ExpectIDs   []int `yaml:"expect_ids"`
					NoExpectIDs []int `yaml:"no_expect_ids"`
				} `yaml:"log"`
			} `yaml:"output"`
		} `yaml:"stages"`
	} `yaml:"tests"`
}

type ftwOverrides struct {
	TestOverrides []struct {
		RuleID  int    `yaml:"rule_id"`
		TestIDs []int  `yaml:"test_ids"`
		Reason  string `yaml:"reason"`
	} `yaml:"test_overrides"`
}

// CRSRegression loads the go-ftw tests under dir/tests with the Coraza
// overrides of dir/overrides. Requests naming Host "localhost" are sent
// with host instead.
func CRSRegression(dir, host string) ([]CRSStage, error) {
	ov := map[string]string{}
	if b, err := os.ReadFile(filepath.Join(dir, "overrides", "coraza-overrides.yaml")); err == nil {
		var o ftwOverrides
		if err := yaml.Unmarshal(b, &o); err != nil {
			return nil, fmt.Errorf("corpus: coraza overrides: %w", err)
		}
		for _, t := range o.TestOverrides {
			for _, id := range t.TestIDs {
				ov[fmt.Sprintf("%d-%d", t.RuleID, id)] = t.Reason
			}
		}
	}
	var files []string
	err := filepath.WalkDir(filepath.Join(dir, "tests"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	sort.Strings(files)
	var out []CRSStage
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("corpus: %w", err)
		}
		var ff ftwFile
		if err := yaml.Unmarshal(b, &ff); err != nil {
			return nil, fmt.Errorf("corpus: %s: %w", f, err)
		}
		for _, t := range ff.Tests {
			for si, st := range t.Stages {
				id := fmt.Sprintf("%d-%d", ff.RuleID, t.TestID)
				s := CRSStage{ID: id, RuleID: ff.RuleID, Override: ov[id],
					ExpectIDs: st.Output.Log.ExpectIDs, NoExpectIDs: st.Output.Log.NoExpectIDs}
				if len(t.Stages) > 1 {
					s.ID += "/" + strconv.Itoa(si+1)
				}
				s.Checked = len(s.ExpectIDs)+len(s.NoExpectIDs) > 0
				in := st.Input
				if in.EncodedRequest != "" {
					raw, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(in.EncodedRequest, "\n", ""))
					if err != nil {
						return nil, fmt.Errorf("corpus: %s test %d: %w", f, t.TestID, err)
					}
					s.Raw = bytes.Replace(raw, []byte("Host: localhost"), []byte("Host: "+host), 1)
					out = append(out, s)
					continue
				}
				method, uri, version := "GET", "/", "HTTP/1.1"
				if in.Method != nil {
					method = *in.Method
				}
				if in.URI != nil {
					uri = *in.URI
				}
				if in.Version != nil {
					version = *in.Version
				}
				var buf bytes.Buffer
				buf.WriteString(method + " " + uri)
				if version != "" {
					buf.WriteString(" " + version)
				}
				buf.WriteString("\r\n")
				names := make([]string, 0, len(in.Headers))
				for k := range in.Headers {
					names = append(names, k)
				}
				sort.Strings(names)
				hasCL, hasConn, hasCT := false, false, false
				for _, k := range names {
					v := in.Headers[k]
					if strings.EqualFold(k, "Host") && v == "localhost" {
						v = host
					}
					hasCL = hasCL || strings.EqualFold(k, "Content-Length") || strings.EqualFold(k, "Transfer-Encoding")
					hasConn = hasConn || strings.EqualFold(k, "Connection")
					hasCT = hasCT || strings.EqualFold(k, "Content-Type")
					buf.WriteString(k + ": " + v + "\r\n")
				}
				data := ""
				if in.Data != nil {
					data = *in.Data
				}
				auto := in.Autocomplete == nil || *in.Autocomplete
				if auto && !hasCL && data != "" {
					fmt.Fprintf(&buf, "Content-Length: %d\r\n", len(data))
				}
				if auto && !hasCT && data != "" {
					// go-ftw sends data as a form when no type is given
					buf.WriteString("Content-Type: application/x-www-form-urlencoded\r\n")
				}
				if auto && !hasConn {
					buf.WriteString("Connection: close\r\n")
				}
				buf.WriteString("\r\n")
				buf.WriteString(data)
				s.Raw = buf.Bytes()
				out = append(out, s)
			}
		}
	}
	return out, nil
}
