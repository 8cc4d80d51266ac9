//go:build linux

package udpio

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// Conn batches datagram I/O on one UDP socket.
type Conn struct {
	c  *net.UDPConn
	rc syscall.RawConn

	rh     []mmsghdr
	riov   []unix.Iovec
	rname  []unix.RawSockaddrInet6
	rbufs  [][]byte
	rlens  []int
	raddrs []netip.AddrPort

	wh     []mmsghdr
	wiov   []unix.Iovec
	wname  []unix.RawSockaddrInet6
	wbufs  [][]byte
	wlens  []int
	waddrs []netip.AddrPort
	wn     int
	v4     bool // AF_INET socket
}

// New returns a batching Conn over c with n slots of bufSize bytes each
// way.
func New(c *net.UDPConn, n, bufSize int) (*Conn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	u := &Conn{c: c, rc: rc,
		rh: make([]mmsghdr, n), riov: make([]unix.Iovec, n), rname: make([]unix.RawSockaddrInet6, n),
		rbufs: make([][]byte, n), rlens: make([]int, n), raddrs: make([]netip.AddrPort, n),
		wh: make([]mmsghdr, n), wiov: make([]unix.Iovec, n), wname: make([]unix.RawSockaddrInet6, n),
		wbufs: make([][]byte, n), wlens: make([]int, n), waddrs: make([]netip.AddrPort, n),
	}
	if la, ok := c.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil && !la.IP.Equal(net.IPv6zero) {
		u.v4 = true
	}
	for i := 0; i < n; i++ {
		u.rbufs[i] = make([]byte, bufSize)
		u.riov[i].Base = &u.rbufs[i][0]
		u.rh[i].hdr.Name = (*byte)(unsafe.Pointer(&u.rname[i]))
		u.rh[i].hdr.Iov = &u.riov[i]
		u.rh[i].hdr.SetIovlen(1)
		u.wbufs[i] = make([]byte, bufSize)
		u.wiov[i].Base = &u.wbufs[i][0]
		u.wh[i].hdr.Name = (*byte)(unsafe.Pointer(&u.wname[i]))
		u.wh[i].hdr.Iov = &u.wiov[i]
		u.wh[i].hdr.SetIovlen(1)
	}
	return u, nil
}

// ReadBatch waits for at least one datagram and reads as many as are
// queued, up to the number of slots. It returns how many were read.
func (c *Conn) ReadBatch() (int, error) {
	for i := range c.rh {
		c.rh[i].hdr.Namelen = unix.SizeofSockaddrInet6
		c.rh[i].hdr.Flags = 0
		c.riov[i].SetLen(len(c.rbufs[i]))
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.rh[0])), uintptr(len(c.rh)), 0, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		n, errno = int(r), e
		return true
	})
	runtime.KeepAlive(c)
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	for i := 0; i < n; i++ {
		c.rlens[i] = int(c.rh[i].n)
		c.raddrs[i] = decode(&c.rname[i])
	}
	return n, nil
}

func decode(sa *unix.RawSockaddrInet6) netip.AddrPort {
	p := (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(sa))
	port := binary.BigEndian.Uint16(p[2:4])
	switch sa.Family {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[4:8])), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
	}
	return netip.AddrPort{}
}

func (c *Conn) encode(i int, to netip.AddrPort) {
	sa := &c.wname[i]
	p := (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(sa))
	clear(p[:])
	a := to.Addr()
	if a.Is4() && c.v4 {
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16(p[2:4], to.Port())
		b := a.As4()
		copy(p[4:8], b[:])
		c.wh[i].hdr.Namelen = unix.SizeofSockaddrInet4
		return
	}
	sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16(p[2:4], to.Port())
	sa.Addr = a.As16()
	c.wh[i].hdr.Namelen = unix.SizeofSockaddrInet6
}

// Flush sends the queued datagrams. A datagram the kernel refuses is
// skipped; the first such error is returned.
func (c *Conn) Flush() error {
	n := c.wn
	if n == 0 {
		return nil
	}
	c.wn = 0
	for i := 0; i < n; i++ {
		c.encode(i, c.waddrs[i])
		c.wiov[i].SetLen(c.wlens[i])
	}
	off := 0
	var first error
	err := c.rc.Write(func(fd uintptr) bool {
		for off < n {
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&c.wh[off])), uintptr(n-off), 0, 0, 0)
			switch {
			case e == unix.EAGAIN:
				return false
			case e == unix.EINTR:
				continue
			case e != 0:
				if first == nil {
					first = e
				}
				off++ // skip the datagram that failed
				continue
			}
			off += int(r)
		}
		return true
	})
	runtime.KeepAlive(c)
	if err != nil {
		return err
	}
	return first
}
