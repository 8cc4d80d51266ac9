//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package dnsres

import "net"

// listenConfig returns a plain ListenConfig: without SO_REUSEPORT the
// server binds one UDP socket.
func listenConfig(bool) net.ListenConfig { return net.ListenConfig{} }
