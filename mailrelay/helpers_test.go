package mailrelay_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
	"github.com/jichitai/seccloud/tenant"
)

// fixture is a relay with two tenants whose mail servers are sinks, and
// a smarthost sink for outbound mail.
type fixture struct {
	srv       *mailrelay.Server
	addr      string
	dir       string
	sinkA     *mailrelaytest.Sink
	sinkB     *mailrelaytest.Sink
	smarthost *mailrelaytest.Sink
	events    *eventLog
	cfg       mailrelay.Config
}

type eventLog struct {
	mu sync.Mutex
	ev []detect.Event
}

func (l *eventLog) Emit(e detect.Event) {
	l.mu.Lock()
	l.ev = append(l.ev, e)
	l.mu.Unlock()
}

func (l *eventLog) all() []detect.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]detect.Event(nil), l.ev...)
}

func (l *eventLog) dataset(ds string) []detect.Event {
	var out []detect.Event
	for _, e := range l.all() {
		if e.Dataset == ds {
			out = append(out, e)
		}
	}
	return out
}

func directory(t testing.TB, a, b string) tenant.Directory {
	snap, err := tenant.NewSnapshot([]tenant.Tenant{
		{ID: "a", Name: "A", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
			MailDomains: []string{"a.example.jp"}, MailServers: []string{a},
			EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.1.1")}},
		{ID: "b", Name: "B", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.2.0/24")},
			MailDomains: []string{"b.example.jp"}, MailServers: []string{b},
			EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.2.1")}},
	}, tenant.Options{})
	require.NoError(t, err)
	return snap
}

func newFixture(t testing.TB, mod func(*mailrelay.Config)) *fixture {
	t.Helper()
	f := &fixture{events: &eventLog{}}
	var err error
	for _, p := range []**mailrelaytest.Sink{&f.sinkA, &f.sinkB, &f.smarthost} {
		*p, err = mailrelaytest.NewSink()
		require.NoError(t, err)
		s := *p
		t.Cleanup(func() { s.Close() })
	}
	f.dir = t.TempDir()
	f.cfg = mailrelay.Config{
		Hostname:  "relay.seccloud.test",
		Directory: directory(t, f.sinkA.Addr, f.sinkB.Addr),
		Queue:     mailrelay.QueueConfig{Dir: f.dir},
		Delivery: mailrelay.DeliveryConfig{Smarthost: f.smarthost.Addr, Workers: 4,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond},
		Sink: f.events,
	}
	if mod != nil {
		mod(&f.cfg)
	}
	f.start(t)
	return f
}

func (f *fixture) start(t testing.TB) {
	t.Helper()
	srv, err := mailrelay.New(f.cfg)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f.srv, f.addr = srv, l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// client is a raw SMTP client for driving the server line by line.
type client struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dial(t testing.TB, addr, src string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	cl := &client{t: t, c: c, r: newReader(c)}
	code, _ := cl.read()
	require.Equal(t, 220, code)
	return cl
}

// read reads one (possibly multi-line) reply; code 0 means the connection
// closed.
func (cl *client) read() (int, string) {
	var text []string
	for {
		l, err := cl.r.ReadString('\n')
		if err != nil {
			return 0, strings.Join(text, "\n")
		}
		l = strings.TrimRight(l, "\r\n")
		var code int
		fmt.Sscanf(l, "%d", &code)
		text = append(text, l)
		if len(l) < 4 || l[3] == ' ' {
			return code, strings.Join(text, "\n")
		}
	}
}

func (cl *client) write(s string) {
	_, err := cl.c.Write([]byte(s))
	require.NoError(cl.t, err)
}

func (cl *client) cmd(line string) (int, string) {
	cl.write(line + "\r\n")
	return cl.read()
}

func (cl *client) expect(line string, code int) string {
	cl.t.Helper()
	got, text := cl.cmd(line)
	require.Equal(cl.t, code, got, "%s -> %s", line, text)
	return text
}

// sendMail runs a whole transaction and returns the final reply.
func (cl *client) sendMail(from string, to []string, body string) (int, string) {
	cl.t.Helper()
	cl.expect("MAIL FROM:<"+from+">", 250)
	for _, r := range to {
		cl.expect("RCPT TO:<"+r+">", 250)
	}
	cl.expect("DATA", 354)
	cl.write(body + ".\r\n")
	return cl.read()
}

func msg(from, subject string) string {
	return "From: <" + from + ">\r\nTo: someone@a.example.jp\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@test>\r\n\r\nhello\r\n..leading dot\r\n"
}

func waitCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const (
	timeUnit = time.Millisecond
	waitDur  = 20 * time.Second
	pollDur  = 10 * time.Millisecond
)

func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay.seccloud.test"},
		DNSNames: []string{"relay.seccloud.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
