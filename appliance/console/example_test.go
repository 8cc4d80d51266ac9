package console_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/jichitai/seccloud/appliance/console"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/tenant"
)

func Example() {
	dir, _ := os.MkdirTemp("", "console-example")
	defer os.RemoveAll(dir)
	accts, _ := console.OpenAccounts(console.AccountsConfig{Path: filepath.Join(dir, console.AccountsFile)})
	_ = accts.Add("soc", "", console.RoleOperator, "a long passphrase")
	audit, _ := console.OpenAudit(filepath.Join(dir, console.AuditFile))
	defer audit.Close()
	incs, _ := incident.Open(incident.Config{Dir: filepath.Join(dir, "incidents")})
	defer incs.Close()
	snap, _ := tenant.NewSnapshot(nil, tenant.Options{})

	c, err := console.New(console.Config{Accounts: accts, Audit: audit, Incidents: incs, Tenants: tenant.NewLive(snap)})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()

	res, _ := http.Post(srv.URL+"/api/v1/session", "application/json",
		strings.NewReader(`{"user":"soc","password":"a long passphrase"}`))
	res.Body.Close()
	fmt.Println(res.Status)
	// Output: 200 OK
}
