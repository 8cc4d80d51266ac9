package main

import (
	"encoding/json"
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
)

// mailNodeYAML is a node that runs only the mail relay (and the console),
// delivering mail for tsu.example.jp to mailServer.
func mailNodeYAML(dataDir, console, smtpAddr, host, mailServer string) string {
	return fmt.Sprintf(`version: 1
data_dir: %s
log: {level: info, format: json}
listen: {console: "%s", smtp: "%s"}
functions: {proxy: false, dns: false, waf: false, mail: true}
mail: {hostname: %s, policy: {attachments: quarantine}}
tenants:
  - id: tsu
    name: 津市
    networks: [127.0.1.0/24]
    egress_addr: 127.0.0.1
    mail_domains: [tsu.example.jp]
    mail_servers: ["%s"]
    contacts:
      - {name: 担当, email: soc@tsu.example.jp}
`, dataDir, console, smtpAddr, host, mailServer)
}

// sendFromInternet sends n messages from an internet address to the
// tenant's domain through addr; each must be accepted (250).
func sendFromInternet(t *testing.T, addr string, n int, tag string) {
	t.Helper()
	for i := range n {
		body := fmt.Sprintf("From: <news@sender.example>\r\nTo: <user@tsu.example.jp>\r\nSubject: %s %d\r\nMessage-ID: <%s-%d@sender.example>\r\n\r\n防災訓練のお知らせ %d\r\n", tag, i, tag, i, i)
		require.NoError(t, smtp.SendMail(addr, nil, "news@sender.example", []string{"user@tsu.example.jp"}, []byte(body)), "message %d", i)
	}
}

// sendExecutable sends one message with a Windows executable attached,
// which the default mail policy quarantines.
func sendExecutable(t *testing.T, addr string) {
	t.Helper()
	body := "From: <news@sender.example>\r\nTo: <user@tsu.example.jp>\r\nSubject: invoice\r\nMessage-ID: <exe@sender.example>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n請求書を添付します。\r\n" +
		"--b1\r\nContent-Type: application/octet-stream; name=\"invoice.exe\"\r\nContent-Disposition: attachment; filename=\"invoice.exe\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAA=\r\n--b1--\r\n"
	require.NoError(t, smtp.SendMail(addr, nil, "news@sender.example", []string{"user@tsu.example.jp"}, []byte(body)))
}

var messageID = regexp.MustCompile(`(?m)^Message-ID: <([^>]+)>`)

// deliveredIDs returns the Message-IDs the sink received, sorted, with
// duplicates kept.
func deliveredIDs(s *mailrelaytest.Sink) []string {
	var ids []string
	for _, m := range s.Messages() {
		if mm := messageID.FindSubmatch(m.Data); mm != nil {
			ids = append(ids, string(mm[1]))
		}
	}
	sort.Strings(ids)
	return ids
}

func wantIDs(tag string, n int) []string {
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("%s-%d@sender.example", tag, i))
	}
	sort.Strings(ids)
	return ids
}

// deadMailServer is a loopback address where nothing listens.
func deadMailServer(t *testing.T) string { return freeAddr(t) }

// TestMailFailoverRequeue: node 1 (active) accepts mail while the tenant's
// mail server is unreachable and is killed with SIGKILL; node 2 (standby,
// its own data directory, the tenant's server reachable from it) re-homes
// node 1's queue with `seccloud mail requeue` and delivers every message
// exactly once; a second run imports nothing; node 1, started again
// afterwards, has nothing left to deliver.
func TestMailFailoverRequeue(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	sink, err := mailrelaytest.NewSink()
	require.NoError(t, err)
	defer sink.Close()

	n1data, n2data := filepath.Join(dir, "n1"), filepath.Join(dir, "n2")
	n1cfg, n2cfg := filepath.Join(dir, "n1.yaml"), filepath.Join(dir, "n2.yaml")
	n1console, n1smtp := freeAddr(t), freeAddr(t)
	n2console, n2smtp := freeAddr(t), freeAddr(t)
	require.NoError(t, os.WriteFile(n1cfg, []byte(mailNodeYAML(n1data, n1console, n1smtp, "mx1.seccloud.example", deadMailServer(t))), 0o600))
	require.NoError(t, os.WriteFile(n2cfg, []byte(mailNodeYAML(n2data, n2console, n2smtp, "mx2.seccloud.example", sink.Addr)), 0o600))

	n1 := start(t, bin, n1console, "-config", n1cfg)
	n2 := start(t, bin, n2console, "-config", n2cfg)
	const n = 12
	sendFromInternet(t, n1smtp, n, "failover")
	sendExecutable(t, n1smtp) // quarantined on node 1
	n1queue, n1quar := filepath.Join(n1data, "mailq"), filepath.Join(n1data, "quarantine")
	quarantined, err := filepath.Glob(filepath.Join(n1quar, "*.json"))
	require.NoError(t, err)
	require.Len(t, quarantined, 1)

	// While node 1 runs its queue is locked: the requeue refuses.
	out, rc := seccloud(t, bin, "mail", "requeue", "-from", n1queue, "-config", n2cfg)
	assert.Equal(t, 1, rc, out)
	assert.Contains(t, out, "still running")

	// The active node dies.
	require.NoError(t, n1.cmd.Process.Signal(syscall.SIGKILL))
	<-n1.exited

	out, rc = seccloud(t, bin, "mail", "requeue", "-from", n1queue, "-quarantine-from", n1quar, "-config", n2cfg, "-json")
	require.Equal(t, 0, rc, out)
	var res struct {
		Queue      mailrelay.RehomeReport
		Quarantine *mailrelay.QuarantineRehome
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	rep := res.Queue
	require.NotNil(t, res.Quarantine)
	assert.Len(t, res.Quarantine.Imported, 1, "the quarantined mail is node 2's now")
	qid := strings.TrimSuffix(filepath.Base(quarantined[0]), ".json")
	for _, f := range []string{qid + ".json", qid + ".eml"} {
		assert.FileExists(t, filepath.Join(n2data, "quarantine", f))
		assert.FileExists(t, filepath.Join(n1quar, f+".rehomed"), "marked on node 1")
	}
	assert.Len(t, rep.Imported, n)
	assert.Zero(t, rep.Duplicates)
	for _, m := range rep.Imported {
		assert.Equal(t, "tsu", m.Tenant)
		assert.Equal(t, []string{"user@tsu.example.jp"}, m.To)
	}
	require.Eventually(t, func() bool { return len(sink.Messages()) >= n }, 20*time.Second, 50*time.Millisecond)

	// Twice: nothing new.
	out, rc = seccloud(t, bin, "mail", "requeue", "-from", n1queue, "-quarantine-from", n1quar, "-config", n2cfg)
	require.Equal(t, 0, rc, out)
	assert.Contains(t, out, "took over 0 items")
	assert.Contains(t, out, "imported 0 messages")
	assert.Contains(t, out, "0 通を取り込みました")

	// Node 1 returns (its tenant's server now reachable): nothing of the
	// re-homed mail is sent again. Proof without waiting: after it
	// stops, a re-home of its queue finds nothing, not even duplicates.
	require.NoError(t, os.WriteFile(n1cfg, []byte(mailNodeYAML(n1data, n1console, n1smtp, "mx1.seccloud.example", sink.Addr)), 0o600))
	n1 = start(t, bin, n1console, "-config", n1cfg)
	n1.signal(syscall.SIGTERM)
	require.NoError(t, n1.wait(30*time.Second))
	rep, err = mailrelay.RehomeDir(t.TempDir(), n1queue)
	require.NoError(t, err)
	assert.Empty(t, rep.Imported)
	assert.Zero(t, rep.Duplicates)

	// Node 2 stops gracefully; every message was delivered exactly once.
	n2.signal(syscall.SIGTERM)
	require.NoError(t, n2.wait(30*time.Second))
	assert.Equal(t, wantIDs("failover", n), deliveredIDs(sink))

	// The run is on record in node 2's events.
	out, rc = seccloud(t, bin, "events", "-module", "mail", "-config", n2cfg)
	require.Equal(t, 0, rc, out)
	assert.Contains(t, out, `"queue_rehome"`)
}

// TestMailRestartDeliversOwnQueue: the other path — node 1 is killed with
// mail queued and simply comes back: it delivers its own queue, each
// message once.
func TestMailRestartDeliversOwnQueue(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	sink, err := mailrelaytest.NewSink()
	require.NoError(t, err)
	defer sink.Close()
	data, cfg := filepath.Join(dir, "n1"), filepath.Join(dir, "n1.yaml")
	console, smtpAddr := freeAddr(t), freeAddr(t)
	require.NoError(t, os.WriteFile(cfg, []byte(mailNodeYAML(data, console, smtpAddr, "mx1.seccloud.example", deadMailServer(t))), 0o600))
	n1 := start(t, bin, console, "-config", cfg)
	const n = 8
	sendFromInternet(t, smtpAddr, n, "restart")
	require.NoError(t, n1.cmd.Process.Signal(syscall.SIGKILL))
	<-n1.exited
	assert.Empty(t, sink.Messages())

	require.NoError(t, os.WriteFile(cfg, []byte(mailNodeYAML(data, console, smtpAddr, "mx1.seccloud.example", sink.Addr)), 0o600))
	n1 = start(t, bin, console, "-config", cfg)
	require.Eventually(t, func() bool { return len(sink.Messages()) >= n }, 20*time.Second, 50*time.Millisecond)
	n1.signal(syscall.SIGTERM)
	require.NoError(t, n1.wait(30*time.Second))
	assert.Equal(t, wantIDs("restart", n), deliveredIDs(sink))
	// and its queue is empty afterwards
	rep, err := mailrelay.RehomeDir(t.TempDir(), filepath.Join(data, "mailq"))
	require.NoError(t, err)
	assert.Empty(t, rep.Imported)
}
