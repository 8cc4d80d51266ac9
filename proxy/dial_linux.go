package proxy

import (
	"net"
	"syscall"
)

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (Linux 4.2): with a fixed
// egress address, let connect(2) pick the source port per destination
// instead of bind(2) reserving one for all, so one egress address can hold
// far more than 28,000 upstream connections.
const ipBindAddressNoPort = 24

func dialControl(network, _ string, c syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return nil
	}
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	_ = serr // best effort: older kernels refuse the option; dialing still works
	return nil
}

// waitReadable blocks until c has data (or EOF, or an error) to read,
// honouring c's read deadline, without reading it: a peek of one byte that
// does not wait, and the runtime poller's wait when there is nothing. Idle
// tunnels wait here instead of inside Read, so they hold no buffer.
// ok is false when c offers no raw access (then the caller just reads).
func waitReadable(c net.Conn) (ok bool, err error) {
	sc, isSC := c.(syscall.Conn)
	if !isSC {
		return false, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, nil
	}
	var one [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, e := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return e != syscall.EAGAIN // data, EOF or an error: Read will tell
	})
	return true, err
}
