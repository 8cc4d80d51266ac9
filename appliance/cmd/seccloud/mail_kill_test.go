package main

import (
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
)

// killMailYAML runs only the mail relay, delivering tsu.example.jp to
// the sink.
func killMailYAML(dataDir, console, smtpAddr, sink string) string {
	return fmt.Sprintf(`version: 1
data_dir: %s
log: {level: warn, format: json}
listen: {console: "%s", smtp: "%s"}
functions: {proxy: false, dns: false, waf: false, mail: true}
mail: {hostname: mx.seccloud.example}
tenants:
  - id: tsu
    name: 津市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    mail_domains: [tsu.example.jp]
    mail_servers: ["%s"]
    contacts:
      - {name: 担当, email: soc@tsu.example.jp}
`, dataDir, console, smtpAddr, sink)
}

var killMsgID = regexp.MustCompile(`(?m)^Message-ID: <([^>]+)>`)

// killLedger is what the senders know: messages acknowledged with 250,
// and messages whose DATA was sent without an answer (in flight when
// the relay died; the sender sends them again, as an MTA would).
type killLedger struct {
	mu       sync.Mutex
	acked    map[string]bool
	inFlight map[string]bool
	n        atomic.Int64
}

// TestMailKill9During5000 is the acceptance test "kill -9 during a
// 5,000-message run loses nothing acknowledged", through the real
// binary: 10 clients send 5,000 messages to a tenant domain over SMTP
// sessions of 25 messages; when half are acknowledged the appliance gets
// SIGKILL; it is started again on the same data directory and the
// clients go on (sending again what was in flight). Every message
// acknowledged with 250 must reach the tenant's mail server. Duplicates
// are counted and must be explained: either the client sent the message
// again (no answer before the kill) or the first copy had reached the
// mail server before the kill (a delivery in flight).
func TestMailKill9During5000(t *testing.T) {
	bin := buildBinary(t)
	const total, clients, perSession = 5000, 10, 25
	dir := t.TempDir()
	sink, err := mailrelaytest.NewSink()
	require.NoError(t, err)
	defer sink.Close()
	console, smtpAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "seccloud.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(killMailYAML(filepath.Join(dir, "data"), console, smtpAddr, sink.Addr)), 0o600))

	a := start(t, bin, console, "-config", cfg)
	waitSMTP(t, smtpAddr)

	led := &killLedger{acked: map[string]bool{}, inFlight: map[string]bool{}}
	var up atomic.Bool // the relay is (believed) up
	up.Store(true)
	var wg sync.WaitGroup
	begin := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			var queue []int
			for i := c; i < total; i += clients {
				queue = append(queue, i)
			}
			for len(queue) > 0 {
				if !up.Load() {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				queue = killSession(smtpAddr, queue, perSession, led)
				if time.Since(begin) > 3*time.Minute {
					t.Errorf("client %d: %d messages not sent after 3 minutes", c, len(queue))
					return
				}
			}
		}(c)
	}

	// Kill in the middle of the run.
	require.Eventually(t, func() bool { return led.n.Load() >= total/2 }, 2*time.Minute, 5*time.Millisecond)
	up.Store(false)
	a.signal(syscall.SIGKILL)
	a.wait(10 * time.Second)
	ackedAtKill := int(led.n.Load())
	before := map[string]int{}
	for _, m := range sink.Messages() {
		if mm := killMsgID.FindSubmatch(m.Data); mm != nil {
			before[string(mm[1])]++
		}
	}

	a2 := start(t, bin, console, "-config", cfg)
	waitSMTP(t, smtpAddr)
	up.Store(true)
	wg.Wait()
	_ = a2

	led.mu.Lock()
	acked := len(led.acked)
	inFlight := len(led.inFlight)
	led.mu.Unlock()
	require.Equal(t, total, acked, "every message is eventually acknowledged (clients retry)")

	// Every acknowledged message is delivered.
	var got map[string]int
	require.Eventually(t, func() bool {
		got = map[string]int{}
		for _, m := range sink.Messages() {
			if mm := killMsgID.FindSubmatch(m.Data); mm != nil {
				got[string(mm[1])]++
			}
		}
		for id := range led.acked {
			if got[id] == 0 {
				return false
			}
		}
		return true
	}, 90*time.Second, 200*time.Millisecond, "acknowledged messages missing at the sink")

	// Give redeliveries a moment, then count duplicates.
	time.Sleep(time.Second)
	got = map[string]int{}
	for _, m := range sink.Messages() {
		if mm := killMsgID.FindSubmatch(m.Data); mm != nil {
			got[string(mm[1])]++
		}
	}
	var lost, dupClient, dupDelivery, dupUnexplained int
	for id := range led.acked {
		if got[id] == 0 {
			lost++
		}
	}
	for id, n := range got {
		if n < 2 {
			continue
		}
		switch {
		case led.inFlight[id]:
			dupClient++
		case before[id] > 0:
			dupDelivery++
		default:
			dupUnexplained++
			t.Errorf("message %s delivered %d times without cause", id, n)
		}
	}
	assert.Zero(t, lost, "acknowledged messages lost")
	assert.Zero(t, dupUnexplained)
	assert.Len(t, got, total, "distinct messages delivered")
	t.Logf("%d messages, %d acknowledged before SIGKILL, %d delivered before it; %d in flight at the kill (sent again); "+
		"lost 0; duplicates: %d of messages in flight at the client, %d of deliveries in flight; %.1f s",
		total, ackedAtKill, len(before), inFlight, dupClient, dupDelivery, time.Since(begin).Seconds())
}

// killSession sends up to n messages of queue in one SMTP session and
// returns what is left to send. A message without an answer (the relay
// died) is recorded as in flight and stays in the queue.
func killSession(addr string, queue []int, n int, led *killLedger) []int {
	c, err := smtp.Dial(addr)
	if err != nil {
		time.Sleep(20 * time.Millisecond)
		return queue
	}
	defer c.Close()
	if err := c.Hello("mx.sender.example"); err != nil {
		return queue
	}
	for k := 0; k < n && len(queue) > 0; k++ {
		i := queue[0]
		id := fmt.Sprintf("kill-%d@sender.example", i)
		body := fmt.Sprintf("From: <news@sender.example>\r\nTo: <user%d@tsu.example.jp>\r\nSubject: kill test %d\r\n"+
			"Date: Thu, 26 Nov 2026 10:00:00 +0900\r\nMessage-ID: <%s>\r\n\r\n防災メール %d\r\n%s\r\n", i%50, i, id, i,
			"本文 body line for a message of about one kilobyte. 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ")
		if err := c.Mail("news@sender.example"); err != nil {
			return queue
		}
		if err := c.Rcpt(fmt.Sprintf("user%d@tsu.example.jp", i%50)); err != nil {
			return queue
		}
		w, err := c.Data()
		if err != nil {
			return queue
		}
		if _, err := w.Write([]byte(body)); err != nil {
			led.mu.Lock()
			led.inFlight[id] = true
			led.mu.Unlock()
			return queue
		}
		if err := w.Close(); err != nil {
			// No 250: the relay died (or deferred it); it may have been
			// stored, so this is in flight and is sent again.
			led.mu.Lock()
			led.inFlight[id] = true
			led.mu.Unlock()
			return queue
		}
		led.mu.Lock()
		if !led.acked[id] {
			led.acked[id] = true
			led.n.Add(1)
		}
		led.mu.Unlock()
		queue = queue[1:]
	}
	c.Quit()
	return queue
}

func waitSMTP(t *testing.T, addr string) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := smtp.Dial(addr)
		if err != nil {
			return false
		}
		c.Quit()
		return true
	}, 20*time.Second, 20*time.Millisecond, "SMTP listener at %s", addr)
}
