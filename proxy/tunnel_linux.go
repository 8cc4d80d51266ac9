package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jichitai/seccloud/ratelimit"
	"github.com/jichitai/seccloud/tenant"
)

// An idle CONNECT tunnel costs no goroutine and no buffer: both sockets
// sit in one epoll set per Server (EPOLLONESHOT), and a goroutine with a
// pooled buffer exists only while a direction has data to move. One
// goroutine waits on the set and, every tick, sweeps the tunnels for the
// shared idle clock (no timer per tunnel). This is what lets 60,000 idle
// tunnels fit in a few hundred megabytes: what is left per tunnel is the
// two sockets' runtime state, the client connection's struct and the
// tunnel's own (see README, "Idle CONNECT tunnels").

// tunnelLoop is a Server's epoll set of idle tunnels.
type tunnelLoop struct {
	s            *Server
	epfd         int
	wakeR, wakeW int // pipe that stops run
	tick         time.Duration

	mu     sync.Mutex
	dirs   map[uint64]*tunDir // epoll data → direction
	tuns   map[*tunnel]struct{}
	nextID uint64
	closed bool
	done   chan struct{} // closed when run returns
}

// tunnel is one detached CONNECT tunnel. d[0] carries client → origin
// (uploads), d[1] origin → client (downloads).
type tunnel struct {
	loop *tunnelLoop
	cc   *clientConn
	up   net.Conn // as dialed (maybe shaped); closed at the end
	last atomic.Int64

	mu       sync.Mutex
	busy     int // directions being copied right now
	ended    int // directions that saw a clean EOF
	failed   bool
	finished bool
	d        [2]tunDir
}

// tunDir is one direction of a tunnel.
type tunDir struct {
	t        *tunnel
	id       uint64
	src, dst *net.TCPConn
	rc       syscall.RawConn // src's
	budget   ratelimit.Budget
	n        atomic.Int64 // bytes moved
	done     bool         // clean EOF seen, dst half-closed
	cancel   context.CancelFunc
}

func newTunnelLoop(s *Server) (*tunnelLoop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("proxy: epoll_create1: %w", err)
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("proxy: pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN} // data 0: the wake pipe
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, fmt.Errorf("proxy: epoll_ctl: %w", err)
	}
	l := &tunnelLoop{s: s, epfd: epfd, wakeR: p[0], wakeW: p[1],
		tick: min(max(s.cfg.TunnelIdleTimeout/10, 5*time.Millisecond), time.Second),
		dirs: make(map[uint64]*tunDir), tuns: make(map[*tunnel]struct{}),
		nextID: 1, done: make(chan struct{})}
	go l.run()
	return l, nil
}

// tunnels returns the Server's loop, starting it on first use; nil when
// epoll is unavailable (tunnels then use two goroutines) or the Server is
// stopping.
func (s *Server) tunnels() *tunnelLoop {
	s.tunMu.Lock()
	defer s.tunMu.Unlock()
	if s.tunLoop == nil && !s.tunFailed && !s.shutdown.Load() {
		l, err := newTunnelLoop(s)
		if err != nil {
			s.tunFailed = true
			s.log.Warn("proxy: no epoll for idle tunnels; each tunnel keeps two goroutines", "err", err)
			return nil
		}
		s.tunLoop = l
	}
	return s.tunLoop
}

// stopTunnels stops the loop once no tunnel is left (after the
// connections' WaitGroup).
func (s *Server) stopTunnels() {
	s.tunMu.Lock()
	l := s.tunLoop
	s.tunLoop = nil
	s.tunFailed = true // no restart after Close
	s.tunMu.Unlock()
	if l == nil {
		return
	}
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	_, _ = syscall.Write(l.wakeW, []byte{1})
	<-l.done
	syscall.Close(l.epfd)
	syscall.Close(l.wakeR)
	syscall.Close(l.wakeW)
}

func (l *tunnelLoop) run() {
	defer close(l.done)
	events := make([]syscall.EpollEvent, 128)
	next := time.Now().Add(l.tick)
	for {
		ms := int(time.Until(next) / time.Millisecond)
		n, err := syscall.EpollWait(l.epfd, events, max(ms, 0))
		if err != nil && !errors.Is(err, syscall.EINTR) {
			l.s.log.Error("proxy: epoll_wait failed; idle tunnels stop", "err", err)
			return
		}
		for _, ev := range events[:max(n, 0)] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == 0 {
				return // woken by stopTunnels
			}
			l.dispatch(id)
		}
		if !time.Now().Before(next) {
			l.sweep()
			next = time.Now().Add(l.tick)
		}
	}
}

// dispatch starts a copy for a direction whose source became readable.
func (l *tunnelLoop) dispatch(id uint64) {
	l.mu.Lock()
	d := l.dirs[id]
	l.mu.Unlock()
	if d == nil {
		return // a tunnel that just ended
	}
	t := d.t
	t.mu.Lock()
	if t.failed || t.finished || d.done {
		t.mu.Unlock()
		return
	}
	t.busy++
	t.mu.Unlock()
	go t.copy(d)
}

// sweep aborts the tunnels idle for TunnelIdleTimeout: the shared idle
// clock of both directions.
func (l *tunnelLoop) sweep() {
	idle := int64(l.s.cfg.TunnelIdleTimeout)
	now := l.s.now().UnixNano()
	var dead []*tunnel
	l.mu.Lock()
	for t := range l.tuns {
		if now-t.last.Load() >= idle {
			dead = append(dead, t)
		}
	}
	l.mu.Unlock()
	for _, t := range dead {
		t.abort()
	}
}

// arm (re)enables one readiness report for d's source.
func (l *tunnelLoop) arm(d *tunDir, op int) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLONESHOT,
		Fd: int32(uint32(d.id)), Pad: int32(uint32(d.id >> 32))}
	var cerr error
	// Control holds a reference on the descriptor, so a tunnel closed
	// meanwhile fails here instead of touching a reused fd number.
	if err := d.rc.Control(func(fd uintptr) { cerr = syscall.EpollCtl(l.epfd, op, int(fd), &ev) }); err != nil {
		return err
	}
	return cerr
}

// detachTunnel hands an established tunnel to the Server's loop: the
// client connection's goroutine returns, and the tunnel ends (event,
// slot, tracking) on its own. It reports false, changing nothing, when
// the sockets are not plain TCP or there is no loop; the caller then
// copies with two goroutines.
func (s *Server) detachTunnel(cc *clientConn, up net.Conn, t *tenant.Tenant) bool {
	ct, ok := cc.cnt.Conn.(*net.TCPConn)
	if !ok {
		return false
	}
	raw := up
	var upB, downB ratelimit.Budget
	if sc, ok := up.(*ratelimit.Conn); ok {
		raw = sc.Conn
		upB, downB = s.shapers.budgets(t)
	}
	ut, ok := raw.(*net.TCPConn)
	if !ok {
		return false
	}
	crc, err1 := ct.SyscallConn()
	urc, err2 := ut.SyscallConn()
	if err1 != nil || err2 != nil {
		return false
	}
	l := s.tunnels()
	if l == nil {
		return false
	}
	tn := &tunnel{loop: l, cc: cc, up: up}
	tn.last.Store(s.now().UnixNano())
	tn.d[0] = tunDir{t: tn, src: ct, dst: ut, rc: crc, budget: upB}
	tn.d[1] = tunDir{t: tn, src: ut, dst: ct, rc: urc, budget: downB}
	_ = ct.SetDeadline(time.Time{})
	_ = ut.SetDeadline(time.Time{})
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	for i := range tn.d {
		tn.d[i].id = l.nextID
		l.dirs[l.nextID] = &tn.d[i]
		l.nextID++
	}
	l.tuns[tn] = struct{}{}
	l.mu.Unlock()
	cc.detached = true
	cc.mu.Lock()
	cc.tun = tn
	cc.mu.Unlock()
	for i := range tn.d {
		if err := l.arm(&tn.d[i], syscall.EPOLL_CTL_ADD); err != nil {
			s.log.Warn("proxy: epoll_ctl failed; tunnel closed", "err", err)
			tn.abort()
			break
		}
	}
	return true
}

var errDrained = errors.New("proxy: socket drained")

// rawRead reads what src has without waiting: errDrained when nothing,
// io.EOF at the end.
func rawRead(rc syscall.RawConn, p []byte) (int, error) {
	var n int
	var serr error
	err := rc.Read(func(fd uintptr) bool {
		for {
			n, serr = syscall.Read(int(fd), p)
			if serr != syscall.EINTR {
				return true // never wait in the runtime poller
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case serr == syscall.EAGAIN:
		return 0, errDrained
	case serr != nil:
		return 0, serr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// copy moves what d's source has to its destination, then re-arms it
// (drained), half-closes the destination (EOF) or aborts the tunnel.
func (t *tunnel) copy(d *tunDir) {
	s := t.loop.s
	bp := copyBufPool.Get().(*[]byte)
	buf := (*bp)[:16<<10]
	ctx := context.Background()
	if d.budget != nil {
		buf = buf[:min(len(buf), d.budget.Burst())]
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		t.mu.Lock()
		d.cancel = cancel
		if t.failed {
			cancel()
		}
		t.mu.Unlock()
	}
	var err error
	for {
		var n int
		n, err = rawRead(d.rc, buf)
		if n > 0 {
			d.n.Add(int64(n))
			now := s.now()
			t.last.Store(now.UnixNano())
			if d.budget != nil {
				if err = d.budget.WaitN(ctx, n); err != nil {
					break
				}
			}
			_ = d.dst.SetWriteDeadline(now.Add(s.cfg.TunnelIdleTimeout))
			if _, err = d.dst.Write(buf[:n]); err != nil {
				break
			}
			continue
		}
		break
	}
	copyBufPool.Put(bp)
	if err == io.EOF {
		_ = d.dst.CloseWrite() // the peer sees EOF; the other way carries on
	}
	t.mu.Lock()
	t.busy--
	d.cancel = nil
	fail := false
	switch {
	case err == io.EOF:
		d.done = true
		t.ended++
	case err != errDrained && !t.failed:
		t.failed, fail = true, true
		t.cancelWaits()
	}
	fin := !t.finished && t.busy == 0 && (t.failed || t.ended == len(t.d))
	if fin {
		t.finished = true
	}
	t.mu.Unlock()
	if fail {
		t.closeBoth()
	}
	if err == errDrained && !fin {
		if aerr := t.loop.arm(d, syscall.EPOLL_CTL_MOD); aerr != nil {
			t.abort() // closed meanwhile (then a no-op) or epoll trouble
		}
	}
	if fin {
		t.finish()
	}
}

// cancelWaits ends the bandwidth waits in flight. t.mu is held.
func (t *tunnel) cancelWaits() {
	for i := range t.d {
		if c := t.d[i].cancel; c != nil {
			c()
		}
	}
}

func (t *tunnel) closeBoth() {
	t.cc.cnt.Conn.Close()
	t.up.Close()
}

// abort ends the tunnel as a failure (reset, idle timeout, Close). It may
// be called with Server.mu held: the end runs on its own goroutine.
func (t *tunnel) abort() {
	t.mu.Lock()
	if t.failed || t.finished {
		t.mu.Unlock()
		return
	}
	t.failed = true
	t.cancelWaits()
	fin := t.busy == 0
	if fin {
		t.finished = true
	}
	t.mu.Unlock()
	t.closeBoth() // copies in flight fail and the last one finishes
	if fin {
		go t.finish()
	}
}

// finish emits the tunnel's event and ends the client connection.
func (t *tunnel) finish() {
	l := t.loop
	l.mu.Lock()
	for i := range t.d {
		delete(l.dirs, t.d[i].id)
	}
	delete(l.tuns, t)
	l.mu.Unlock()
	t.closeBoth()
	cc := t.cc
	s := cc.s
	ev := &cc.ev
	ev.Outcome = "success"
	if t.failed {
		ev.Outcome = "failure"
	}
	ev.Duration = s.now().Sub(cc.start)
	ev.BytesIn = cc.cnt.r + t.d[0].n.Load() - cc.in0
	ev.BytesOut = cc.cnt.w + t.d[1].n.Load() - cc.out0
	s.sink.Emit(*ev)
	cc.mu.Lock()
	cc.tun, cc.up = nil, nil
	cc.mu.Unlock()
	cc.end()
}
