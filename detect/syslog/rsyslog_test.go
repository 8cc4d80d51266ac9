package syslog_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
)

// rsyslog is a real rsyslogd started by a test, listening on loopback with
// one plain TCP and one TLS imtcp input, writing what it receives as JSON
// lines to out.
type rsyslog struct {
	t         testing.TB
	dir       string
	conf      string
	out       string
	plainAddr string
	tlsAddr   string
	roots     *x509.CertPool
	cmd       *exec.Cmd
	log       *bytes.Buffer
}

// received is one line written by rsyslog's template.
type received struct {
	PRI    string `json:"pri"`
	TS     string `json:"ts"`
	Host   string `json:"host"`
	App    string `json:"app"`
	ProcID string `json:"procid"`
	MsgID  string `json:"msgid"`
	SD     string `json:"sd"`
	Input  string `json:"input"`
	Msg    string `json:"msg"`
}

const rsyslogConf = `global(workDirectory="{{dir}}" maxMessageSize="64k")
module(load="imtcp" maxSessions="200")
input(type="imtcp" address="127.0.0.1" port="{{plain}}" name="plain")
input(type="imtcp" address="127.0.0.1" port="{{tls}}" name="tls"
  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon"
  streamDriver.CAFile="{{dir}}/ca.pem" streamDriver.CertFile="{{dir}}/cert.pem"
  streamDriver.KeyFile="{{dir}}/key.pem")
template(name="j" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="ts" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="input" name="inputname" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}
action(type="omfile" file="{{out}}" template="j")
`

// startRsyslog starts rsyslogd, or skips the test when it is not installed
// (fails instead when CI=true).
func startRsyslog(t testing.TB) *rsyslog {
	t.Helper()
	if _, err := exec.LookPath("rsyslogd"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("rsyslogd not found (CI=true): install the Debian packages rsyslog and rsyslog-gnutls")
		}
		t.Skip("rsyslogd not found: apt-get install -y rsyslog rsyslog-gnutls to run this test")
	}
	dir := t.TempDir()
	r := &rsyslog{t: t, dir: dir, conf: filepath.Join(dir, "rsyslog.conf"), out: filepath.Join(dir, "out.jsonl")}
	r.roots = writeTestPKI(t, dir)
	plain, tlsPort := freePort(t), freePort(t)
	r.plainAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(plain))
	r.tlsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	conf := strings.NewReplacer("{{dir}}", dir, "{{out}}", r.out,
		"{{plain}}", strconv.Itoa(plain), "{{tls}}", strconv.Itoa(tlsPort)).Replace(rsyslogConf)
	require.NoError(t, os.WriteFile(r.conf, []byte(conf), 0o600))
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *rsyslog) start() {
	t := r.t
	t.Helper()
	r.log = new(bytes.Buffer)
	r.cmd = exec.Command("rsyslogd", "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	killWithParent(r.cmd)
	require.NoError(t, r.cmd.Start())
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range []string{r.plainAddr, r.tlsAddr} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) || r.cmd.ProcessState != nil {
				t.Fatalf("rsyslogd did not listen on %s: %v\n%s", addr, err, r.log)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// stop terminates rsyslogd and waits for it (it flushes its output file).
func (r *rsyslog) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
}

// waitFor polls the output until want lines from input arrived and returns
// them.
func (r *rsyslog) waitFor(input string, want int) []received {
	t := r.t
	t.Helper()
	var got []received
	deadline := time.Now().Add(20 * time.Second)
	for {
		got = r.read(input)
		if len(got) >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Len(t, got, want, "rsyslog log:\n%s", r.log)
	return got
}

func (r *rsyslog) read(input string) []received {
	f, err := os.Open(r.out)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(r.t, err)
	defer f.Close()
	var out []received
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasSuffix(line, []byte("}")) {
			break // partly written line
		}
		var m received
		require.NoError(r.t, json.Unmarshal(line, &m), "line %q", line)
		if m.Input == input {
			out = append(out, m)
		}
	}
	return out
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeTestPKI writes ca.pem, cert.pem (for 127.0.0.1) and key.pem to dir
// and returns the pool trusting the CA.
func writeTestPKI(t testing.TB, dir string) *x509.CertPool {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "seccloud test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	write := func(name, typ string, b []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600))
	}
	write("ca.pem", "CERTIFICATE", caDER)
	write("cert.pem", "CERTIFICATE", der)
	write("key.pem", "EC PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

func (r *rsyslog) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: r.roots, MinVersion: tls.VersionTLS12}
}

// testEvents returns n varied events, some with hostile field contents.
func testEvents(n int, prefix string) []detect.Event {
	base := time.Date(2025, 4, 1, 12, 0, 0, 123456000, time.UTC)
	evs := make([]detect.Event, n)
	for i := range evs {
		e := detect.Event{
			Time:     base.Add(time.Duration(i) * time.Millisecond),
			ID:       fmt.Sprintf("%s-%d", prefix, i),
			Module:   []string{"dns", "proxy", "mail", "waf"}[i%4],
			Action:   "test",
			Tenant:   []string{"tokyo-a", "大阪市", `we"ird]\ten`, ""}[i%4],
			Severity: detect.Severity(i % 4),
			Client:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}), 40000),
			URL:      "http://example.jp/a?q=" + strconv.Itoa(i),
			Verdict:  detect.Verdict{Action: detect.Action(i % 5), Rule: "r-" + strconv.Itoa(i%7)},
			Message:  "line1\nline2\t\x01 日本語 \xff end",
			Labels:   []detect.Label{{Key: "k", Value: "v\r\n"}},
		}
		evs[i] = e
	}
	return evs
}
