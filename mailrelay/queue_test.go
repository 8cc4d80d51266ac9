package mailrelay_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
	"github.com/jichitai/seccloud/tenant"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv("MAILRELAY_CRASH_CHILD_DIR"); dir != "" {
		crashChild(dir, os.Getenv("MAILRELAY_CRASH_CHILD_HOP"))
		return
	}
	os.Exit(m.Run())
}

// crashChild runs a relay until it is killed.
func crashChild(dir, hop string) {
	snap, err := tenant.NewSnapshot([]tenant.Tenant{{ID: "a", Name: "A", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
		MailDomains: []string{"a.example.jp"}, MailServers: []string{hop}, EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.1.1")}}}, tenant.Options{})
	if err != nil {
		panic(err)
	}
	srv, err := mailrelay.New(mailrelay.Config{Hostname: "child.test", Directory: snap, Queue: mailrelay.QueueConfig{Dir: dir, SegmentSize: 64 << 10},
		Delivery: mailrelay.DeliveryConfig{MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, Workers: 2}})
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(l.Addr().String())
	srv.Serve(l)
}

// TestCrashKill9 kills the relay with SIGKILL while clients are sending and
// checks that every message acknowledged with 250 is delivered after a
// restart on the same queue.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	var accept atomic.Bool
	sink, err := mailrelaytest.NewSink()
	require.NoError(t, err)
	defer sink.Close()
	sink.Reply = func(string) string {
		if accept.Load() {
			return ""
		}
		return "451 4.3.0 not now" // nothing leaves before the crash, retries churn the queue
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MAILRELAY_CRASH_CHILD_DIR="+dir, "MAILRELAY_CRASH_CHILD_HOP="+sink.Addr)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill()
	addr, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	addr = strings.TrimSpace(addr)

	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			r := bufio.NewReader(c)
			readCode := func() string {
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return ""
					}
					if len(l) >= 4 && l[3] == ' ' {
						return l[:3]
					}
				}
			}
			readCode()
			fmt.Fprintf(c, "EHLO w%d.test\r\n", w)
			readCode()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				subj := fmt.Sprintf("w%d-m%d", w, i)
				fmt.Fprintf(c, "MAIL FROM:<x@internet.example>\r\nRCPT TO:<u@a.example.jp>\r\nDATA\r\n")
				if readCode() != "250" || readCode() != "250" || readCode() != "354" {
					return
				}
				fmt.Fprintf(c, "Subject: %s\r\n\r\n%s\r\n.\r\n", subj, strings.Repeat("body ", 400))
				if readCode() != "250" {
					return
				}
				mu.Lock()
				acked[subj] = true
				mu.Unlock()
			}
		}(w)
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 200 }, waitDur, pollDur)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	cmd.Wait()
	close(stop)
	wg.Wait()
	assert.Empty(t, sink.Messages())

	// Restart on the same queue, now with a next hop that accepts.
	accept.Store(true)
	snap, err := tenant.NewSnapshot([]tenant.Tenant{{ID: "a", Name: "A", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
		MailDomains: []string{"a.example.jp"}, MailServers: []string{sink.Addr}, EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.1.1")}}}, tenant.Options{})
	require.NoError(t, err)
	srv, err := mailrelay.New(mailrelay.Config{Hostname: "restart.test", Directory: snap, Queue: mailrelay.QueueConfig{Dir: dir, SegmentSize: 64 << 10}})
	require.NoError(t, err)
	defer srv.Close()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	seen := map[string]int{}
	missing := func() []string {
		for k := range seen {
			delete(seen, k)
		}
		for _, m := range sink.Messages() {
			for _, l := range strings.Split(string(m.Data), "\r\n") {
				if s, ok := strings.CutPrefix(l, "Subject: "); ok {
					seen[s]++
				}
			}
		}
		var miss []string
		mu.Lock()
		defer mu.Unlock()
		for s := range acked {
			if seen[s] == 0 {
				miss = append(miss, s)
			}
		}
		return miss
	}
	ctx := waitCtx(t)
	for len(missing()) > 0 && ctx.Err() == nil {
		time.Sleep(pollDur)
	}
	assert.Empty(t, missing(), "acknowledged messages lost")
	got := sink.Messages()
	t.Logf("acknowledged %d, delivered %d (distinct %d)", n, len(got), len(seen))
}

func TestRetryAndBounce(t *testing.T) {
	var tries atomic.Int32
	f := newFixture(t, nil)
	f.sinkA.Reply = func(rcpt string) string {
		switch {
		case strings.HasPrefix(rcpt, "later"):
			if tries.Add(1) < 3 {
				return "451 4.3.0 try again"
			}
			return ""
		case strings.HasPrefix(rcpt, "nobody"):
			return "550 5.1.1 no such user"
		}
		return ""
	}
	cl := dial(t, f.addr, "127.0.1.5") // tenant A sends to its own domain
	cl.expect("EHLO pc.a.example.jp", 250)
	code, text := cl.sendMail("staff@a.example.jp", []string{"later@a.example.jp", "nobody@a.example.jp", "ok@a.example.jp"},
		msg("staff@a.example.jp", "retry"))
	require.Equal(t, 250, code, text)

	// ok at once, later after two 4xx, nobody bounced to the sender.
	msgs := f.sinkA.Wait(waitCtx(t), 3)
	require.Len(t, msgs, 3)
	var bounce *mailrelaytest.Mail
	var to []string
	for i, m := range msgs {
		if m.From == "" {
			bounce = &msgs[i]
			continue
		}
		to = append(to, m.To...)
	}
	assert.ElementsMatch(t, []string{"ok@a.example.jp", "later@a.example.jp"}, to)
	require.NotNil(t, bounce, "DSN to the sender")
	assert.Equal(t, []string{"staff@a.example.jp"}, bounce.To)
	d := string(bounce.Data)
	assert.Contains(t, d, "multipart/report; report-type=delivery-status")
	assert.Contains(t, d, "Final-Recipient: rfc822; nobody@a.example.jp")
	assert.Contains(t, d, "Status: 5.1.1")
	assert.Contains(t, d, "Subject: retry")
	assert.GreaterOrEqual(t, tries.Load(), int32(3))
}

func TestBounceDropAndMaxAge(t *testing.T) {
	now := atomic.Int64{}
	now.Store(time.Now().UnixNano())
	f := newFixture(t, func(c *mailrelay.Config) {
		c.Delivery.Bounce = mailrelay.BounceDrop
		c.Delivery.MaxAge = time.Hour
		c.Now = func() time.Time { return time.Unix(0, now.Load()) }
	})
	f.sinkA.Reply = func(rcpt string) string {
		now.Add(int64(time.Hour)) // each attempt "takes" an hour
		return "451 4.3.0 try again"
	}
	cl := dial(t, f.addr, "127.0.0.9")
	cl.expect("EHLO mx.internet.example", 250)
	code, _ := cl.sendMail("x@internet.example", []string{"u@a.example.jp"}, msg("x@internet.example", "old"))
	require.Equal(t, 250, code)
	require.Eventually(t, func() bool {
		for _, e := range f.events.dataset("mail.delivery") {
			if e.Outcome == "failure" {
				return true
			}
		}
		return false
	}, waitDur, pollDur)
	// Expired after the first attempt: no retry, no DSN (BounceDrop).
	time.Sleep(50 * time.Millisecond)
	assert.Empty(t, f.sinkA.Messages())
	assert.Empty(t, f.smarthost.Messages())
	assert.Len(t, f.events.dataset("mail.delivery"), 1)
}

func TestDialTenant(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	f := newFixture(t, func(c *mailrelay.Config) {
		c.Delivery.DialTenant = func(ctx context.Context, tenant, network, addr string) (net.Conn, error) {
			mu.Lock()
			seen = append(seen, tenant+" "+addr)
			mu.Unlock()
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	})
	cl := dial(t, f.addr, "127.0.1.5")
	cl.expect("EHLO pc.a.example.jp", 250)
	code, _ := cl.sendMail("staff@a.example.jp", []string{"x@internet.example", "y@b.example.jp"}, msg("staff@a.example.jp", "egress"))
	require.Equal(t, 250, code)
	f.smarthost.Wait(waitCtx(t), 1)
	f.sinkB.Wait(waitCtx(t), 1)
	mu.Lock()
	defer mu.Unlock()
	assert.ElementsMatch(t, []string{"a " + f.smarthost.Addr, " " + f.sinkB.Addr}, seen)
}

func TestDelayNotice(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	var accept atomic.Bool
	f := newFixture(t, func(c *mailrelay.Config) {
		c.Delivery.DelayNotice = time.Hour
		c.Now = func() time.Time { return time.Unix(0, now.Load()) }
	})
	f.sinkA.Reply = func(rcpt string) string {
		if rcpt == "slow@a.example.jp" && !accept.Load() {
			now.Add(int64(30 * time.Minute))
			return "451 4.2.0 mailbox busy"
		}
		return ""
	}
	cl := dial(t, f.addr, "127.0.1.5")
	cl.expect("EHLO pc.a.example.jp", 250)
	code, _ := cl.sendMail("staff@a.example.jp", []string{"slow@a.example.jp"}, msg("staff@a.example.jp", "delayed"))
	require.Equal(t, 250, code)
	// The delay notice reaches the sender (a tenant A address) once.
	m := f.sinkA.Wait(waitCtx(t), 1)
	require.Len(t, m, 1)
	assert.Equal(t, []string{"staff@a.example.jp"}, m[0].To)
	assert.Contains(t, string(m[0].Data), "Action: delayed")
	accept.Store(true)
	m = f.sinkA.Wait(waitCtx(t), 2)
	require.Len(t, m, 2)
	assert.Equal(t, []string{"slow@a.example.jp"}, m[1].To)
	time.Sleep(50 * time.Millisecond)
	assert.Len(t, f.sinkA.Messages(), 2, "one delay notice only")
}

// TestRestartNoDuplicates: after a clean shutdown nothing delivered is
// delivered again, and the queue directory holds one empty segment.
func TestRestartNoDuplicates(t *testing.T) {
	f := newFixture(t, nil)
	cl := dial(t, f.addr, "127.0.0.9")
	cl.expect("EHLO mx.internet.example", 250)
	for i := 0; i < 20; i++ {
		code, _ := cl.sendMail("x@internet.example", []string{"u@a.example.jp"}, msg("x@internet.example", fmt.Sprint("r", i)))
		require.Equal(t, 250, code)
	}
	require.Len(t, f.sinkA.Wait(waitCtx(t), 20), 20)
	require.Eventually(t, func() bool { return len(f.events.dataset("mail.delivery")) == 20 }, waitDur, pollDur)
	require.NoError(t, f.srv.Close())
	f.start(t)
	time.Sleep(100 * time.Millisecond)
	assert.Len(t, f.sinkA.Messages(), 20)
	segs, err := filepath.Glob(filepath.Join(f.dir, "seg-*.log"))
	require.NoError(t, err)
	assert.Len(t, segs, 1, "old segments collected")
}

// TestTenantRemovedHoldsInbound: inbound mail whose tenant disappears from
// the directory while queued is held (4xx), never sent to the internet.
func TestTenantRemovedHoldsInbound(t *testing.T) {
	var live *tenant.Live
	var first atomic.Bool
	first.Store(true)
	f := newFixture(t, func(c *mailrelay.Config) {
		live = tenant.NewLive(c.Directory.(*tenant.Snapshot))
		c.Directory = live
	})
	f.sinkA.Reply = func(string) string {
		if first.Swap(false) {
			empty, err := tenant.NewSnapshot(nil, tenant.Options{})
			if err == nil {
				live.Store(empty)
			}
			return "451 4.3.0 later"
		}
		return ""
	}
	cl := dial(t, f.addr, "127.0.0.9")
	cl.expect("EHLO mx.internet.example", 250)
	code, _ := cl.sendMail("x@internet.example", []string{"u@a.example.jp"}, msg("x@internet.example", "held"))
	require.Equal(t, 250, code)
	require.Eventually(t, func() bool {
		for _, e := range f.events.dataset("mail.delivery") {
			if v, _ := e.Label("status"); strings.Contains(v, "no longer served") {
				return true
			}
		}
		return false
	}, waitDur, pollDur)
	assert.Empty(t, f.smarthost.Messages())
}
