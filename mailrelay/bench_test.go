package mailrelay_test

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jichitai/seccloud/mailrelay"
)

// BenchmarkRelay measures end to end relaying over loopback: SMTP in,
// queue (fsync off here: the CPU path; the disk path is measured by
// bench/mail/run.sh), SMTP out to a sink.
func BenchmarkRelay(b *testing.B) {
	f := newFixture(b, func(c *mailrelay.Config) {
		c.Queue.NoSync = true
		c.Sink = nil
	})
	body := "From: <x@internet.example>\r\nSubject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 128)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		cl := &client{t: b, c: c}
		cl.r = newReader(c)
		cl.read()
		cl.cmd("EHLO bench.example")
		for pb.Next() {
			n.Add(1)
			cl.write("MAIL FROM:<x@internet.example>\r\nRCPT TO:<u@a.example.jp>\r\nDATA\r\n")
			cl.read()
			cl.read()
			if code, text := cl.read(); code != 354 {
				b.Error(text)
				return
			}
			cl.write(body + ".\r\n")
			if code, text := cl.read(); code != 250 {
				b.Error(text)
				return
			}
		}
	})
	b.StopTimer()
	f.sinkA.Wait(waitCtx(b), int(n.Load()))
	if got := len(f.sinkA.Messages()); got != int(n.Load()) {
		b.Fatal(fmt.Sprintf("delivered %d of %d", got, n.Load()))
	}
}
