package proxy

import "syscall"

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
