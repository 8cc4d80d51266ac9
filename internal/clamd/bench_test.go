package clamd_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/jichitai/seccloud/internal/clamd"
	"github.com/jichitai/seccloud/internal/clamd/clamdtest"
)

// BenchmarkScan: scans of a 64 KiB clean body against a real clamd (test
// database), sessions reused, as the proxy and the mail relay use it.
func BenchmarkScan(b *testing.B) {
	d := clamdtest.Start(b, clamdtest.Options{})
	for _, tc := range []struct {
		name string
		addr string
	}{{"unix", d.Socket}, {"tcp", d.Addr}} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := clamd.New(clamd.Config{Address: tc.addr})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			body := bytes.Repeat([]byte("0123456789abcdef"), 4096)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := c.ScanBytes(context.Background(), body)
					if err != nil || res.Status != clamd.Clean {
						b.Fatal(res, err)
					}
				}
			})
		})
	}
}
