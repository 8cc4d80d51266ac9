package mailrelay_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
)

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	return addr
}

// queueOnDeadNode accepts n messages on a relay whose tenants' servers are
// unreachable, then stops it, leaving them queued.
func queueOnDeadNode(t *testing.T, n int) *fixture {
	dead := deadAddr(t)
	node1 := newFixture(t, func(c *mailrelay.Config) {
		c.Directory = directory(t, dead, dead)
		c.Delivery.MinBackoff, c.Delivery.MaxBackoff = time.Hour, time.Hour
	})
	cl := dial(t, node1.addr, "127.0.0.1")
	cl.expect("EHLO outside.example", 250)
	for i := range n {
		code, text := cl.sendMail("x@outside.example", []string{"user@a.example.jp"}, msg("x@outside.example", "rehome"+string(rune('a'+i))))
		require.Equal(t, 250, code, text)
	}
	cl.cmd("QUIT")
	return node1
}

func TestRehomeDeliversOnce(t *testing.T) {
	node1 := queueOnDeadNode(t, 3)
	node2 := newFixture(t, nil)

	_, err := node2.srv.Rehome(node1.dir)
	require.ErrorIs(t, err, mailrelay.ErrQueueLocked, "node 1 still runs")

	require.NoError(t, node1.srv.Close())
	rep, err := node2.srv.Rehome(node1.dir)
	require.NoError(t, err)
	require.Len(t, rep.Imported, 3)
	for _, m := range rep.Imported {
		assert.Equal(t, "a", m.Tenant)
		assert.Equal(t, []string{"user@a.example.jp"}, m.To)
		assert.Positive(t, m.Size)
	}
	got := node2.sinkA.Wait(waitCtx(t), 3)
	require.Len(t, got, 3)

	rep, err = node2.srv.Rehome(node1.dir)
	require.NoError(t, err)
	assert.Empty(t, rep.Imported)
	assert.Zero(t, rep.Duplicates)
	ev := node2.events.dataset("mail.queue")
	require.Len(t, ev, 3)
	assert.Equal(t, []string{"failure", "success", "success"}, []string{ev[0].Outcome, ev[1].Outcome, ev[2].Outcome})
	assert.Equal(t, "queue_rehome", ev[1].Action)

	// Node 1 comes back: its queue holds nothing (a re-home of it finds
	// nothing, not even a duplicate).
	node1.start(t)
	require.NoError(t, node1.srv.Close())
	rep, err = mailrelay.RehomeDir(t.TempDir(), node1.dir)
	require.NoError(t, err)
	assert.Empty(t, rep.Imported)
	assert.Zero(t, rep.Duplicates)
	assert.Len(t, node2.sinkA.Messages(), 3, "nothing delivered twice")
}

func TestRehomeDirOffline(t *testing.T) {
	node1 := queueOnDeadNode(t, 2)
	require.NoError(t, node1.srv.Close())
	dir := t.TempDir()
	rep, err := mailrelay.RehomeDir(dir, node1.dir)
	require.NoError(t, err)
	require.Len(t, rep.Imported, 2)
	rep, err = mailrelay.RehomeDir(dir, node1.dir)
	require.NoError(t, err)
	assert.Empty(t, rep.Imported)

	sink, err := mailrelaytest.NewSink()
	require.NoError(t, err)
	defer sink.Close()
	srv, err := mailrelay.New(mailrelay.Config{Hostname: "relay2.seccloud.test", Directory: directory(t, sink.Addr, sink.Addr),
		Queue: mailrelay.QueueConfig{Dir: dir}, Sink: &eventLog{}})
	require.NoError(t, err)
	defer srv.Close()
	require.Len(t, sink.Wait(waitCtx(t), 2), 2)

	_, err = mailrelay.RehomeDir(dir, node1.dir)
	require.ErrorIs(t, err, mailrelay.ErrQueueLocked, "the relay on dir runs")
}

// TestQuarantineRehome: node 1 quarantines a phishing mail and stops; node
// 2 takes its quarantine over: listed, releasable from node 2 (delivered
// once), a second run copies nothing, and node 1 back no longer lists it.
func TestQuarantineRehome(t *testing.T) {
	node1 := contentFixture(t, nil)
	cl := dial(t, node1.addr, "")
	cl.expect("EHLO mx.example.net", 250)
	code, text := cl.sendMail("info@secure-notice.example", []string{"user@a.example.jp"}, phishBody())
	require.Equal(t, 250, code, text)
	require.Contains(t, text, "quarantined")
	items := node1.srv.Quarantine().List(mailrelay.QuarantineFilter{})
	require.Len(t, items, 1)
	id := items[0].ID
	require.NoError(t, node1.srv.Close())

	node2 := contentFixture(t, nil)
	q2 := node2.srv.Quarantine()
	_, err := q2.Rehome(node2.cfg.Quarantine.Dir)
	require.Error(t, err, "own directory")
	rep, err := q2.Rehome(node1.cfg.Quarantine.Dir)
	require.NoError(t, err)
	assert.Equal(t, []string{id}, rep.Imported)
	got := q2.List(mailrelay.QuarantineFilter{})
	require.Len(t, got, 1)
	assert.Equal(t, items[0].Subject, got[0].Subject)
	assert.Equal(t, items[0].Size, got[0].Size)

	rep, err = q2.Rehome(node1.cfg.Quarantine.Dir)
	require.NoError(t, err)
	assert.Empty(t, rep.Imported)

	_, err = q2.Release(waitCtx(t), id)
	require.NoError(t, err)
	require.Len(t, node2.sinkA.Wait(waitCtx(t), 1), 1)

	node1.start(t) // back: the item is no longer its own
	assert.Empty(t, node1.srv.Quarantine().List(mailrelay.QuarantineFilter{}))
}
