// Package clamdtest starts a real clamd (Debian's clamav-daemon) for tests,
// with a tiny signature database written on the spot, so no signature
// download is ever needed.
//
// The database holds two signatures: EICARName matches the EICAR test file
// (EICAR) and MarkerName matches any stream containing Marker, a test-only
// string that no real scanner knows.
package clamdtest

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EICAR is the 68-byte EICAR anti-virus test file.
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// Marker is a test-only byte string that the test database flags.
const Marker = "SECCLOUD-CLAMD-TEST-SIGNATURE-2f9c61"

// Signature names as clamd reports them: clamd appends ".UNOFFICIAL" to
// signatures from databases it does not know.
const (
	EICARName  = "Seccloud.Test.EICAR.UNOFFICIAL"
	MarkerName = "Seccloud.Test.Marker.UNOFFICIAL"
)

// Options tune the daemon. The zero value is fine.
type Options struct {
	// StreamMaxLength is clamd's StreamMaxLength ("1M", "200K"). Empty: 1M.
	StreamMaxLength string
}

// Daemon is a running clamd.
type Daemon struct {
	Addr   string // TCP address, "127.0.0.1:port"
	Socket string // unix socket path
	Dir    string // config, database and socket live here

	cmd  *exec.Cmd
	done chan struct{}
}

// Binary returns clamd's path, or "" when it is not installed.
func Binary() string {
	for _, p := range []string{"clamd", "/usr/sbin/clamd", "/usr/local/sbin/clamd"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}

// Start starts clamd and waits until it answers PING on both sockets. It
// skips the test when clamd is not installed (apt-get install
// clamav-daemon) and stops the daemon when the test ends.
func Start(t testing.TB, opt Options) *Daemon {
	t.Helper()
	if Binary() == "" {
		t.Skip("clamd not installed (Debian package clamav-daemon)")
	}
	d, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}

// New starts clamd like Start, for programs that are not tests (examples,
// benchmarks). Stop it with Stop, which also removes its directory.
func New(opt Options) (*Daemon, error) {
	bin := Binary()
	if bin == "" {
		return nil, fmt.Errorf("clamdtest: clamd not installed (Debian package clamav-daemon)")
	}
	if opt.StreamMaxLength == "" {
		opt.StreamMaxLength = "1M"
	}
	// A short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "clamdtest")
	if err != nil {
		return nil, err
	}
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ndb := fmt.Sprintf("%s:0:*:%s\n%s:0:*:%s\n",
		strings.TrimSuffix(EICARName, ".UNOFFICIAL"), hex.EncodeToString([]byte(EICAR)),
		strings.TrimSuffix(MarkerName, ".UNOFFICIAL"), hex.EncodeToString([]byte(Marker)))
	if err := os.WriteFile(filepath.Join(db, "seccloud-test.ndb"), []byte(ndb), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		d, err := start(bin, dir, db, opt)
		if err == nil {
			return d, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("clamdtest: %w", lastErr)
}

func start(bin, dir, db string, opt Options) (*Daemon, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	d := &Daemon{
		Addr:   fmt.Sprintf("127.0.0.1:%d", port),
		Socket: filepath.Join(dir, "clamd.sock"),
		Dir:    dir,
		done:   make(chan struct{}),
	}
	os.Remove(d.Socket)
	conf := strings.Join([]string{
		"Foreground yes",
		"DatabaseDirectory " + db,
		"TCPAddr 127.0.0.1",
		fmt.Sprintf("TCPSocket %d", port),
		"LocalSocket " + d.Socket,
		"StreamMaxLength " + opt.StreamMaxLength,
		"MaxThreads 4",
		"SelfCheck 0",
		"TemporaryDirectory " + dir,
		"LogFile " + filepath.Join(dir, "clamd.log"),
		"",
	}, "\n")
	confPath := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	d.cmd = exec.Command(bin, "-c", confPath)
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			log, _ := os.ReadFile(filepath.Join(dir, "clamd.log"))
			return nil, fmt.Errorf("clamd exited at start: %s", tail(string(log)))
		case <-time.After(50 * time.Millisecond):
		}
		if ping("unix", d.Socket) == nil && ping("tcp", d.Addr) == nil {
			return d, nil
		}
	}
	d.stop()
	return nil, fmt.Errorf("clamd did not answer PING within 60 s")
}

// Stop stops the daemon (also to test a scanner that went down) and
// removes its directory. Safe to call twice; Start's cleanup calls it too.
func (d *Daemon) Stop() {
	d.stop()
	os.RemoveAll(d.Dir)
}

func (d *Daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

func ping(network, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var dl net.Dialer
	c, err := dl.DialContext(ctx, network, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("zPING\x00")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString(0)
	if err != nil {
		return err
	}
	if strings.TrimRight(line, "\x00") != "PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}
