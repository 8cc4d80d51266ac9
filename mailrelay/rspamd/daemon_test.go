package rspamd_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The test configuration: rspamd's own rules (rules/rspamd.lua) and
// symbol groups, no plugin configured (so nothing needs redis or the
// network), DNS pointed at a closed loopback port, a three-TLD list (the
// full one takes a long time to compile), and:
//
//   - SECCLOUD_TEST_SPAM (10 points): Subject contains "XYZZY";
//   - SECCLOUD_ENV (0 points): reports the SMTP context rspamd received
//     (IP, HELO, envelope, queue id) as options;
//   - settings "lenient" (SECCLOUD_TEST_SPAM off) and "strict"
//     (reject at 5).
const rspamdConf = `
lua = "$RULESDIR/rspamd.lua";
lua = "{{DIR}}/seccloud.lua";
.include "$CONFDIR/metrics.conf"
.include "$CONFDIR/groups.conf"
options {
  pidfile = "{{DIR}}/rspamd.pid";
  dns { nameserver = ["127.0.0.1:{{DNS}}"]; timeout = 0.2s; retransmits = 1; }
  url_tld = "{{DIR}}/tld.dat";
  local_addrs = [];
  hs_cache_dir = "{{DIR}}";
}
logging { type = "file"; filename = "{{DIR}}/rspamd.log"; level = "info"; }
actions { reject = 15; add_header = 6; greylist = 4; }
worker "normal" { bind_socket = "127.0.0.1:{{PORT}}"; count = 1; }
settings {
  lenient { id = "lenient"; apply { symbols_disabled = ["SECCLOUD_TEST_SPAM"]; } }
  strict { id = "strict"; apply { actions { reject = 5; add_header = 3; greylist = 2; } } }
}
modules { path = "${PLUGINSDIR}"; }
`

const rspamdLua = `
rspamd_config:register_symbol{ name = "SECCLOUD_TEST_SPAM", score = 10.0, group = "seccloud",
  callback = function(task)
    local s = task:get_subject()
    if s and s:find("XYZZY", 1, true) then return true end
    return false
  end }
rspamd_config:register_symbol{ name = "SECCLOUD_ENV", score = 0.0, group = "seccloud",
  callback = function(task)
    local o = {}
    local ip = task:get_from_ip()
    if ip and ip:is_valid() then table.insert(o, "ip=" .. ip:to_string()) end
    local h = task:get_helo()
    if h then table.insert(o, "helo=" .. h) end
    local f = task:get_from('smtp')
    if f and f[1] then table.insert(o, "from=" .. (f[1].addr or "")) end
    local r = task:get_recipients('smtp')
    if r then for _, x in ipairs(r) do table.insert(o, "rcpt=" .. x.addr) end end
    local q = task:get_queue_id()
    if q then table.insert(o, "qid=" .. q) end
    task:insert_result("SECCLOUD_ENV", 1.0, o)
  end }
`

// startRspamd runs rspamd on a loopback port with the configuration
// above and returns its base URL; it is stopped when the test ends. The
// test is skipped when the rspamd binary is absent.
func startRspamd(t testing.TB) (url string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("rspamd")
	if err != nil {
		for _, p := range []string{"/usr/bin/rspamd", "/usr/sbin/rspamd"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Skip("rspamd not installed (Debian package rspamd); skipping the rspamd tests")
	}
	dir := t.TempDir()
	port := freePort(t)
	// A UDP port nobody answers on: DNS lookups fail at once, and never
	// leave the machine.
	dns := freePort(t)
	conf := strings.NewReplacer("{{DIR}}", dir, "{{PORT}}", fmt.Sprint(port), "{{DNS}}", fmt.Sprint(dns)).Replace(rspamdConf)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rspamd.conf"), []byte(conf), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "seccloud.lua"), []byte(rspamdLua), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tld.dat"), []byte("com\nnet\norg\njp\ntest\nexample\n"), 0o600))
	cmd := exec.Command(bin, "-f", "-i", "-c", filepath.Join(dir, "rspamd.conf"),
		"--var=DBDIR="+dir, "--var=RUNDIR="+dir, "--var=LOGDIR="+dir, "--var=LOCAL_CONFDIR="+dir)
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var once bool
	stop = func() {
		if once {
			return
		}
		once = true
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(stop)
	url = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(url + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url, stop
			}
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "rspamd.log"))
			so, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
			t.Fatalf("rspamd exited: %s\n%s", so, tail(log))
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "rspamd.log"))
			t.Fatalf("rspamd not answering after 90 s:\n%s", tail(log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var shared struct {
	once     sync.Once
	cleanups []func()
	url      string
	err      string
	skip     bool
	stop     func()
}

// sharedRspamd is one daemon for the tests that do not stop it, started
// by the first of them and stopped by TestMain.
func sharedRspamd(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		r := &recorder{}
		func() {
			defer func() {
				if p := recover(); p != nil && p != errStop {
					panic(p)
				}
			}()
			shared.url, shared.stop = startRspamd(r)
		}()
		shared.skip, shared.err = r.skipped, r.msg
	})
	if shared.skip {
		t.Skip(shared.err)
	}
	if shared.url == "" {
		t.Fatal(shared.err)
	}
	return shared.url
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	for _, c := range shared.cleanups {
		c()
	}
	os.Exit(code)
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// recorder is a testing.TB for the shared daemon: it outlives the test
// that started it, so its temporary directory and cleanups are the
// package's (run by TestMain).
type recorder struct {
	testing.TB
	skipped bool
	msg     string
}

var errStop = fmt.Errorf("stop")

func (r *recorder) Helper()                   {}
func (r *recorder) Cleanup(f func())          { shared.cleanups = append(shared.cleanups, f) }
func (r *recorder) Skip(args ...any)          { r.skipped, r.msg = true, fmt.Sprint(args...); panic(errStop) }
func (r *recorder) Fatalf(f string, a ...any) { r.msg = fmt.Sprintf(f, a...); panic(errStop) }
func (r *recorder) Errorf(f string, a ...any) { r.msg = fmt.Sprintf(f, a...) }
func (r *recorder) FailNow()                  { panic(errStop) }
func (r *recorder) TempDir() string {
	d, err := os.MkdirTemp("", "rspamd-test")
	if err != nil {
		r.Fatalf("%v", err)
	}
	shared.cleanups = append(shared.cleanups, func() { os.RemoveAll(d) })
	return d
}
