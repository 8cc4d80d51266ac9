package packaging

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/appliance/config"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string   // upper case: FROM, RUN, ...
	args string   // the rest, as written
	json []string // the exec form, when args is a JSON array
}

// flags returns the --name=value options at the start of args.
func (in instruction) flag(name string) (string, bool) {
	for _, f := range strings.Fields(in.args) {
		if !strings.HasPrefix(f, "--") {
			break
		}
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// parseDockerfile reads the instructions of a Dockerfile: comments and
// parser directives skipped, lines ending in a backslash joined.
func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var (
		out  []instruction
		cur  strings.Builder
		from int
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			from = n
		}
		if l, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(l + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		in := instruction{line: from, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		rest := in.args
		if in.cmd == "HEALTHCHECK" { // HEALTHCHECK [--opts] CMD [...]
			if _, c, ok := strings.Cut(rest, "CMD "); ok {
				rest = strings.TrimSpace(c)
			}
		}
		if strings.HasPrefix(rest, "[") {
			require.NoError(t, json.Unmarshal([]byte(rest), &in.json), "%s:%d: exec form", path, from)
		}
		out = append(out, in)
		cur.Reset()
	}
	require.NoError(t, sc.Err())
	require.Zero(t, cur.Len(), "%s: ends in a continuation line", path)
	return out
}

// finalStage returns the instructions from the last FROM on.
func finalStage(ins []instruction) []instruction {
	for i := len(ins) - 1; i >= 0; i-- {
		if ins[i].cmd == "FROM" {
			return ins[i:]
		}
	}
	return nil
}

func find(ins []instruction, cmd string) []instruction {
	var out []instruction
	for _, in := range ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// dockerfileProblems lists what breaks the image's hardening rules: a
// multi-stage build on tagged bases (never latest) ending in
// distroless/static or debian-slim; a non-root USER; no ADD of a URL; an
// exec-form HEALTHCHECK on /healthz; go builds with -trimpath and
// -ldflags, the appliance's with -buildvcs=true, CGO off; the config's
// data_dir as the only VOLUME, owned by USER; every listen port exposed;
// every COPY source present under root.
func dockerfileProblems(all []instruction, cfg *config.Config, root string) []string {
	var p []string
	bad := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	final := finalStage(all)
	if len(final) == 0 {
		return []string{"no FROM"}
	}
	froms := find(all, "FROM")
	if len(froms) < 2 {
		bad("FROM: want a build stage and a run stage")
	}
	if base := strings.Fields(final[0].args)[0]; !strings.HasPrefix(base, "gcr.io/distroless/static") && !strings.Contains(base, "-slim") {
		bad("FROM %s: the final base must be distroless/static or debian-slim", base)
	}
	for _, f := range froms {
		if img := strings.Fields(f.args)[0]; !strings.Contains(img, ":") || strings.HasSuffix(img, ":latest") {
			bad("line %d: FROM %s: pin a tag, never latest", f.line, img)
		}
	}

	users := find(final, "USER")
	user := ""
	if len(users) > 0 {
		user = users[len(users)-1].args
	}
	if name, _, _ := strings.Cut(user, ":"); name == "" || name == "root" || name == "0" {
		bad("USER %q: the final stage must run as a non-root user", user)
	}

	for _, in := range find(all, "ADD") {
		for _, f := range strings.Fields(in.args) {
			if strings.Contains(f, "://") || strings.HasPrefix(f, "git@") {
				bad("line %d: ADD of a URL (%s): download in a RUN with a checksum instead", in.line, f)
			}
		}
	}

	hc := find(final, "HEALTHCHECK")
	switch {
	case len(hc) != 1:
		bad("HEALTHCHECK: want exactly one in the final stage, have %d", len(hc))
	case len(hc[0].json) == 0:
		bad("line %d: HEALTHCHECK: use the exec form (no shell in the image)", hc[0].line)
	case !strings.Contains(strings.Join(hc[0].json, " "), "/healthz"):
		bad("line %d: HEALTHCHECK does not ask /healthz", hc[0].line)
	}

	var builds []string
	for _, in := range find(all, "RUN") {
		for _, part := range strings.Split(in.args, "&&") {
			if strings.Contains(part, "go build") {
				builds = append(builds, strings.TrimSpace(part))
			}
		}
	}
	if len(builds) == 0 {
		bad("RUN: no go build")
	}
	for _, b := range builds {
		if !strings.Contains(b, "-trimpath") || !strings.Contains(b, "-ldflags") {
			bad("%q: want -trimpath and -ldflags", b)
		}
		if strings.Contains(b, "appliance/cmd/seccloud") && !strings.Contains(b, "-buildvcs=true") {
			bad("%q: want -buildvcs=true so that seccloud version has the git revision", b)
		}
	}
	if !slices.ContainsFunc(find(all, "ENV"), func(in instruction) bool { return strings.Contains(in.args, "CGO_ENABLED=0") }) {
		bad("ENV CGO_ENABLED=0 missing: distroless/static needs a static binary")
	}

	if vols := find(final, "VOLUME"); len(vols) != 1 || !slices.Equal(vols[0].json, []string{cfg.DataDir}) {
		bad("VOLUME: want exactly [%q], the config's data_dir", cfg.DataDir)
	}
	owned := false
	for _, c := range find(final, "COPY") {
		if own, ok := c.flag("chown"); ok && own == user && strings.HasSuffix(c.args, " "+cfg.DataDir) {
			owned = true
		}
	}
	if !owned {
		bad("%s: no COPY --chown=%s creates it: the volume's mount point must belong to USER", cfg.DataDir, user)
	}
	var ports []string
	for _, e := range find(final, "EXPOSE") {
		ports = append(ports, strings.Fields(e.args)...)
	}
	port := func(a string) string { return strconv.Itoa(int(netip.MustParseAddrPort(a).Port())) }
	l := cfg.Listen
	want := []string{port(l.DNS) + "/udp", port(l.DNS) + "/tcp"}
	for _, a := range []string{l.Proxy, l.SMTP, l.WAFHTTP, l.WAFHTTPS, l.Console} {
		want = append(want, port(a)+"/tcp")
	}
	for _, w := range want {
		if !slices.Contains(ports, w) {
			bad("EXPOSE %s missing", w)
		}
	}

	for _, c := range find(all, "COPY") {
		if _, ok := c.flag("from"); ok {
			continue
		}
		f := strings.Fields(c.args)
		for _, src := range f[:len(f)-1] {
			if strings.HasPrefix(src, "--") || src == "." || src == "./" {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				bad("line %d: COPY %s: %v", c.line, src, err)
			}
		}
	}
	return p
}

// TestDockerfile checks the image's hardening properties. The image is
// not built in CI (no Docker engine); see packaging/docker/README.md.
func TestDockerfile(t *testing.T) {
	cfg, err := config.Load("docker/seccloud.yaml")
	require.NoError(t, err, "the image's config is valid")
	assert.Empty(t, dockerfileProblems(parseDockerfile(t, "docker/Dockerfile"), cfg, ".."))
	assert.FileExists(t, "docker/healthcheck/main.go", "the HEALTHCHECK's binary is built from here")
}

// TestDockerfileChecksBite runs the same checks on a Dockerfile that
// breaks each rule.
func TestDockerfileChecksBite(t *testing.T) {
	cfg, err := config.Load("docker/seccloud.yaml")
	require.NoError(t, err)
	got := strings.Join(dockerfileProblems(parseDockerfile(t, "testdata/bad.Dockerfile"), cfg, ".."), "\n")
	for _, want := range []string{
		"FROM: want a build stage",
		"FROM debian:latest: pin a tag, never latest",
		"final base must be distroless/static or debian-slim",
		`USER "root"`,
		"ADD of a URL (https://example.com/tool.tar.gz)",
		"HEALTHCHECK: use the exec form",
		"want -trimpath and -ldflags",
		"want -buildvcs=true",
		"CGO_ENABLED=0 missing",
		"VOLUME: want exactly",
		"EXPOSE 5353/udp missing",
		"COPY does-not-exist.yaml",
	} {
		assert.Contains(t, got, want)
	}
}

// parseUnit reads a systemd unit: section → key → values (a key may repeat).
func parseUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string]map[string][]string{}
	var sec string
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			sec = line[1 : len(line)-1]
			out[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%s:%d: not key=value", path, n+1)
			require.NotEmpty(t, sec, "%s:%d: outside a section", path, n+1)
			out[sec][k] = append(out[sec][k], v)
		}
	}
	return out
}

// TestSystemdUnit checks the unit's hardening, and runs systemd-analyze
// verify on it when systemd is installed.
func TestSystemdUnit(t *testing.T) {
	const unit = "systemd/seccloud.service"
	s := parseUnit(t, unit)["Service"]
	require.NotNil(t, s)
	want := map[string]string{
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
		"Restart":                 "on-failure",
		"StateDirectory":          "seccloud",
		"SystemCallArchitectures": "native",
	}
	for k, v := range want {
		assert.Equal(t, []string{v}, s[k], k)
	}
	assert.Contains(t, s["SystemCallFilter"], "@system-service")
	require.Len(t, s["RestrictAddressFamilies"], 1)
	for _, af := range strings.Fields(s["RestrictAddressFamilies"][0]) {
		assert.Contains(t, []string{"AF_INET", "AF_INET6", "AF_UNIX"}, af)
	}
	require.Len(t, s["ExecReload"], 1)
	assert.Contains(t, s["ExecReload"][0], "-HUP $MAINPID")
	require.Len(t, s["ExecStart"], 1)
	assert.True(t, slices.Equal(s["User"], []string{"seccloud"}) || slices.Equal(s["DynamicUser"], []string{"yes"}), "not root")

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: verify skipped")
		return
	}
	// verify checks that ExecStart's binary exists: point it at /bin/true
	// (the appliance is not installed where the tests run).
	data, err := os.ReadFile(unit)
	require.NoError(t, err)
	tmp := filepath.Join(t.TempDir(), "seccloud.service")
	require.NoError(t, os.WriteFile(tmp, []byte(strings.ReplaceAll(string(data), "/usr/local/bin/seccloud", "/bin/true")), 0o644))
	out, err := exec.Command(sa, "verify", "--man=no", tmp).CombinedOutput()
	assert.NoError(t, err, "systemd-analyze verify:\n%s", out)
	assert.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify has no warnings")
}
