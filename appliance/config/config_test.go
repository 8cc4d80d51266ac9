package config

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestGoldenErrors checks the complete error output of each bad config
// against testdata/NAME.golden (go test -update rewrites them).
func TestGoldenErrors(t *testing.T) {
	for _, name := range []string{"overlap.yaml", "many.yaml", "unknown.yaml", "syntax.yaml", "twodocs.yaml", "empty.yaml", "detect_notify.yaml"} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join("testdata", name)
			_, err := Load(file)
			require.Error(t, err)
			var errs Errors
			require.True(t, errors.As(err, &errs), "want config.Errors, got %T", err)
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, filepath.Ext(file)) + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err)
			assert.Equal(t, string(want), got)
		})
	}
}

func TestOverlapNamesBothTenants(t *testing.T) {
	_, err := Load("testdata/overlap.yaml")
	var errs Errors
	require.True(t, errors.As(err, &errs))
	require.Len(t, errs, 1)
	e := errs[0]
	assert.Equal(t, 12, e.Line)
	assert.Equal(t, 9, e.Column)
	assert.Equal(t, "tenants[1].networks[0]", e.Path)
	assert.Equal(t, "yokkaichi", e.Tenant)
	msg := e.Error()
	for _, want := range []string{`"yokkaichi"`, `"tsu"`, "networks[0]", "10.1.2.0/24", "10.1.0.0/16", "overlap.yaml:7:16"} {
		assert.Contains(t, msg, want)
	}
}

func TestUnknownKeysRejected(t *testing.T) {
	cases := []struct {
		name, yaml, path string
		line, col        int
	}{
		{"top level", "version: 1\nlisten: {console: 127.0.0.1:1}\nlog_level: debug\n", "log_level", 3, 1},
		{"nested", "version: 1\nlisten:\n  console: 127.0.0.1:1\n  http: :80\n", "listen.http", 4, 3},
		{"in tenant", "version: 1\nlisten: {console: 127.0.0.1:1}\ntenants:\n- id: a\n  name: a\n  networks: 10.0.0.0/8\n  egress_addr: 192.0.2.1\n  colour: red\n", "tenants[0].colour", 8, 3},
		{"in site", "version: 1\nlisten: {console: 127.0.0.1:1}\ntenants:\n- id: a\n  name: a\n  egress_addr: 192.0.2.1\n  sites: [{host: a.jp, origins: [a:80], cert: x}]\n", "tenants[0].sites[0].cert", 7, 41},
		{"json", `{"version": 1, "listen": {"console": "127.0.0.1:1"}, "extra": 1}`, "extra", 1, 54},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.yaml))
			var errs Errors
			require.True(t, errors.As(err, &errs), "err = %v", err)
			require.Len(t, errs, 1, "%v", err)
			assert.Equal(t, tc.path, errs[0].Path)
			assert.Equal(t, tc.line, errs[0].Line)
			assert.Equal(t, tc.col, errs[0].Column)
			assert.Contains(t, errs[0].Msg, "unknown key")
		})
	}
}

func TestDemo(t *testing.T) {
	c, err := LoadDemo()
	require.NoError(t, err)
	assert.Equal(t, DemoName, c.File())
	assert.Equal(t, "127.0.0.1:9090", c.Listen.Console)
	assert.Equal(t, "127.0.0.1:3128", c.Listen.Proxy)
	assert.Equal(t, "127.0.0.1:5353", c.Listen.DNS)
	assert.Equal(t, "127.0.0.1:2525", c.Listen.SMTP)
	assert.Equal(t, "127.0.0.1:8080", c.Listen.WAFHTTP)
	assert.Equal(t, "127.0.0.1:8443", c.Listen.WAFHTTPS)
	for _, addr := range []string{c.Listen.Proxy, c.Listen.DNS, c.Listen.SMTP, c.Listen.WAFHTTP, c.Listen.WAFHTTPS, c.Listen.Console} {
		assert.True(t, strings.HasPrefix(addr, "127.0.0.1:"), addr)
	}
	dir := c.Directory()
	require.NotNil(t, dir)
	a, ok := dir.ByAddr(netip.MustParseAddr("127.0.1.5"))
	require.True(t, ok)
	assert.Equal(t, "あおば市", a.Name)
	b, ok := dir.ByAddr(netip.MustParseAddr("127.0.2.5"))
	require.True(t, ok)
	assert.Equal(t, "みどり町", b.Name)
	assert.Equal(t, 100, a.Bandwidth.UpMbps)
	assert.Equal(t, 100, a.Bandwidth.DownMbps)
	assert.Equal(t, 20, b.Bandwidth.UpMbps)
	assert.Equal(t, 50, b.Bandwidth.DownMbps)
	assert.Equal(t, "./seccloud-data", c.DataDir)
	assert.Equal(t, 10, c.History.Keep)
	assert.Equal(t, Duration(5*Year), c.Store.Retention)
	for _, name := range FunctionNames {
		assert.True(t, c.Functions.Enabled(name), name)
	}
	assert.Equal(t, Demo(), c.Raw())
}

func TestJSONAccepted(t *testing.T) {
	c, err := Load("testdata/json.json")
	require.NoError(t, err)
	require.Len(t, c.Tenants, 1)
	assert.Equal(t, "津市", c.Tenants[0].Name)
	assert.Equal(t, Bandwidth{Up: 50, Down: 200}, c.Tenants[0].BandwidthMbps)
	assert.Len(t, c.Tenants[0].Networks, 2)
}

func TestDefaultsAndForms(t *testing.T) {
	c, err := Parse("/etc/seccloud/c.yaml", []byte(`
version: 1
listen: {console: "[::1]:0"}
functions: {proxy: false}
tenants:
  - id: a
    name: A
    networks: 10.0.0.0/8          # one value for a list
    egress_addr: 192.0.2.1
    bandwidth_mbps: 30
base: &base
  x: 1
`))
	require.Error(t, err, "an anchor under an unknown key is still unknown")
	c, err = Parse("/etc/seccloud/c.yaml", []byte(`
version: 1
data_dir: data
listen: {console: "[::1]:0"}
functions: {proxy: false}
tenants:
  - &a
    id: a
    name: A
    networks: 10.0.0.0/8
    egress_addr: 192.0.2.1
    bandwidth_mbps: 30
    policy: {report_only: true}
  - <<: *a
    id: b
    networks: [172.16.0.0/12]
store: {retention: 30d}
`))
	require.NoError(t, err)
	assert.Equal(t, "/etc/seccloud/data/events", c.StoreDir())
	assert.Equal(t, "/etc/seccloud/data/config-history", c.HistoryDir())
	assert.False(t, c.Functions.Enabled("proxy"))
	assert.True(t, c.Functions.Enabled("waf"))
	assert.Equal(t, Bandwidth{Up: 30, Down: 30}, c.Tenants[0].BandwidthMbps)
	assert.Equal(t, "A", c.Tenants[1].Name)
	assert.True(t, c.Tenants[1].Policy.ReportOnly)
	assert.Equal(t, Duration(30*24*time.Hour), c.Store.Retention)
	assert.Equal(t, "info", c.Log.Level)
	assert.Equal(t, "text", c.Log.Format)
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"720h": 720 * time.Hour, "30d": 30 * 24 * time.Hour, "5y": 5 * Year, "1h30m": 90 * time.Minute} {
		got, err := ParseDuration(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "5", "y", "-1d", "99999999999y", "1.5d"} {
		_, err := ParseDuration(in)
		assert.Error(t, err, in)
	}
}

// keyPaths lists every config key, e.g. "tenants[].sites[].host".
func keyPaths(t reflect.Type, prefix string) []string {
	var out []string
	for _, f := range structFields(t) {
		p := prefix + f.key
		ft := t.Field(f.index).Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		list := ""
		if ft.Kind() == reflect.Slice {
			ft, list = ft.Elem(), "[]"
		}
		if ft.Kind() == reflect.Struct && !isTextValue(reflect.New(ft).Elem()) {
			out = append(out, keyPaths(ft, p+list+".")...)
			if list == "" && ft != reflect.TypeFor[Bandwidth]() {
				continue
			}
		}
		out = append(out, p) // a list of values is documented as its key
	}
	return out
}

// TestREADMEDocumentsEveryKey keeps appliance/README.md's key table
// complete: every key must appear as `key` in it.
func TestREADMEDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	_, section, _ := strings.Cut(string(readme), "\n## Configuration\n")
	section, _, _ = strings.Cut(section, "\n## ")
	rows := regexp.MustCompile("(?m)^\\| `([^`]+)`").FindAllStringSubmatch(section, -1)
	documented := map[string]bool{}
	for _, r := range rows {
		documented[r[1]] = true
	}
	keys := keyPaths(reflect.TypeFor[Config](), "")
	require.NotEmpty(t, keys)
	for _, k := range keys {
		assert.True(t, documented[k], "config key %s is not in the README table", k)
	}
	for k := range documented {
		assert.Contains(t, keys, k, "README documents %s, which is not a config key", k)
	}
}
