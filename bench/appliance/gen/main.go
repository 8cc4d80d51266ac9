// Command gen writes a large appliance configuration for the startup and
// reload benchmarks of bench/appliance: N tenants (each a loopback /24),
// each with Z DNS zones (zone files of R records under data_dir/zones) and
// S public sites.
//
//	go run ./bench/appliance/gen -dir /tmp/big -tenants 100 -zones 10 -sites 2
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	dir := flag.String("dir", "", "output directory (config.yaml, data/zones/)")
	tenants := flag.Int("tenants", 100, "tenants")
	zones := flag.Int("zones", 10, "DNS zones per tenant")
	records := flag.Int("records", 20, "A records per zone")
	sites := flag.Int("sites", 2, "public sites per tenant")
	console := flag.String("console", "127.0.0.1:19090", "console listener")
	dnsAddr := flag.String("dns", "127.0.0.1:15356", "DNS listener")
	wafAddr := flag.String("waf", "127.0.0.1:18088", "WAF HTTP listener")
	flag.Parse()
	if *dir == "" || *tenants < 1 || *tenants > 250 {
		log.Fatal("gen: -dir is required and -tenants must be 1..250")
	}
	zdir := filepath.Join(*dir, "data", "zones")
	if err := os.MkdirAll(zdir, 0o750); err != nil {
		log.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\ndata_dir: data\nlog: {level: warn}\n")
	fmt.Fprintf(&b, "listen: {console: %q, dns: %q, waf_http: %q}\n", *console, *dnsAddr, *wafAddr)
	fmt.Fprintf(&b, "functions: {proxy: false, mail: false}\n")
	// The load comes from one address: response rate limiting would drop
	// most of it (that is what it is for), hiding what the reloads do.
	fmt.Fprintf(&b, "dns: {rrl: {response_rate: -1}}\n")
	fmt.Fprintf(&b, "tenants:\n")
	for t := 1; t <= *tenants; t++ {
		id := fmt.Sprintf("t%03d", t)
		fmt.Fprintf(&b, "  - id: %s\n    name: 団体%03d\n    networks: [127.0.%d.0/24]\n    egress_addr: 127.0.0.1\n", id, t, t)
		fmt.Fprintf(&b, "    contacts: [{name: 担当, email: soc@%s.example.jp}]\n", id)
		fmt.Fprintf(&b, "    zones:\n")
		for z := 0; z < *zones; z++ {
			name := fmt.Sprintf("z%02d.%s.example.jp", z, id)
			fmt.Fprintf(&b, "      - %s\n", name)
			var zb strings.Builder
			fmt.Fprintf(&zb, "$ORIGIN %s.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 127.0.%d.53\n", name, t)
			for r := 0; r < *records; r++ {
				fmt.Fprintf(&zb, "h%03d IN A 127.0.%d.%d\n", r, t, 1+r%250)
			}
			if err := os.WriteFile(filepath.Join(zdir, name+".zone"), []byte(zb.String()), 0o640); err != nil {
				log.Fatal(err)
			}
		}
		if *sites > 0 {
			fmt.Fprintf(&b, "    sites:\n")
			for s := 0; s < *sites; s++ {
				fmt.Fprintf(&b, "      - host: www%d.%s.example.jp\n        origins: [\"http://127.0.%d.80:8080\", \"http://127.0.%d.81:8080\"]\n", s, id, t, t)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(*dir, "config.yaml"), []byte(b.String()), 0o640); err != nil {
		log.Fatal(err)
	}
}
