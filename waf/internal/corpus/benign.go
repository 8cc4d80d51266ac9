package corpus

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// UserAgents returns one benign GET / per distinct line of the CRS
// popular user agents file.
func UserAgents(file string) ([]Case, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	defer f.Close()
	seen := map[string]bool{}
	var out []Case
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ua := strings.TrimSpace(sc.Text())
		if ua == "" || seen[ua] {
			continue
		}
		seen[ua] = true
		out = append(out, Case{Set: "waf-benign", Name: "popular-user-agents", Class: "benign user agents",
			Payload: ua, Encoder: "Plain", Placeholder: "UserAgent", Method: "GET", Target: "/",
			Header: [][2]string{{"User-Agent", ua}}})
	}
	return out, sc.Err()
}

// Nemesida returns the false-positive requests of the Nemesida WAF
// bypass tool's FP files in dir: each zone once plain and once per
// listed encoding.
func Nemesida(dir string, rnd func() string) ([]Case, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	sort.Strings(files)
	var out []Case
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			return nil, fmt.Errorf("corpus: %w", err)
		}
		var doc struct {
			Payload []map[string]any `json:"payload"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("corpus: %s: %w", fn, err)
		}
		for _, p := range doc.Payload {
			encs := []string{"Plain"}
			if e, _ := p["ENCODE"].(string); e != "" {
				encs = append(encs, strings.Fields(e)...)
			}
			zones := make([]string, 0, len(p))
			for k := range p {
				zones = append(zones, k)
			}
			sort.Strings(zones)
			for _, zone := range zones {
				v, ok := p[zone].(string)
				if !ok || zone == "ENCODE" {
					continue
				}
				for _, enc := range encs {
					if enc != "Plain" && (zone == "URL" || zone == "USER-AGENT" || zone == "REFERER") {
						continue
					}
					c := Case{Set: "waf-benign", Name: "nemesida-" + strings.TrimSuffix(filepath.Base(fn), ".json"),
						Class: "benign nemesida", Payload: v, Encoder: enc, Placeholder: zone, Method: "GET", Target: "/"}
					ev := nemEncode(enc, zone, v)
					switch zone {
					case "URL":
						c.Target = v
					case "ARGS":
						c.Target = "/?" + ev
					case "BODY":
						c.Method = "POST"
						c.Header = append(c.Header, [2]string{"Content-Type", "application/x-www-form-urlencoded"})
						c.Body = []byte(ev)
					case "COOKIE":
						c.Header = append(c.Header, [2]string{"Cookie", ev})
					case "USER-AGENT":
						c.Header = append(c.Header, [2]string{"User-Agent", v})
					case "REFERER":
						c.Header = append(c.Header, [2]string{"Referer", v})
					case "HEADER":
						c.Header = append(c.Header, [2]string{"WBH-" + rnd()[:6], ev})
					default:
						continue
					}
					out = append(out, c)
				}
			}
		}
	}
	return out, nil
}

func nemEncode(enc, zone, v string) string {
	one := func(s string) string {
		switch enc {
		case "Base64":
			return base64.StdEncoding.EncodeToString([]byte(s))
		case "UTF-16":
			var b strings.Builder
			for _, r := range s {
				fmt.Fprintf(&b, "\\u00%02x", r)
			}
			return b.String()
		case "HTML-ENTITY":
			return url.QueryEscape(html.EscapeString(s))
		}
		return s
	}
	if enc == "Plain" {
		return v
	}
	if (zone == "ARGS" || zone == "BODY") && strings.Contains(v, "=") {
		parts := strings.Split(v, "&")
		for i, kv := range parts {
			k, val, _ := strings.Cut(kv, "=")
			parts[i] = k + "=" + one(val)
		}
		return strings.Join(parts, "&")
	}
	return one(v)
}
