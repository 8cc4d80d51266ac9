//go:build linux || darwin || freebsd || netbsd || openbsd

package dnsres

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenConfig returns a ListenConfig that sets SO_REUSEPORT when several
// sockets share one address.
func listenConfig(reuse bool) net.ListenConfig {
	if !reuse {
		return net.ListenConfig{}
	}
	return net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
}
