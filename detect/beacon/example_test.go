package beacon_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/beacon"
	"github.com/jichitai/seccloud/detect/rules"
)

func Example() {
	d := beacon.New(beacon.Config{Handler: rules.HandlerFunc(func(a *rules.Alert) {
		fmt.Println(a.Rule.ID, a.Tenant, a.Terminal, a.Group["destination"], a.Count)
	})})
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	for i := range 30 { // every 10 minutes, 420 bytes
		d.Process(&detect.Event{Time: start.Add(time.Duration(i) * 10 * time.Minute), Module: "proxy", Tenant: "tsu",
			Client: netip.MustParseAddrPort("127.0.1.5:40000"), DestDomain: "cdn-update.example.net", BytesOut: 420})
	}
	// Output:
	// seccloud-beacon tsu 127.0.1.5 cdn-update.example.net 20
}
