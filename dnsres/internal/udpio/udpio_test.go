package udpio_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/dnsres/internal/udpio"
)

func TestBatchEcho(t *testing.T) {
	for _, network := range []struct{ net, addr string }{{"udp4", "127.0.0.1:0"}, {"udp6", "[::1]:0"}} {
		t.Run(network.net, func(t *testing.T) {
			pc, err := net.ListenPacket(network.net, network.addr)
			if err != nil {
				t.Skip(err)
			}
			defer pc.Close()
			u, err := udpio.New(pc.(*net.UDPConn), 4, 512)
			require.NoError(t, err)
			c, err := net.Dial(network.net, pc.LocalAddr().String())
			require.NoError(t, err)
			defer c.Close()
			for i := 0; i < 6; i++ {
				_, err := c.Write([]byte{byte(i), 'x'})
				require.NoError(t, err)
			}
			got := 0
			for got < 6 {
				n, err := u.ReadBatch()
				require.NoError(t, err)
				for i := 0; i < n; i++ {
					b, from := u.Packet(i)
					assert.Equal(t, c.LocalAddr().(*net.UDPAddr).AddrPort().Port(), from.Port())
					require.NoError(t, u.Queue(append([]byte("re:"), b...), from))
				}
				require.NoError(t, u.Flush())
				got += n
			}
			buf := make([]byte, 64)
			for i := 0; i < 6; i++ {
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, err := c.Read(buf)
				require.NoError(t, err)
				assert.Equal(t, []byte{'r', 'e', ':', byte(i), 'x'}, buf[:n])
			}
		})
	}
}
