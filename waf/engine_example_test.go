package waf_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/jichitai/seccloud/waf"
)

// The default engine on its own: one CRS instance, a detection-only site
// and a site with an exclusion.
func ExampleNewCRSEngine() {
	e, err := waf.NewCRSEngine(waf.CRSConfig{
		Sites: map[string]waf.SiteRules{
			"bousai.city.example.jp": {DetectOnly: true},
			"www.city.example.jp":    {Exclusions: []waf.Exclusion{{RuleID: 942100, Target: "ARGS:q"}}},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	h := http.Header{"User-Agent": {"Mozilla/5.0"}, "Accept": {"*/*"}}
	for _, site := range []string{"other.example.jp", "bousai.city.example.jp"} {
		d, _ := e.Inspect(context.Background(), &waf.Request{Site: site, Method: "GET",
			URI: "/?id=1%27%20OR%20%271%27%3D%271", Proto: "HTTP/1.1", Host: site, Header: h})
		var ids []int
		for _, m := range d.Matches {
			ids = append(ids, m.ID)
		}
		fmt.Println(site, d.Action, slices.Contains(ids, 942100))
	}
	d, _ := e.Inspect(context.Background(), &waf.Request{Site: "www.city.example.jp", Method: "GET",
		URI: "/search?q=%E9%98%B2%E7%81%BD", Proto: "HTTP/1.1", Host: "www.city.example.jp", Header: h})
	fmt.Println("benign", d.Action, len(d.Matches))
	// Output:
	// other.example.jp block true
	// bousai.city.example.jp detect true
	// benign pass 0
}
