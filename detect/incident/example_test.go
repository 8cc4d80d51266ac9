package incident_test

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/rules"
)

func Example() {
	dir, _ := os.MkdirTemp("", "incidents")
	defer os.RemoveAll(dir)
	now := time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)
	m, err := incident.Open(incident.Config{Dir: dir, Now: func() time.Time { return now }})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	rs, _ := rules.Parse("waf.yml", strings.NewReader("id: waf-attack\ntitle: Web attack\ndetection: {s: {event.module: waf}, condition: s}\n"))
	set, _ := rules.Compile(rs)
	eng := rules.New(rules.Config{Rules: set, Handler: m})
	for i := range 1000 {
		ev := detect.Event{Time: now.Add(time.Duration(i) * time.Second), Module: "waf", Tenant: "tsu",
			Client: netip.MustParseAddrPort("203.0.113.9:5000"), Verdict: detect.Verdict{Action: detect.ActionBlock}}
		eng.Process(&ev)
	}
	for _, inc := range m.List(incident.Filter{}) {
		fmt.Println(inc.ID, inc.Tenant, inc.Terminal, inc.Rule, inc.Severity, inc.State, inc.Count)
		_ = m.SetState(inc.ID, incident.StateResolved, "soc", "scanner blocked; no action needed")
	}
	inc, _ := m.Get("INC-20261102-00001")
	fmt.Println(inc.State.Japanese())
	// Output:
	// INC-20261102-00001 tsu 203.0.113.9 waf-attack stopped open 1000
	// 対応完了
}
