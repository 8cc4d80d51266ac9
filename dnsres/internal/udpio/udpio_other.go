//go:build !linux

package udpio

import (
	"net"
	"net/netip"
)

// Conn batches datagram I/O on one UDP socket (one datagram per system
// call on this system).
type Conn struct {
	c      *net.UDPConn
	rbufs  [][]byte
	rlens  []int
	raddrs []netip.AddrPort
	wbufs  [][]byte
	wlens  []int
	waddrs []netip.AddrPort
	wn     int
}

// New returns a Conn over c with n slots of bufSize bytes each way.
func New(c *net.UDPConn, n, bufSize int) (*Conn, error) {
	u := &Conn{c: c, rbufs: [][]byte{make([]byte, bufSize)}, rlens: make([]int, 1), raddrs: make([]netip.AddrPort, 1),
		wbufs: make([][]byte, n), wlens: make([]int, n), waddrs: make([]netip.AddrPort, n)}
	for i := range u.wbufs {
		u.wbufs[i] = make([]byte, bufSize)
	}
	return u, nil
}

// ReadBatch reads one datagram.
func (c *Conn) ReadBatch() (int, error) {
	n, a, err := c.c.ReadFromUDPAddrPort(c.rbufs[0])
	if err != nil {
		return 0, err
	}
	c.rlens[0], c.raddrs[0] = n, a
	return 1, nil
}

// Flush sends the queued datagrams.
func (c *Conn) Flush() error {
	var first error
	for i := 0; i < c.wn; i++ {
		if _, err := c.c.WriteToUDPAddrPort(c.wbufs[i][:c.wlens[i]], c.waddrs[i]); err != nil && first == nil {
			first = err
		}
	}
	c.wn = 0
	return first
}
