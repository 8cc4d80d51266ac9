package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/ingest"
)

var now = time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)

const eveAlert = `{"timestamp":"2026-11-02T10:00:00.123456+0900","flow_id":1234567,"in_iface":"eth0","event_type":"alert",` +
	`"src_ip":"203.0.113.9","src_port":40000,"dest_ip":"127.0.1.10","dest_port":80,"proto":"TCP","app_proto":"http",` +
	`"alert":{"action":"allowed","gid":1,"signature_id":2024364,"rev":3,"signature":"ET SCAN Nikto","category":"Web Application Attack","severity":1},` +
	`"http":{"hostname":"www.tsu.example","url":"/admin.php","http_user_agent":"Nikto","http_method":"GET","status":200,"length":5120}}`

func TestParseEVE(t *testing.T) {
	ev, err := ingest.ParseEVE([]byte(eveAlert), now, ingest.Limits{})
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 11, 2, 1, 0, 0, 123456000, time.UTC), ev.Time)
	assert.Equal(t, "ids", ev.Module)
	assert.Equal(t, "alert", ev.Kind)
	assert.Equal(t, netip.MustParseAddrPort("203.0.113.9:40000"), ev.Client)
	assert.Equal(t, netip.MustParseAddrPort("127.0.1.10:80"), ev.Dest)
	assert.Equal(t, detect.Verdict{Action: detect.ActionReport, Rule: "suricata-2024364", RuleName: "ET SCAN Nikto", Reason: "Web Application Attack"}, ev.Verdict)
	assert.Equal(t, "http://www.tsu.example/admin.php", ev.URL)
	assert.Equal(t, 200, ev.HTTP.Status)
	assert.Equal(t, detect.Severity(0), ev.Severity, "Suricata's severity is not the seccloud level")
	sev, _ := ev.Label("ids_severity")
	assert.Equal(t, "1", sev)

	fi := `{"timestamp":"2026-11-02T10:00:00+0900","event_type":"fileinfo","src_ip":"198.51.100.9","src_port":80,` +
		`"dest_ip":"127.0.1.5","dest_port":40000,"http":{"hostname":"dl.example","url":"/a.exe"},` +
		`"fileinfo":{"filename":"/a.exe","magic":"PE32 executable","sha256":"ABCDEF0123","size":1024}}`
	ev, err = ingest.ParseEVE([]byte(fi), now, ingest.Limits{})
	require.NoError(t, err)
	assert.Equal(t, detect.FileInfo{Name: "/a.exe", Size: 1024, SHA256: "abcdef0123", Mime: "PE32 executable"}, ev.File)
	assert.Equal(t, "event", ev.Kind)
	_, err = ingest.ParseEVE([]byte(`{"timestamp":"2026-11-02T10:00:00+0900","event_type":"fileinfo","fileinfo":{"filename":"x"}}`), now, ingest.Limits{})
	assert.Equal(t, ingest.DropIgnored, dropReason(err))

	blocked := strings.Replace(eveAlert, `"allowed"`, `"blocked"`, 1)
	ev, err = ingest.ParseEVE([]byte(blocked), now, ingest.Limits{})
	require.NoError(t, err)
	assert.Equal(t, detect.ActionBlock, ev.Verdict.Action)
}

func dropReason(err error) string {
	var de *ingest.DropError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}

func TestParseEVEHostile(t *testing.T) {
	for name, tc := range map[string]struct {
		line, reason string
	}{
		"not json":       {`{"timestamp":`, ingest.DropMalformed},
		"invalid utf-8":  {strings.Replace(eveAlert, "Nikto", "Nik\xffto", 1), ingest.DropUTF8},
		"huge signature": {strings.Replace(eveAlert, "ET SCAN Nikto", strings.Repeat("A", 20000), 1), ingest.DropTooLarge},
		"far past":       {strings.Replace(eveAlert, "2026-11-02T10", "1999-11-02T10", 1), ingest.DropTime},
		"far future":     {strings.Replace(eveAlert, "2026-11-02T10", "2031-11-02T10", 1), ingest.DropTime},
		"bad timestamp":  {strings.Replace(eveAlert, "2026-11-02T10:00:00.123456+0900", "yesterday", 1), ingest.DropMalformed},
		"bad address":    {strings.Replace(eveAlert, "203.0.113.9", "203.0.113.999", 1), ingest.DropMalformed},
		"bad port":       {strings.Replace(eveAlert, "40000", "70000", 1), ingest.DropMalformed},
		"flow record":    {`{"timestamp":"2026-11-02T10:00:00+0900","event_type":"flow"}`, ingest.DropIgnored},
		"alert w/o body": {`{"timestamp":"2026-11-02T10:00:00+0900","event_type":"alert"}`, ingest.DropMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ingest.ParseEVE([]byte(tc.line), now, ingest.Limits{})
			require.Error(t, err)
			assert.Equal(t, tc.reason, dropReason(err), err.Error())
		})
	}
}

func TestParseSyslog(t *testing.T) {
	for name, tc := range map[string]struct {
		msg  string
		want func(*testing.T, detect.Event)
	}{
		"rfc5424 fortigate-like": {
			`<134>1 2026-11-02T09:59:58.5+09:00 fw1 fortigate - traffic [meta@32473 dev="fw1" note="a \"q\" \]"] ` +
				`srcip=198.51.100.7 srcport=5555 dstip=127.0.1.20 dstport=22 action=deny policyid=17 msg="ssh brute force"`,
			func(t *testing.T, ev detect.Event) {
				assert.Equal(t, time.Date(2026, 11, 2, 0, 59, 58, 500000000, time.UTC), ev.Time)
				assert.Equal(t, "firewall", ev.Module)
				assert.Equal(t, netip.MustParseAddrPort("198.51.100.7:5555"), ev.Client)
				assert.Equal(t, netip.MustParseAddrPort("127.0.1.20:22"), ev.Dest)
				assert.Equal(t, detect.ActionBlock, ev.Verdict.Action)
				assert.Equal(t, "fw-17", ev.Verdict.Rule)
				note, _ := ev.Label("sd_note")
				assert.Equal(t, `a "q" ]`, note)
				host, _ := ev.Label("syslog_host")
				assert.Equal(t, "fw1", host)
				sev, _ := ev.Label("syslog_severity")
				assert.Equal(t, "6", sev)
			},
		},
		"rfc5424 nil fields and BOM": {
			"<14>1 - - - - - - \ufeffhello",
			func(t *testing.T, ev detect.Event) {
				assert.Equal(t, now, ev.Time)
				assert.Equal(t, "hello", ev.Message)
			},
		},
		"rfc3164 iptables in JST": {
			`<4>Nov  2 09:30:00 gw kernel: DROP IN=eth0 OUT= SRC=203.0.113.5 DST=127.0.1.9 PROTO=TCP SPT=1234 DPT=445`,
			func(t *testing.T, ev detect.Event) {
				assert.Equal(t, time.Date(2026, 11, 2, 0, 30, 0, 0, time.UTC), ev.Time)
				app, _ := ev.Label("syslog_app")
				assert.Equal(t, "kernel", app)
				assert.Equal(t, netip.MustParseAddrPort("127.0.1.9:445"), ev.Dest)
				assert.Equal(t, detect.ActionNone, ev.Verdict.Action)
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			ev, err := ingest.ParseSyslog([]byte(tc.msg), now, ingest.SyslogOptions{})
			require.NoError(t, err)
			tc.want(t, ev)
		})
	}
	// December's message read on 1 January is last year's.
	jan := time.Date(2027, 1, 1, 0, 0, 5, 0, time.UTC)
	ev, err := ingest.ParseSyslog([]byte("<4>Dec 31 23:59:59 gw app: x"), jan, ingest.SyslogOptions{Location: time.UTC})
	require.NoError(t, err)
	assert.Equal(t, 2026, ev.Time.Year())

	for name, tc := range map[string]struct{ msg, reason string }{
		"no pri":        {"hello", ingest.DropMalformed},
		"bad pri":       {"<999>1 - - - - - -", ingest.DropMalformed},
		"invalid utf-8": {"<14>1 - h a - - - \xff\xfe", ingest.DropUTF8},
		"bad sd":        {`<14>1 - h a - - [x a="b] msg`, ingest.DropMalformed},
		"far future":    {"<14>1 2030-01-01T00:00:00Z h a - - - x", ingest.DropTime},
		"far past":      {"<14>1 2001-01-01T00:00:00Z h a - - - x", ingest.DropTime},
		"huge field":    {"<14>1 - h a - - - " + strings.Repeat("x", 10000), ingest.DropTooLarge},
		"bad 3164 date": {"<14>Foo 99 99:99:99 h a: x", ingest.DropMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ingest.ParseSyslog([]byte(tc.msg), now, ingest.SyslogOptions{})
			require.Error(t, err)
			assert.Equal(t, tc.reason, dropReason(err), err.Error())
		})
	}
}

// collector is a Sink that records events.
type collector struct {
	mu  sync.Mutex
	evs []detect.Event
}

func (c *collector) Emit(e detect.Event) {
	c.mu.Lock()
	c.evs = append(c.evs, e)
	c.mu.Unlock()
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.evs)
}

func newIngester(t *testing.T) (*ingest.Ingester, *collector) {
	c := &collector{}
	in, err := ingest.New(ingest.Config{Sink: c, MaxLine: 4096, Now: func() time.Time { return now },
		Tenant: func(src, dst netip.Addr) string {
			if netip.MustParsePrefix("127.0.1.0/24").Contains(dst) {
				return "tsu"
			}
			return ""
		}})
	require.NoError(t, err)
	return in, c
}

func TestSyslogListeners(t *testing.T) {
	in, c := newIngester(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	errs := make(chan error, 2)
	go func() { errs <- in.ServeSyslogUDP(ctx, pc) }()
	go func() { errs <- in.ServeSyslogTCP(ctx, ln) }()

	msg := "<134>1 2026-11-02T09:59:58+09:00 fw1 fw - - - srcip=198.51.100.7 dstip=127.0.1.20 action=deny policyid=9"
	u, err := net.Dial("udp", pc.LocalAddr().String())
	require.NoError(t, err)
	_, err = u.Write([]byte(msg))
	require.NoError(t, err)
	_, err = u.Write([]byte("\xff garbage"))
	require.NoError(t, err)

	tc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	// Octet-counted, then a frame larger than MaxLine (skipped whole), a
	// hostile one, then a good one: ingest goes on.
	big := "<14>1 - h a - - - " + strings.Repeat("x", 5000)
	frames := fmt.Sprintf("%d %s%d %s%d %s%d %s", len(msg), msg, len(big), big, 5, "<1>\xff\xfe", len(msg), msg)
	_, err = tc.Write([]byte(frames))
	require.NoError(t, err)
	require.NoError(t, tc.Close())
	// Newline framing on another connection.
	tl, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	_, err = tl.Write([]byte("<4>Nov  2 09:30:00 gw kernel: SRC=203.0.113.5 DST=127.0.1.9\n" + strings.Repeat("y", 9000) + "\nnot syslog\n" + msg + "\n"))
	require.NoError(t, err)
	require.NoError(t, tl.Close())

	require.Eventually(t, func() bool {
		s := in.Stats()
		return s.Accepted == 5 && s.Dropped[ingest.DropUTF8] == 2 && s.Dropped[ingest.DropTooLarge] == 2 && s.Dropped[ingest.DropMalformed] == 1
	}, 10*time.Second, 10*time.Millisecond, "stats %+v", in.Stats())
	c.mu.Lock()
	for _, ev := range c.evs {
		assert.Equal(t, "tsu", ev.Tenant)
	}
	c.mu.Unlock()
	cancel()
	for range 2 {
		assert.ErrorIs(t, <-errs, context.Canceled)
	}
}

func TestServeEVEUnixSocket(t *testing.T) {
	in, c := newIngester(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(t.TempDir(), "eve.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- in.ServeEVE(ctx, ln) }()
	conn, err := net.Dial("unix", sock)
	require.NoError(t, err)
	_, err = fmt.Fprintf(conn, "%s\n{bad\n%s\n%s\n", eveAlert, strings.Repeat("z", 100000), eveAlert)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return c.len() == 2 }, 10*time.Second, 10*time.Millisecond)
	s := in.Stats()
	assert.EqualValues(t, 1, s.Dropped[ingest.DropMalformed])
	assert.EqualValues(t, 1, s.Dropped[ingest.DropTooLarge])
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	conn.Close()
}

func TestTailEVERotation(t *testing.T) {
	in, c := newIngester(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "eve.json")
	require.NoError(t, os.WriteFile(path, []byte(eveAlert+"\n"), 0o644))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- in.TailEVE(ctx, path, ingest.TailOptions{Poll: 5 * time.Millisecond, FromStart: true}) }()
	require.Eventually(t, func() bool { return c.len() == 1 }, 10*time.Second, 5*time.Millisecond)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	half := len(eveAlert) / 2
	_, err = f.WriteString(eveAlert[:half]) // a line written in two parts
	require.NoError(t, err)
	time.Sleep(30 * time.Millisecond)
	_, err = f.WriteString(eveAlert[half:] + "\n")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return c.len() == 2 }, 10*time.Second, 5*time.Millisecond)
	// Rotation: the old file is renamed, a new one created.
	_, err = f.WriteString(eveAlert + "\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Rename(path, path+".1"))
	require.NoError(t, os.WriteFile(path, []byte(eveAlert+"\n"+eveAlert+"\n"), 0o644))
	require.Eventually(t, func() bool { return c.len() == 5 }, 10*time.Second, 5*time.Millisecond)
	assert.EqualValues(t, 0, len(in.Stats().Dropped))
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}
