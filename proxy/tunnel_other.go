//go:build !linux

package proxy

import (
	"net"

	"github.com/jichitai/seccloud/tenant"
)

// tunnelLoop exists on Linux only (epoll); elsewhere each tunnel keeps
// two goroutines.
type tunnelLoop struct{}

// tunnel is the detached tunnel of the Linux loop.
type tunnel struct{}

func (*tunnel) abort() {}

func (s *Server) detachTunnel(*clientConn, net.Conn, *tenant.Tenant) bool { return false }

func (s *Server) stopTunnels() {}
