package vuln_test

import (
	"fmt"
	"strings"

	"github.com/jichitai/seccloud/detect/vuln"
)

func Example() {
	inv, _ := vuln.ReadInventory(strings.NewReader("tenant,host,vendor,product,version\ntsu,www.city.tsu.example.jp,apache,http_server,2.4.50\n"), "assets.csv")
	feed, _ := vuln.ReadFeed(strings.NewReader(`{"vulnerabilities":[{"cve":{"id":"CVE-2021-42013","configurations":[{"nodes":[{"cpeMatch":[
		{"vulnerable":true,"criteria":"cpe:2.3:a:apache:http_server:*:*:*:*:*:*:*:*","versionStartIncluding":"2.4.49","versionEndIncluding":"2.4.50"}]}]}]}}]}`), "feed.json")
	db := vuln.New(inv, feed)
	fmt.Println(db.IsVulnerable("tsu", "www.city.tsu.example.jp"))
	fmt.Println(db.VulnEvidence("tsu", "www.city.tsu.example.jp"))
	fmt.Println(db.IsVulnerable("tsu", "other.example.jp"))
	// Output:
	// true true
	// [CVE-2021-42013 (http_server 2.4.50: apache:http_server 2.4.49 ≤ v ≤ 2.4.50)]
	// false false
}
