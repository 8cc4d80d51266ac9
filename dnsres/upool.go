package dnsres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// upool is a pool of pre-opened UDP sockets for upstream queries, each
// bound to its own kernel-chosen (random) source port, with one reader
// goroutine matching replies to waiting queries by ID, source address
// and question. It saves the socket/connect/close of a fresh socket per
// query. A socket is replaced by a new one (a new port) after
// upoolUses queries, so the ports in use keep changing.
type upool struct {
	socks   []atomic.Pointer[usock]
	linger  time.Duration // how long a retired socket still reads replies
	maxUses int64         // queries per socket before it is replaced
	mu      sync.Mutex    // serialises replacement
	retired []*usock      // replaced sockets, closed after linger (or by close)
	closed  atomic.Bool
	wg      sync.WaitGroup
}

const upoolUses = 2000

type usock struct {
	c       *net.UDPConn
	uses    atomic.Int64
	mu      sync.Mutex
	pending map[uint16]*uwait
}

type uwait struct {
	server netip.AddrPort
	query  []byte
	ch     chan []byte
}

var uwaits = sync.Pool{New: func() any { return &uwait{ch: make(chan []byte, 1)} }}

func newUpool(n int, linger time.Duration) (*upool, error) {
	p := &upool{socks: make([]atomic.Pointer[usock], n), linger: linger, maxUses: upoolUses}
	for i := range p.socks {
		s, err := p.open()
		if err != nil {
			p.close()
			return nil, err
		}
		p.socks[i].Store(s)
	}
	return p, nil
}

func (p *upool) open() (*usock, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		return nil, fmt.Errorf("dnsres: upstream socket: %w", err)
	}
	s := &usock{c: c, pending: map[uint16]*uwait{}}
	p.wg.Add(1)
	go p.read(s)
	return s, nil
}

func (p *upool) read(s *usock) {
	defer p.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := s.c.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		if n < 12 {
			continue
		}
		id := uint16(buf[0])<<8 | uint16(buf[1])
		s.mu.Lock()
		w := s.pending[id]
		if w != nil && w.server.Addr().Unmap() == from.Addr().Unmap() && w.server.Port() == from.Port() && matchReply(buf[:n], w.query) {
			delete(s.pending, id)
			w.ch <- append([]byte(nil), buf[:n]...)
		}
		s.mu.Unlock()
	}
}

// exchange sends query (whose ID it rewrites) to server and waits for the
// matching reply until deadline or ctx ends.
func (p *upool) exchange(ctx context.Context, server netip.AddrPort, query []byte, deadline time.Time) ([]byte, error) {
	if p.closed.Load() {
		return nil, errors.New("dnsres: forwarder closed")
	}
	slot := &p.socks[rand.IntN(len(p.socks))]
	s := slot.Load()
	w := uwaits.Get().(*uwait)
	w.server, w.query = server, query
	s.mu.Lock()
	id := uint16(rand.Uint32())
	for s.pending[id] != nil {
		id++
	}
	query[0], query[1] = byte(id>>8), byte(id)
	s.pending[id] = w
	s.mu.Unlock()
	if s.uses.Add(1) == p.maxUses {
		p.replace(slot, s)
	}
	done := func() {
		s.mu.Lock()
		if s.pending[id] == w {
			delete(s.pending, id)
		}
		s.mu.Unlock()
		select { // a reply delivered after the wait ended
		case <-w.ch:
		default:
		}
		w.query = nil
		uwaits.Put(w)
	}
	if _, err := s.c.WriteToUDPAddrPort(query, server); err != nil {
		done()
		return nil, fmt.Errorf("dnsres: upstream %s: %w", server, err)
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case b := <-w.ch:
		done()
		return b, nil
	case <-t.C:
		done()
		return nil, fmt.Errorf("%w: %s", ErrTimeout, server)
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}

// replace puts a fresh socket in slot and closes old after the linger
// time (its queries in flight can still get their replies).
func (p *upool) replace(slot *atomic.Pointer[usock], old *usock) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() || slot.Load() != old {
		return
	}
	s, err := p.open()
	if err != nil {
		return // keep the old one
	}
	slot.Store(s)
	p.retired = append(p.retired, old)
	time.AfterFunc(p.linger, func() {
		_ = old.c.Close()
		p.mu.Lock()
		for i, r := range p.retired {
			if r == old {
				p.retired = append(p.retired[:i], p.retired[i+1:]...)
				break
			}
		}
		p.mu.Unlock()
	})
}

func (p *upool) close() {
	p.mu.Lock()
	p.closed.Store(true)
	for i := range p.socks {
		if s := p.socks[i].Load(); s != nil {
			_ = s.c.Close()
		}
	}
	for _, s := range p.retired {
		_ = s.c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
