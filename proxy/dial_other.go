//go:build !linux

package proxy

import (
	"net"
	"syscall"
)

func dialControl(string, string, syscall.RawConn) error { return nil }

// waitReadable is a no-op here: tunnels read directly.
func waitReadable(net.Conn) (bool, error) { return false, nil }
