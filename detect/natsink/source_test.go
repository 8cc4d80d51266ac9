package natsink_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/natsink"
)

// collector records the ids of the events handed to it.
type collector struct {
	mu   sync.Mutex
	ids  map[string]int
	fail int // refuse this many batches first
}

func (c *collector) handle(_ context.Context, evs []detect.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail > 0 {
		c.fail--
		return errors.New("store is full")
	}
	if c.ids == nil {
		c.ids = map[string]int{}
	}
	for _, e := range evs {
		c.ids[e.ID]++
	}
	return nil
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

func (c *collector) dups() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.ids {
		n += v - 1
	}
	return n
}

func runSource(t *testing.T, cfg natsink.SourceConfig, c *collector) (*natsink.Source, context.CancelFunc, chan error) {
	t.Helper()
	src, err := natsink.NewSource(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, c.handle) }()
	t.Cleanup(func() { cancel(); <-done; src.Close() })
	return src, cancel, done
}

func TestSourceDeliversEverythingOnce(t *testing.T) {
	s := startNATS(t)
	w := newWriter(t, natsink.Config{URL: s.url(), CreateStream: true})
	// The source may start before the stream exists.
	var c collector
	c.fail = 2 // two refused batches come back
	src, _, _ := runSource(t, natsink.SourceConfig{URL: s.url(), Batch: 100}, &c)
	evs := testEvents("s", 0, 1000)
	require.NoError(t, w.WriteEvents(context.Background(), evs))

	// Not an event: terminated, counted, the rest flows.
	nc, err := nats.Connect(s.url())
	require.NoError(t, err)
	defer nc.Close()
	js, err := nc.JetStream()
	require.NoError(t, err)
	_, err = js.Publish("seccloud.events.dns.x", []byte("not json"))
	require.NoError(t, err)
	require.NoError(t, w.WriteEvents(context.Background(), testEvents("s", 1000, 10)))

	require.Eventually(t, func() bool { return c.count() == 1010 }, 30*time.Second, 50*time.Millisecond)
	assert.Zero(t, c.dups())
	require.Eventually(t, func() bool { return src.Stats().Malformed == 1 }, 10*time.Second, 50*time.Millisecond)
	st := src.Stats()
	assert.EqualValues(t, 2, st.Failed)
	assert.EqualValues(t, 1010, st.Delivered)
}

// Two sources sharing a durable consumer split the stream between them;
// a source stopped before acknowledging leaves its batch to the other.
func TestSourceSharedDurable(t *testing.T) {
	s := startNATS(t)
	w := newWriter(t, natsink.Config{URL: s.url(), CreateStream: true})
	require.NoError(t, w.WriteEvents(context.Background(), testEvents("d", 0, 10)))

	// A source that takes a batch and never acknowledges it (its handler
	// blocks until the process "dies").
	blocked := make(chan struct{})
	dead, err := natsink.NewSource(natsink.SourceConfig{URL: s.url(), Batch: 10, AckWait: time.Second})
	require.NoError(t, err)
	dctx, kill := context.WithCancel(context.Background())
	ddone := make(chan error, 1)
	go func() {
		ddone <- dead.Run(dctx, func(ctx context.Context, _ []detect.Event) error {
			close(blocked)
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	<-blocked
	kill()
	<-ddone
	dead.Close()

	var a, b collector
	runSource(t, natsink.SourceConfig{URL: s.url(), Batch: 50, AckWait: time.Second}, &a)
	runSource(t, natsink.SourceConfig{URL: s.url(), Batch: 50, AckWait: time.Second}, &b)
	require.NoError(t, w.WriteEvents(context.Background(), testEvents("d", 10, 2000)))
	require.Eventually(t, func() bool { return a.count()+b.count() >= 2010 }, 30*time.Second, 50*time.Millisecond)
	all := map[string]bool{}
	for _, c := range []*collector{&a, &b} {
		c.mu.Lock()
		for id := range c.ids {
			all[id] = true
		}
		c.mu.Unlock()
	}
	assert.Len(t, all, 2010, "every event, including the dead source's unacknowledged batch, reached a live source")
	assert.Zero(t, a.dups()+b.dups())
	assert.Equal(t, 2010, a.count()+b.count(), "no event went to both sources")
}

func TestNewSourceConfig(t *testing.T) {
	_, err := natsink.NewSource(natsink.SourceConfig{})
	assert.Error(t, err)
	_, err = natsink.NewSource(natsink.SourceConfig{URL: "nats://127.0.0.1:1", Durable: "a.b"})
	assert.Error(t, err)
}
