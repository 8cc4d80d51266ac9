package ingest_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/ingest"
)

func Example() {
	in, _ := ingest.New(ingest.Config{
		Sink: detect.SinkFunc(func(e detect.Event) {
			fmt.Println(e.Module, e.Kind, e.Client.Addr(), "→", e.Dest, e.Verdict.Action, e.Verdict.Rule)
		}),
		Now: func() time.Time { return time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC) },
	})
	eve := `{"timestamp":"2026-11-02T10:00:00.000000+0900","event_type":"alert","src_ip":"203.0.113.9","src_port":4000,` +
		`"dest_ip":"192.0.2.10","dest_port":80,"proto":"TCP","alert":{"action":"blocked","signature_id":2024364,"signature":"ET SCAN Nikto","severity":1}}`
	_ = in.ReadEVE(strings.NewReader(eve + "\n{not json}\n"))
	in.Syslog([]byte(`<132>1 2026-11-02T09:59:00+09:00 fw1 fw - - - srcip=198.51.100.7 dstip=192.0.2.20 dstport=22 action=deny policyid=7`))
	in.Syslog([]byte("<14>1 2001-01-01T00:00:00Z old - - - - replayed"))
	fmt.Println(in.Stats())
	// Output:
	// ids alert 203.0.113.9 → 192.0.2.10:80 block suricata-2024364
	// firewall  198.51.100.7 → 192.0.2.20:22 block fw-7
	// {2 map[malformed:1 time:1]}
}
