package ratelimit

import "time"

// stoppedTimer is a reusable timer whose channel is nil while unarmed.
type stoppedTimer struct {
	t *time.Timer
	c chan struct{}
}

func newStoppedTimer() *stoppedTimer {
	st := &stoppedTimer{c: make(chan struct{}, 1)}
	st.t = time.AfterFunc(time.Hour, func() {
		select {
		case st.c <- struct{}{}:
		default:
		}
	})
	st.t.Stop()
	return st
}

// after arms the timer for d nanoseconds (at least 0) and returns its
// channel. A tick left over from an earlier arming may arrive early; the
// callers re-check their state, so a spurious wake-up is harmless.
func (st *stoppedTimer) after(d int64) <-chan struct{} {
	if d < 0 {
		d = 0
	}
	st.t.Reset(time.Duration(d))
	return st.c
}

func (st *stoppedTimer) stop() { st.t.Stop() }
