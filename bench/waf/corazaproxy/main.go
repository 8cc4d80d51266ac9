// Command corazaproxy is the "plain Coraza + CRS" peer of bench/waf/run.sh:
// Coraza v3 with the OWASP CRS v4 embedded in coraza-coreruleset (the
// same rules as seccloud's engine), PL1, anomaly blocking, as a net/http
// middleware (coraza/v3/http) in front of httputil.ReverseProxy.
//
//	go run ./bench/waf/corazaproxy -listen 127.0.0.1:18182 -origin http://127.0.0.1:18180
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	txhttp "github.com/corazawaf/coraza/v3/http"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18182", "listen address")
	origin := flag.String("origin", "http://127.0.0.1:18180", "origin URL")
	flag.Parse()
	u, err := url.Parse(*origin)
	if err != nil {
		log.Fatal(err)
	}
	waf, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(`
Include @coraza.conf-recommended
SecRuleEngine On
SecResponseBodyAccess Off
SecAuditEngine Off
Include @crs-setup.conf.example
Include @owasp_crs/*.conf
`))
	if err != nil {
		log.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second}
	srv := &http.Server{Addr: *listen, Handler: txhttp.WrapHandler(waf, rp), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
