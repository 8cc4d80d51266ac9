package mailrelay_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/mailrelay"
)

// TestQueueFullDisk fills the queue's filesystem (a 256 KiB tmpfs; root
// only): the relay answers 451 4.3.0 instead of 250, so the sender keeps
// the message; after the disk is grown and the relay restarted, every
// message that got a 250 is delivered exactly once.
func TestQueueFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small filesystem needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := l.Addr().String() // tenant mail servers that do not answer: mail stays queued
	l.Close()

	f := newFixture(t, func(c *mailrelay.Config) {
		c.Queue.Dir = dir
		c.Queue.SegmentSize = 64 << 10
		c.Directory = directory(t, dead, dead)
	})
	filler := strings.Repeat("あいうえお filler line to take space on the small disk\r\n", 200) // ≈ 13 KiB
	accepted := map[string]bool{}
	var code int
	var text string
	for i := 0; i < 200; i++ {
		cl := dial(t, f.addr, "127.0.0.9")
		cl.expect("EHLO mx.internet.example", 250)
		subj := fmt.Sprintf("full-%03d", i)
		body := strings.Replace(msg("x@internet.example", subj), "hello\r\n", "hello\r\n"+filler, 1)
		code, text = cl.sendMail("x@internet.example", []string{"u@a.example.jp"}, body)
		if code != 250 {
			break
		}
		accepted[subj] = true
		cl.expect("QUIT", 221)
	}
	require.Equal(t, 451, code, "a full disk is a temporary failure: %s", text)
	assert.Contains(t, text, "4.3.0")
	require.NotEmpty(t, accepted)
	t.Logf("%d messages accepted before the disk filled; then %d %s", len(accepted), code, text)

	require.NoError(t, f.srv.Close())
	out, err := exec.Command("mount", "-o", "remount,size=16m", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	f.cfg.Directory = directory(t, f.sinkA.Addr, f.sinkB.Addr)
	f.start(t) // recovers the queue from the journal

	got := f.sinkA.Wait(waitCtx(t), len(accepted))
	require.Len(t, got, len(accepted))
	seen := map[string]int{}
	for _, m := range got {
		for _, line := range strings.Split(string(m.Data), "\r\n") {
			if s, ok := strings.CutPrefix(line, "Subject: "); ok {
				seen[s]++
			}
		}
	}
	for s := range accepted {
		assert.Equal(t, 1, seen[s], "%s was acknowledged with 250: delivered once", s)
	}
}
