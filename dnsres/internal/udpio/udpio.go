// Package udpio reads and writes UDP datagrams in batches: recvmmsg and
// sendmmsg on Linux (one system call for many packets, no allocation),
// one packet per call elsewhere. A Conn is used by one goroutine.
package udpio

import "net/netip"

// Slots is the default batch size.
const Slots = 32

// Packet returns the i-th datagram of the last ReadBatch and its sender.
func (c *Conn) Packet(i int) ([]byte, netip.AddrPort) {
	return c.rbufs[i][:c.rlens[i]], c.raddrs[i]
}

// Queue adds b (copied) for to to the write batch, flushing it when full.
func (c *Conn) Queue(b []byte, to netip.AddrPort) error {
	if len(b) > len(c.wbufs[0]) {
		_, err := c.c.WriteToUDPAddrPort(b, to)
		return err
	}
	i := c.wn
	c.wlens[i] = copy(c.wbufs[i], b)
	c.waddrs[i] = to
	c.wn++
	if c.wn == len(c.wbufs) {
		return c.Flush()
	}
	return nil
}
