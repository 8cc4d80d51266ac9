package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
)

func Example() {
	dir, _ := os.MkdirTemp("", "events")
	defer os.RemoveAll(dir)

	st, err := store.Open(store.Config{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()

	at := time.Date(2025, 6, 10, 9, 30, 0, 0, time.UTC)
	err = st.WriteEvents(context.Background(), []detect.Event{
		{Time: at, Module: "dns", Tenant: "t01", Client: netip.MustParseAddrPort("127.0.1.5:53000"),
			DNS: detect.DNSInfo{QName: "example.jp.", QType: "A", RCode: "NOERROR"}},
		{Time: at.Add(time.Second), Module: "proxy", Tenant: "t02", URL: "https://example.jp/"},
		{Time: at.Add(2 * time.Second), Module: "dns", Tenant: "t01",
			DNS:     detect.DNSInfo{QName: "c2.example.", QType: "A"},
			Verdict: detect.Verdict{Action: detect.ActionSinkhole, Rule: "intel-domain"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	f := store.Filter{Tenant: "t01", Since: at.Truncate(24 * time.Hour), Until: at.Add(time.Hour)}
	err = st.Query(context.Background(), f, func(e detect.Event) error {
		fmt.Println(e.Time.Format(time.TimeOnly), e.Module, e.DNS.QName, e.Verdict.Action)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// 09:30:00 dns example.jp. none
	// 09:30:02 dns c2.example. sinkhole
}

func ExampleVerifyDir() {
	dir, _ := os.MkdirTemp("", "events")
	defer os.RemoveAll(dir)
	st, _ := store.Open(store.Config{Dir: dir})
	_ = st.Close()

	rep, err := store.VerifyDir(context.Background(), dir)
	fmt.Println(rep.OK(), rep.Segments, err)
	// Output: true 0 <nil>
}
