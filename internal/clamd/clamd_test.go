package clamd_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/internal/clamd"
	"github.com/jichitai/seccloud/internal/clamd/clamdtest"
)

func TestScanRealClamd(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{})
	big := bytes.Repeat([]byte("harmless "), 50_000) // 450 KB, several chunks
	// The marker straddles a chunk boundary with ChunkSize 1000.
	straddle := append(bytes.Repeat([]byte{'a'}, 990), clamdtest.Marker...)
	cases := []struct {
		name   string
		data   []byte
		status clamd.Status
		sig    string
	}{
		{"clean", []byte("hello, world"), clamd.Clean, ""},
		{"empty", nil, clamd.Clean, ""},
		{"eicar", []byte(clamdtest.EICAR), clamd.Infected, clamdtest.EICARName},
		{"marker in a large stream", append(append([]byte{}, big...), clamdtest.Marker...), clamd.Infected, clamdtest.MarkerName},
		{"marker across chunks", straddle, clamd.Infected, clamdtest.MarkerName},
		{"large clean", big, clamd.Clean, ""},
		{"over StreamMaxLength", bytes.Repeat([]byte{'x'}, 1<<20+10), clamd.TooLarge, ""},
	}
	for _, addr := range []string{d.Addr, d.Socket} {
		c, err := clamd.New(clamd.Config{Address: addr, ChunkSize: 1000})
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		for _, tc := range cases {
			t.Run(tc.name+"/"+addr, func(t *testing.T) {
				res, err := c.ScanBytes(context.Background(), tc.data)
				require.NoError(t, err)
				assert.Equal(t, tc.status, res.Status)
				assert.Equal(t, tc.sig, res.Signature)
				if tc.status != clamd.TooLarge {
					assert.Equal(t, int64(len(tc.data)), res.Scanned)
				}
			})
		}
		// The size-limit error closed its session; the client carries on.
		res, err := c.ScanBytes(context.Background(), []byte(clamdtest.EICAR))
		require.NoError(t, err)
		assert.Equal(t, clamd.Infected, res.Status)
	}
}

func TestPingVersion(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{})
	c, err := clamd.New(clamd.Config{Address: d.Socket})
	require.NoError(t, err)
	require.NoError(t, c.Ping(context.Background()))
	v, err := c.Version(context.Background())
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(v, "ClamAV "), v)
}

func TestSessionReuse(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{})
	c, err := clamd.New(clamd.Config{Address: d.Addr})
	require.NoError(t, err)
	defer c.Close()
	for i := 0; i < 20; i++ {
		res, err := c.ScanBytes(context.Background(), []byte(fmt.Sprintf("file %d", i)))
		require.NoError(t, err)
		require.Equal(t, clamd.Clean, res.Status)
	}
	assert.Equal(t, int64(1), c.Dials(), "20 sequential scans share one IDSESSION")

	noReuse, err := clamd.New(clamd.Config{Address: d.Addr, MaxIdle: -1})
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		res, err := noReuse.ScanBytes(context.Background(), []byte(clamdtest.EICAR))
		require.NoError(t, err)
		require.Equal(t, clamd.Infected, res.Status)
	}
	assert.Equal(t, int64(3), noReuse.Dials())
}

func TestConcurrentScans(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{})
	c, err := clamd.New(clamd.Config{Address: d.Socket, MaxIdle: 3})
	require.NoError(t, err)
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8*10)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				data, want := []byte("clean data"), clamd.Clean
				if (g+i)%2 == 0 {
					data, want = []byte(clamdtest.EICAR), clamd.Infected
				}
				res, err := c.ScanBytes(context.Background(), data)
				if err == nil && res.Status != want {
					err = fmt.Errorf("got %v want %v", res.Status, want)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.LessOrEqual(t, c.Dials(), int64(8+8), "sessions are reused")
}

func TestMaxStream(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{})
	c, err := clamd.New(clamd.Config{Address: d.Addr, MaxStream: 100_000, ChunkSize: 30_000})
	require.NoError(t, err)
	defer c.Close()

	res, err := c.ScanBytes(context.Background(), bytes.Repeat([]byte{'y'}, 200_000))
	require.NoError(t, err)
	assert.Equal(t, clamd.TooLarge, res.Status)
	assert.Equal(t, int64(100_000), res.Scanned)

	// Found in the scanned prefix: infected, not merely too large.
	data := append([]byte(clamdtest.EICAR), bytes.Repeat([]byte{'y'}, 200_000)...)
	res, err = c.Scan(context.Background(), bytes.NewReader(data))
	require.NoError(t, err)
	assert.Equal(t, clamd.Infected, res.Status)

	// Exactly the limit is not too large.
	res, err = c.ScanBytes(context.Background(), bytes.Repeat([]byte{'y'}, 100_000))
	require.NoError(t, err)
	assert.Equal(t, clamd.Clean, res.Status)
	assert.Equal(t, int64(1), c.Dials(), "a client-side truncation keeps the session")
}

func TestUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	c, err := clamd.New(clamd.Config{Address: addr})
	require.NoError(t, err)
	_, err = c.ScanBytes(context.Background(), []byte("x"))
	assert.ErrorIs(t, err, clamd.ErrUnavailable)
	assert.ErrorIs(t, c.Ping(context.Background()), clamd.ErrUnavailable)

	d := clamdtest.Start(t, clamdtest.Options{})
	c, err = clamd.New(clamd.Config{Address: d.Socket})
	require.NoError(t, err)
	_, err = c.ScanBytes(context.Background(), []byte("x"))
	require.NoError(t, err)
	d.Stop()
	_, err = c.ScanBytes(context.Background(), []byte("x"))
	assert.ErrorIs(t, err, clamd.ErrUnavailable)

	require.NoError(t, c.Close())
	_, err = c.ScanBytes(context.Background(), []byte("x"))
	assert.ErrorIs(t, err, clamd.ErrClosed)
}

// fakeClamd serves IDSESSION/INSTREAM with a scripted behaviour per command.
type fakeClamd struct {
	l       net.Listener
	mu      sync.Mutex
	accepts int
}

func startFake(t *testing.T, handle func(n int, conn net.Conn, br *bufio.Reader)) *fakeClamd {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakeClamd{l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.accepts++
			n := f.accepts
			f.mu.Unlock()
			go func() {
				defer conn.Close()
				handle(n, conn, bufio.NewReader(conn))
			}()
		}
	}()
	return f
}

// readInstream reads "zIDSESSION\0"? "zINSTREAM\0" and the chunks.
func readInstream(br *bufio.Reader) ([]byte, error) {
	for {
		cmd, err := br.ReadString(0)
		if err != nil {
			return nil, err
		}
		if cmd == "zINSTREAM\x00" {
			break
		}
	}
	var data []byte
	for {
		var n [4]byte
		if _, err := io.ReadFull(br, n[:]); err != nil {
			return nil, err
		}
		size := binary.BigEndian.Uint32(n[:])
		if size == 0 {
			return data, nil
		}
		chunk := make([]byte, size)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return nil, err
		}
		data = append(data, chunk...)
	}
}

func TestStaleSessionIsRetried(t *testing.T) {
	// The fake answers one command per connection, then hangs up, as clamd
	// does when its IdleTimeout ends a kept session.
	f := startFake(t, func(n int, conn net.Conn, br *bufio.Reader) {
		if _, err := readInstream(br); err != nil {
			return
		}
		conn.Write([]byte("1: stream: OK\x00"))
	})
	c, err := clamd.New(clamd.Config{Address: f.l.Addr().String()})
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		res, err := c.ScanBytes(context.Background(), []byte("data"))
		require.NoError(t, err, "scan %d", i)
		assert.Equal(t, clamd.Clean, res.Status)
	}
	assert.GreaterOrEqual(t, c.Dials(), int64(3))
}

func TestReplyErrorAndMismatch(t *testing.T) {
	f := startFake(t, func(n int, conn net.Conn, br *bufio.Reader) {
		if _, err := readInstream(br); err != nil {
			return
		}
		if n == 1 {
			conn.Write([]byte("1: Can't create temporary file ERROR\x00"))
		} else {
			conn.Write([]byte("7: stream: OK\x00"))
		}
	})
	c, err := clamd.New(clamd.Config{Address: f.l.Addr().String()})
	require.NoError(t, err)
	_, err = c.ScanBytes(context.Background(), []byte("data"))
	var re *clamd.ReplyError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "Can't create temporary file ERROR", re.Msg)
	assert.NotErrorIs(t, err, clamd.ErrUnavailable)

	_, err = c.ScanBytes(context.Background(), []byte("data"))
	assert.ErrorContains(t, err, "want 1")
}

func TestContextDeadline(t *testing.T) {
	f := startFake(t, func(n int, conn net.Conn, br *bufio.Reader) {
		readInstream(br)
		time.Sleep(5 * time.Second) // never answers in time
	})
	c, err := clamd.New(clamd.Config{Address: f.l.Addr().String()})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = c.ScanBytes(ctx, []byte("data"))
	assert.ErrorIs(t, err, clamd.ErrUnavailable)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel2)
	_, err = c.ScanBytes(ctx2, []byte("data"))
	assert.ErrorIs(t, err, context.Canceled)
}

func TestSourceError(t *testing.T) {
	d := clamdtest.Start(t, clamdtest.Options{})
	c, err := clamd.New(clamd.Config{Address: d.Addr})
	require.NoError(t, err)
	boom := errors.New("disk on fire")
	_, err = c.Scan(context.Background(), io.MultiReader(strings.NewReader("abc"), errReader{boom}))
	assert.ErrorIs(t, err, boom)
	assert.NotErrorIs(t, err, clamd.ErrUnavailable)
	res, err := c.ScanBytes(context.Background(), []byte(clamdtest.EICAR))
	require.NoError(t, err)
	assert.Equal(t, clamd.Infected, res.Status)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestConfig(t *testing.T) {
	for name, cfg := range map[string]clamd.Config{
		"no address":  {},
		"bad network": {Address: "x", Network: "udp"},
		"huge chunk":  {Address: "x", ChunkSize: 1 << 25},
		"neg max":     {Address: "x", MaxStream: -1},
	} {
		_, err := clamd.New(cfg)
		assert.Error(t, err, name)
	}
}

func TestParseReply(t *testing.T) {
	cases := []struct {
		in     string
		id     uint64
		status clamd.Status
		sig    string
		err    bool
	}{
		{"stream: OK\x00", 0, clamd.Clean, "", false},
		{"stream: OK\n", 0, clamd.Clean, "", false},
		{"3: stream: OK\x00", 3, clamd.Clean, "", false},
		{"stream: Eicar-Test-Signature FOUND\x00", 0, clamd.Infected, "Eicar-Test-Signature", false},
		{"12: stream: Win.Trojan.Agent-1 FOUND", 12, clamd.Infected, "Win.Trojan.Agent-1", false},
		{"INSTREAM size limit exceeded. ERROR", 0, clamd.TooLarge, "", false},
		{"2: INSTREAM size limit exceeded. ERROR", 2, clamd.TooLarge, "", false},
		{"UNKNOWN COMMAND", 0, 0, "", true},
		{"stream:  FOUND", 0, 0, "", true},
		{"lstat() failed: No such file or directory. ERROR", 0, 0, "", true},
		{"99999999999999999999999: stream: OK", 0, 0, "", true},
		{"", 0, 0, "", true},
	}
	for _, tc := range cases {
		id, res, err := clamd.ParseReply(tc.in)
		if tc.err {
			assert.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.id, id, tc.in)
		assert.Equal(t, tc.status, res.Status, tc.in)
		assert.Equal(t, tc.sig, res.Signature, tc.in)
	}
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"stream: OK", "1: stream: X FOUND", "INSTREAM size limit exceeded. ERROR", "4: a ERROR", ": stream: OK", "1:stream: OK"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, res, err := clamd.ParseReply(s)
		if err != nil {
			return
		}
		switch res.Status {
		case clamd.Infected:
			if res.Signature == "" || strings.ContainsAny(res.Signature, "\x00\n") {
				t.Fatalf("bad signature %q from %q", res.Signature, s)
			}
		case clamd.Clean, clamd.TooLarge:
			if res.Signature != "" {
				t.Fatalf("signature %q on %v", res.Signature, res.Status)
			}
		default:
			t.Fatalf("status %v", res.Status)
		}
	})
}
