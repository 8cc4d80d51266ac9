package ingest_test

import (
	"testing"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/ingest"
)

func BenchmarkParseEVE(b *testing.B) {
	line := []byte(eveAlert)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := ingest.ParseEVE(line, now, ingest.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSyslog(b *testing.B) {
	msg := []byte(`<134>1 2026-11-02T09:59:58.5+09:00 fw1 fortigate - traffic [meta@32473 dev="fw1"] srcip=198.51.100.7 srcport=5555 dstip=127.0.1.20 dstport=22 action=deny policyid=17`)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := ingest.ParseSyslog(msg, now, ingest.SyslogOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

var _ detect.Sink = (*collector)(nil)
