package store_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
	"github.com/jichitai/seccloud/detect/store/internal/gen"
)

// TestHelperProcess is the child of TestCrashKill9: it writes batches with
// consecutive ids and prints "ack N" after each WriteEvents returns, until
// it is killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv("STORE_CRASH_DIR")
	if dir == "" {
		t.Skip("helper process for TestCrashKill9")
	}
	first, _ := strconv.Atoi(os.Getenv("STORE_CRASH_FIRST"))
	// A fast clock: one minute per batch, so days roll and seal while the
	// child writes.
	var batch atomic.Int64
	base := day0.Add(time.Duration(first/100) * time.Minute)
	now := func() time.Time { return base.Add(time.Duration(batch.Load()) * time.Minute) }
	s, err := store.Open(store.Config{Dir: dir, Now: now, SealDelay: time.Minute, BlockSize: 16 << 10, WALSize: 1 << 20})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	g := gen.New(uint64(first), 33)
	out := bufio.NewWriter(os.Stdout)
	var evs []detect.Event
	for n := first; ; n += 100 {
		evs = evs[:0]
		for i := range 100 {
			e := g.Event(now().Add(time.Duration(i) * 100 * time.Millisecond))
			e.ID = strconv.Itoa(n + i)
			evs = append(evs, e)
		}
		if err := s.WriteEvents(context.Background(), evs); err != nil {
			fmt.Println("write:", err)
			os.Exit(2)
		}
		fmt.Fprintf(out, "ack %d\n", n+100)
		out.Flush()
		batch.Add(1)
	}
}

// TestCrashKill9 kills a writing child process with SIGKILL at different
// points, reopens the store and checks that every acknowledged event is
// readable exactly once and that the chain verifies.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	acked := 0
	for round, target := range []int{20_000, 35_000, 50_000} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "STORE_CRASH_DIR="+dir, "STORE_CRASH_FIRST="+strconv.Itoa(acked))
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(stdout)
		got := acked
		for sc.Scan() {
			line := sc.Text()
			n, ok := strings.CutPrefix(line, "ack ")
			require.True(t, ok, "child: %s", line)
			got, _ = strconv.Atoi(n)
			if got >= acked+target {
				break
			}
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		require.Greater(t, got, acked, "round %d: child acknowledged nothing", round)
		acked = got

		// Reopen (real clock: every fake day is long over, so all seal).
		s, err := store.Open(store.Config{Dir: dir, SealDelay: time.Minute})
		require.NoError(t, err)
		seen := make(map[int]int)
		require.NoError(t, s.Query(context.Background(), store.Filter{}, func(e detect.Event) error {
			id, err := strconv.Atoi(e.ID)
			if err != nil {
				return err
			}
			seen[id]++
			return nil
		}))
		missing, dup := 0, 0
		for id := range acked {
			switch seen[id] {
			case 0:
				missing++
			case 1:
			default:
				dup++
			}
		}
		assert.Zero(t, missing, "round %d: acknowledged events lost", round)
		assert.Zero(t, dup, "round %d: events duplicated", round)
		rep, err := s.Verify(context.Background())
		require.NoError(t, err)
		assert.Positive(t, rep.Segments)
		require.NoError(t, s.Close())
		// The next child continues after the events this one may have
		// written unacknowledged.
		for id := range seen {
			acked = max(acked, id+1)
		}
		acked = (acked + 99) / 100 * 100
	}
}
