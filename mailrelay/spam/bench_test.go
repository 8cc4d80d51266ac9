package spam_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jichitai/seccloud/mailrelay/spam"
)

// BenchmarkScore scores a 10 KiB Japanese HTML message (classifier and
// rules; no DNSBL).
func BenchmarkScore(b *testing.B) {
	sc, err := spam.New(spam.Config{})
	if err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("<p>お世話になっております。来週の会議資料を送付します。Please see https://www.example.jp/a for details.</p>\r\n", 80)
	raw := []byte("From: a@example.jp\r\nSubject: =?UTF-8?B?5Lya6K2w6LOH5paZ?=\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n" + body)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sc.Score(context.Background(), spam.Input{Raw: raw})
		}
	})
}
