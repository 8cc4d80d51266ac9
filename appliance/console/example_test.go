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

// Requests keep inquiries and settings-change requests on disk; files
// are stored under numbers and their names checked with CleanFileName.
func ExampleRequests() {
	dir, _ := os.MkdirTemp("", "requests-example")
	defer os.RemoveAll(dir)
	rs, _ := console.OpenRequests(console.RequestsConfig{Dir: dir})
	r, _ := rs.Create(console.NewRequest{Tenant: "aoba", Kind: console.KindChange, Subject: "WAF の除外設定", By: "aoba-admin", Side: "tenant"})
	r, _ = rs.Update(r.ID, "soc", "operator", "承知しました", console.StatusInProgress,
		[]console.Upload{{Name: "手順書.pdf", Body: strings.NewReader("%PDF-1.4")}}, 10<<20)
	fmt.Println(r.Status, len(r.Comments), r.Attachments[0].Name, r.Attachments[0].Size)
	_, err := console.CleanFileName("../../etc/passwd")
	fmt.Println(err)
	// Output:
	// in_progress 1 手順書.pdf 8
	// console: unacceptable file name: contains a path
}
