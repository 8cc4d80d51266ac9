package tenant_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/tenant"
)

func TestEgressFor(t *testing.T) {
	tn := &tenant.Tenant{ID: "a", EgressAddr: []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:192.0.2.1")}}
	e, ok := tn.EgressFor(netip.MustParseAddr("198.51.100.7"))
	assert.True(t, ok)
	assert.Equal(t, "192.0.2.1", e.String())
	e, ok = tn.EgressFor(netip.MustParseAddr("2001:db8:1::9"))
	assert.True(t, ok)
	assert.Equal(t, "2001:db8::1", e.String())
	v4only := &tenant.Tenant{ID: "b", EgressAddr: []netip.Addr{netip.MustParseAddr("192.0.2.2")}}
	_, ok = v4only.EgressFor(netip.MustParseAddr("2001:db8::2"))
	assert.False(t, ok)
	e, ok = (&tenant.Tenant{ID: "c"}).EgressFor(netip.MustParseAddr("192.0.2.3"))
	assert.True(t, ok)
	assert.False(t, e.IsValid(), "no egress: the kernel chooses")
}

// TestDialEgress connects to a loopback listener from the tenant's egress
// address and checks the source the listener sees.
func TestDialEgress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	seen := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			seen <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()
	tn := &tenant.Tenant{ID: "tsu", EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.1.254")}}
	c, err := tenant.DialEgress(context.Background(), nil, tn, "tcp", ln.Addr().String())
	require.NoError(t, err)
	c.Close()
	assert.Equal(t, "127.0.1.254", <-seen)

	_, port, _ := net.SplitHostPort(ln.Addr().String())
	c, err = tenant.DialEgress(context.Background(), nil, tn, "tcp", net.JoinHostPort("localhost", port))
	require.NoError(t, err, "a host name is resolved first")
	c.Close()
	assert.Equal(t, "127.0.1.254", <-seen)

	c, err = tenant.DialEgress(context.Background(), nil, nil, "tcp", ln.Addr().String())
	require.NoError(t, err)
	c.Close()
	assert.Equal(t, "127.0.0.1", <-seen)

	v6 := &tenant.Tenant{ID: "v6", EgressAddr: []netip.Addr{netip.MustParseAddr("::1")}}
	_, err = tenant.DialEgress(context.Background(), nil, v6, "tcp", ln.Addr().String())
	require.Error(t, err)
	assert.True(t, errors.Is(err, tenant.ErrNoEgress), err)
	_, err = tenant.DialEgress(context.Background(), nil, tn, "tcp", "127.0.0.1")
	assert.ErrorContains(t, err, "missing port")
}
