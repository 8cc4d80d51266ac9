package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recBudget records the charges made to it and never waits.
type recBudget struct {
	mu      sync.Mutex
	burst   int
	charges []int
	err     error
}

func (b *recBudget) WaitN(ctx context.Context, n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.burst {
		return ErrExceedsBurst
	}
	if b.err != nil {
		return b.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.charges = append(b.charges, n)
	return nil
}

func (b *recBudget) Burst() int { return b.burst }

func (b *recBudget) total() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := 0
	for _, c := range b.charges {
		s += c
	}
	return s
}

func TestWriterChargesInChunks(t *testing.T) {
	b := &recBudget{burst: 4}
	var out bytes.Buffer
	w := NewWriter(&out, b)
	n, err := w.Write([]byte("hello, world"))
	require.NoError(t, err)
	assert.Equal(t, 12, n)
	assert.Equal(t, "hello, world", out.String())
	assert.Equal(t, []int{4, 4, 4}, b.charges)

	b.err = errors.New("boom")
	n, err = w.Write([]byte("x"))
	assert.Zero(t, n)
	assert.EqualError(t, err, "boom")

	n, err = NewWriter(&out, nil).Write([]byte("!"))
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}

func TestReaderChargesWhatWasRead(t *testing.T) {
	b := &recBudget{burst: 5}
	r := NewReader(strings.NewReader("abcdefghijkl"), b)
	data, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, "abcdefghijkl", string(data))
	assert.Equal(t, 12, b.total())
	for _, c := range b.charges {
		assert.LessOrEqual(t, c, 5)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = NewReaderContext(ctx, strings.NewReader("abc"), b).Read(make([]byte, 3))
	require.ErrorIs(t, err, context.Canceled)

	data, err = io.ReadAll(NewReader(strings.NewReader("plain"), nil))
	require.NoError(t, err)
	assert.Equal(t, "plain", string(data))
}

func TestConnShapesBothWays(t *testing.T) {
	a, c := net.Pipe()
	defer c.Close()
	in, out := &recBudget{burst: 3}, &recBudget{burst: 2}
	sc := NewConn(a, in, out)
	defer sc.Close()

	go func() {
		buf := make([]byte, 5)
		_, _ = io.ReadFull(c, buf)
		_, _ = c.Write([]byte("pong!"))
	}()
	n, err := sc.Write([]byte("ping!"))
	require.NoError(t, err)
	assert.Equal(t, 5, n)
	buf := make([]byte, 5)
	_, err = io.ReadFull(sc, buf)
	require.NoError(t, err)
	assert.Equal(t, "pong!", string(buf))
	assert.Equal(t, []int{2, 2, 1}, out.charges)
	assert.Equal(t, 5, in.total())
}

func TestConnDeadlineAndClose(t *testing.T) {
	a, c := net.Pipe()
	defer c.Close()
	// 1 byte per second: a second byte needs a wait of about 1s.
	slow, err := New(Config{Rate: 1, Burst: 1})
	require.NoError(t, err)
	sc := NewConn(a, nil, slow)
	go func() { _, _ = io.Copy(io.Discard, c) }()

	_, err = sc.Write([]byte("a"))
	require.NoError(t, err)
	require.NoError(t, sc.SetWriteDeadline(time.Now().Add(10*time.Millisecond)))
	_, err = sc.Write([]byte("b"))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())

	require.NoError(t, sc.SetDeadline(time.Time{}))
	done := make(chan error)
	go func() {
		_, err := sc.Write([]byte("c"))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it start waiting (not a threshold: any order passes)
	require.NoError(t, sc.Close())
	err = <-done
	require.Error(t, err, "Close ends the wait")
}

// TestConnLoopbackShaped sends 256 KiB through a loopback TCP connection
// shaped to 2 MiB/s with a 64 KiB burst and checks the bytes arrive intact.
// The rate itself is measured by BenchmarkShapeLoopback, not here.
func TestConnLoopbackShaped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	payload := bytes.Repeat([]byte("0123456789abcdef"), 16<<10)
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	lim, err := New(Config{Rate: 2 << 20, Burst: 64 << 10})
	require.NoError(t, err)
	sc := NewConn(c, nil, lim)
	n, err := sc.Write(payload)
	require.NoError(t, err)
	assert.Equal(t, len(payload), n)
	require.NoError(t, sc.Close())
	assert.Equal(t, payload, <-got)
}
