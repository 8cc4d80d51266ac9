// Package corpus turns the shared WAF test corpora (gotestwaf test cases,
// CRS regression tests, benign sets) into HTTP requests, for the
// detection-quality runners of package waf. It only builds requests; the
// runners send them.
package corpus

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime/multipart"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode/utf16"

	yaml "go.yaml.in/yaml/v3"
)

// Case is one request of a corpus and the verdict wanted.
type Case struct {
	// Set and Name identify the test case file (gotestwaf: "owasp",
	// "sql-injection"); Class is the attack class reported in tables.
	Set, Name, Class string
	Payload          string
	Encoder          string
	Placeholder      string
	// Attack is true when the WAF should block, false for benign cases.
	Attack bool
	// The request. Target is the request target as sent ("/x?y").
	Method string
	Target string
	Header [][2]string
	Body   []byte
}

// Raw renders c as an HTTP/1.1 request for host.
func (c *Case) Raw(host string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", c.Method, c.Target, host)
	hasUA, hasCT := false, false
	for _, h := range c.Header {
		if strings.EqualFold(h[0], "User-Agent") {
			hasUA = true
		}
		if strings.EqualFold(h[0], "Content-Type") {
			hasCT = true
		}
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	_ = hasCT
	if !hasUA {
		b.WriteString("User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n")
	}
	b.WriteString("Accept: */*\r\n")
	if len(c.Body) > 0 || c.Method == "POST" || c.Method == "PUT" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(c.Body))
	}
	b.WriteString("Connection: close\r\n\r\n")
	b.Write(c.Body)
	return b.Bytes()
}

type gtwFile struct {
	Payload     []string `yaml:"payload"`
	Encoder     []string `yaml:"encoder"`
	Placeholder []any    `yaml:"placeholder"`
	Type        string   `yaml:"type"`
}

// badEscape is the `\'` in double-quoted scalars some files carry.
var badEscape = regexp.MustCompile(`\\'`)

// GoTestWAF loads every test case under dir (the testcases folder) and
// returns every payload x encoder x placeholder request. rnd gives the
// random names (a deterministic source keeps runs comparable). gRPC
// cases are skipped (no gRPC endpoint).
func GoTestWAF(dir string, rnd func() string) ([]Case, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	sort.Strings(files)
	var out []Case
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("corpus: %w", err)
		}
		var tf gtwFile
		if err := yaml.Unmarshal(raw, &tf); err != nil {
			if err2 := yaml.Unmarshal(badEscape.ReplaceAll(raw, []byte("'")), &tf); err2 != nil {
				return nil, fmt.Errorf("corpus: %s: %w", f, err)
			}
		}
		set := filepath.Base(filepath.Dir(f))
		name := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		class := tf.Type
		if class == "" {
			class = "false-positive texts"
		}
		attack := !strings.Contains(set, "false")
		for _, p := range tf.Payload {
			for _, enc := range tf.Encoder {
				ep, err := encode(enc, p)
				if err != nil {
					return nil, fmt.Errorf("corpus: %s: %w", f, err)
				}
				for _, ph := range tf.Placeholder {
					c := Case{Set: set, Name: name, Class: class, Payload: p, Encoder: enc, Attack: attack}
					if !place(&c, ph, ep, p, rnd) {
						continue
					}
					out = append(out, c)
				}
			}
		}
	}
	return out, nil
}

func encode(enc, p string) (string, error) {
	switch enc {
	case "Plain":
		return p, nil
	case "URL":
		return url.PathEscape(p), nil
	case "Base64":
		return base64.StdEncoding.EncodeToString([]byte(p)), nil
	case "Base64Flat":
		return strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(p)), "="), nil
	case "JSUnicode":
		return jsUnicode(p), nil
	case "XMLEntity":
		var b bytes.Buffer
		for _, r := range p {
			switch r {
			case '<':
				b.WriteString("&lt;")
			case '>':
				b.WriteString("&gt;")
			case '&':
				b.WriteString("&amp;")
			case '\'':
				b.WriteString("&#39;")
			case '"':
				b.WriteString("&#34;")
			default:
				b.WriteRune(r)
			}
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("unknown encoder %q", enc)
}

func jsUnicode(s string) string {
	var b strings.Builder
	for _, u := range utf16.Encode([]rune(s)) {
		fmt.Fprintf(&b, "\\u%04x", u)
	}
	return b.String()
}

// place builds the request for placeholder ph with the encoded payload
// ep (p is the raw payload, for RawRequest headers/body).
func place(c *Case, ph any, ep, p string, rnd func() string) bool {
	name, conf := "", map[string]any{}
	switch t := ph.(type) {
	case string:
		name = t
	case map[string]any:
		for k, v := range t {
			name = k
			if m, ok := v.(map[string]any); ok {
				conf = m
			}
		}
	}
	c.Placeholder = name
	c.Method = "GET"
	c.Target = "/"
	switch name {
	case "URLPath":
		c.Target = "/" + ep
	case "URLParam":
		c.Target = "/?" + rnd() + "=" + ep
	case "Header":
		c.Header = append(c.Header, [2]string{"X-" + rnd(), ep})
	case "UserAgent":
		c.Header = append(c.Header, [2]string{"User-Agent", ep})
	case "HTMLForm":
		c.Method = "POST"
		c.Header = append(c.Header, [2]string{"Content-Type", "application/x-www-form-urlencoded"})
		c.Body = []byte(rnd() + "=" + ep)
	case "HTMLMultipartForm":
		c.Method = "POST"
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		_ = mw.WriteField(rnd(), ep)
		_ = mw.Close()
		c.Header = append(c.Header, [2]string{"Content-Type", mw.FormDataContentType()})
		c.Body = b.Bytes()
	case "JSONRequest":
		c.Method = "POST"
		c.Header = append(c.Header, [2]string{"Content-Type", "application/json"})
		c.Body = []byte(`{"test": true, "` + rnd() + `": "` + jsUnicode(ep) + `"}`)
	case "JSONBody":
		c.Method = "POST"
		c.Header = append(c.Header, [2]string{"Content-Type", "application/json"})
		c.Body = []byte(ep)
	case "RequestBody":
		c.Method = "POST"
		c.Body = []byte(ep)
	case "XMLBody":
		c.Method = "POST"
		c.Header = append(c.Header, [2]string{"Content-Type", "application/xml"})
		c.Body = []byte(ep)
	case "SOAPBody":
		c.Method = "POST"
		c.Header = append(c.Header, [2]string{"Content-Type", "text/xml"}, [2]string{"SOAPAction", `"http://schemas.xmlsoap.org/soap/actor/next"`})
		var esc bytes.Buffer
		for _, r := range ep {
			switch r {
			case '<':
				esc.WriteString("&lt;")
			case '>':
				esc.WriteString("&gt;")
			case '&':
				esc.WriteString("&amp;")
			case '\'':
				esc.WriteString("&#39;")
			case '"':
				esc.WriteString("&#34;")
			default:
				esc.WriteRune(r)
			}
		}
		n := rnd()
		c.Body = []byte(`<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><ab` + n + `>` + esc.String() + `</ab` + n + `></soap:Body></soap:Envelope>`)
	case "GraphQL":
		if m, _ := conf["method"].(string); strings.EqualFold(m, "POST") {
			c.Method = "POST"
			c.Header = append(c.Header, [2]string{"Content-Type", "application/json"})
			c.Body = []byte(ep)
		} else {
			c.Target = "/graphql?query=" + url.QueryEscape(ep)
		}
	case "RawRequest":
		if m, _ := conf["method"].(string); m != "" {
			c.Method = m
		}
		if pth, _ := conf["path"].(string); pth != "" {
			c.Target = strings.ReplaceAll(pth, "{{payload}}", url.PathEscape(ep))
		}
		if hs, ok := conf["headers"].(map[string]any); ok {
			keys := make([]string, 0, len(hs))
			for k := range hs {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				v := fmt.Sprint(hs[k])
				c.Header = append(c.Header, [2]string{k, strings.ReplaceAll(v, "{{payload}}", ep)})
			}
		}
		if b, _ := conf["body"].(string); b != "" {
			c.Body = []byte(strings.ReplaceAll(b, "{{payload}}", ep))
		}
	default: // gRPC and unknown placeholders
		return false
	}
	return true
}
