package dnsres_test

import (
	"net"
	"net/netip"
)

func dialFrom(src string, dst netip.AddrPort) (*net.UDPConn, error) {
	return net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, net.UDPAddrFromAddrPort(dst))
}

func dialTCPFrom(src string, dst netip.AddrPort) (*net.TCPConn, error) {
	return net.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP(src)}, net.TCPAddrFromAddrPort(dst))
}
