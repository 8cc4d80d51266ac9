package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jichitai/seccloud/appliance/config"
	"github.com/jichitai/seccloud/appliance/console"
	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/detect/report"
	"github.com/jichitai/seccloud/mailrelay"
)

// handler serves the console listener:
//
//	GET  /healthz    liveness: 200 while the process serves
//	GET  /readyz     readiness: 200 when every enabled component is up, else 503
//	GET  /metrics    Prometheus metrics
//	POST /-/reload   re-read the config file (loopback clients only)
//	GET  /api/incidents        incidents as JSON, in the order they opened (loopback clients only);
//	                           ?active=1 leaves out resolved and false positives
//	GET  /api/reports/monthly  ?month=YYYY-MM[&tenant=ID][&format=html|csv] the monthly report (loopback clients only)
//	POST /api/waf/purge        ?url=… or ?prefix=… purge the CDN cache (loopback clients only)
//	GET  /api/waf/egress       the addresses origins must allow (loopback clients only)
//	POST /api/mail/requeue     {"from": DIR} re-home another node's mail queue here (loopback clients only)
//	GET|POST <notify.ack_url path>  acknowledgement links of notifications (default /ack)
//	everything else           the web console and its JSON API (appliance/console)
func (a *App) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	mux.HandleFunc("POST /-/reload", a.reloadAPI)
	mux.HandleFunc("GET /api/incidents", a.incidentsAPI)
	mux.HandleFunc("GET /api/reports/monthly", a.reportAPI)
	mux.HandleFunc("POST /api/waf/purge", a.wafPurgeAPI) // waf.go
	mux.HandleFunc("GET /api/waf/egress", a.wafEgressAPI)
	mux.HandleFunc("POST /api/mail/requeue", a.mailRequeueAPI) // mailrequeue.go
	mux.Handle(a.events.det.ackPath, a.events.det.notifier.Handler())
	if a.web != nil {
		mux.Handle("/", a.web.Handler())
	}
	return mux
}

// consoleDir is where the console keeps its accounts and audit log.
func consoleDir(cfg *config.Config) string { return filepath.Join(cfg.Path(cfg.DataDir), "console") }

// openConsole opens the console's accounts (data_dir/console/accounts.json)
// and audit log (data_dir/console/audit.jsonl) and builds the web console
// over the tenant directory, the incident manager and the event store.
// Running the embedded demo with no account file yet, it creates the
// operator "operator" and the accounts the demo config declares, with
// random passwords written to the log once.
func (a *App) openConsole(cfg *config.Config) (*console.Audit, error) {
	accts, err := console.OpenAccounts(console.AccountsConfig{Path: filepath.Join(consoleDir(cfg), console.AccountsFile)})
	if err != nil {
		return nil, err
	}
	if accts.Len() == 0 {
		if a.opts.ConfigPath == "" {
			if err := a.bootstrapAccounts(cfg, accts); err != nil {
				return nil, err
			}
		} else {
			a.log.Warn("the console has no accounts: create one with `seccloud account add -config FILE -role operator -user NAME` (password on stdin)")
		}
	}
	audit, err := console.OpenAudit(filepath.Join(consoleDir(cfg), console.AuditFile))
	if err != nil {
		return nil, err
	}
	ccfg := console.Config{
		Accounts: accts, Audit: audit, Incidents: a.events.det.incidents, Tenants: a.live, Events: a.events.store,
		Reports: consoleReports{a}, Health: a.health,
		Quarantine: a.consoleQuarantine(cfg), Location: time.Local, Logger: a.log.With("component", "console"),
		Limiters: a.loginLimiters(),
	}
	if err := a.consoleExtras(cfg, &ccfg); err != nil { // consoleviews.go
		audit.Close()
		return nil, err
	}
	a.web, err = console.New(ccfg)
	if err != nil {
		audit.Close()
		return nil, err
	}
	return audit, nil
}

// loginLimiters keeps the console's login buckets in Redis when
// cluster.redis is set (sharedlimits.go); nil keeps them in memory.
func (a *App) loginLimiters() console.LimiterFactory {
	if a.limits == nil {
		return nil
	}
	return a.limits.loginLimiters()
}

// bootstrapAccounts creates the demo's accounts with random passwords and
// logs them (the embedded demo only; never for a config file).
func (a *App) bootstrapAccounts(cfg *config.Config, accts *console.Accounts) error {
	add := func(user, tenantID string, role console.Role) error {
		pw, err := console.RandomPassword()
		if err != nil {
			return err
		}
		if err := accts.Add(user, tenantID, role, pw); err != nil {
			return err
		}
		a.log.Warn("demo console account created; the password is shown once", "user", user, "role", role,
			"tenant", tenantID, "password", pw)
		return nil
	}
	if err := add("operator", "", console.RoleOperator); err != nil {
		return err
	}
	for _, t := range cfg.Tenants {
		for _, acc := range t.Accounts {
			role := console.Role(acc.Role)
			if role == "" {
				role = console.RoleViewer
			}
			if err := add(acc.Name, t.ID, role); err != nil {
				return err
			}
		}
	}
	return nil
}

// consoleReports gives the console the monthly reports of detect/report,
// from the live rollups and incidents (the console has already scoped the
// tenant).
type consoleReports struct{ a *App }

func (r consoleReports) Monthly(w io.Writer, month, tenantID, format string) error {
	y, mo, err := report.ParseMonth(month)
	if err != nil {
		return err
	}
	det := r.a.events.det
	m, err := det.rollup.Month(y, mo)
	if err != nil {
		return err
	}
	snap := r.a.live.Load()
	rep := report.Build(m, report.Options{Tenant: tenantID, Incidents: det.incidents.List(incident.Filter{Tenant: tenantID}),
		TenantName: func(id string) string {
			if t, ok := snap.ByID(id); ok {
				return t.Name
			}
			return ""
		}})
	if format == "csv" {
		return report.WriteCSV(w, rep)
	}
	return report.WriteHTML(w, rep)
}

// consoleQuarantine gives the console the mail relay's quarantine when
// the mail function is on and built (nil otherwise: no quarantine pages).
func (a *App) consoleQuarantine(cfg *config.Config) console.QuarantineStore {
	if !cfg.Functions.Enabled("mail") || !Built("mail") {
		return nil
	}
	return quarantineStore{a}
}

// quarantineStore adapts the running relay's mailrelay.Quarantine to
// console.QuarantineStore (the console has already scoped the tenant).
type quarantineStore struct{ a *App }

var errNoQuarantine = errors.New("the mail relay is not running (no quarantine)")

func (q quarantineStore) store() (*mailrelay.Quarantine, error) {
	for _, f := range q.a.funcs {
		if f.name != "mail" {
			continue
		}
		f.mu.Lock()
		ms, ok := f.svc.(*mailService)
		f.mu.Unlock()
		if ok && ms.srv.Quarantine() != nil {
			return ms.srv.Quarantine(), nil
		}
	}
	return nil, errNoQuarantine
}

func quarantined(it mailrelay.QuarantineItem) console.QuarantinedMail {
	return console.QuarantinedMail{ID: it.ID, Tenant: it.Tenant, Direction: string(it.Direction), Time: it.Time,
		From: it.From, To: it.To, HeaderFrom: it.HeaderFrom, Subject: it.Subject, Size: it.Size, Reason: it.Reason,
		Rule: it.Rule, Detail: it.Detail, Released: it.Released}
}

func (q quarantineStore) List(tenantID string) ([]console.QuarantinedMail, error) {
	st, err := q.store()
	if err != nil {
		return nil, err
	}
	items := st.List(mailrelay.QuarantineFilter{Tenant: tenantID})
	out := make([]console.QuarantinedMail, 0, len(items))
	for _, it := range items {
		out = append(out, quarantined(it))
	}
	return out, nil
}

func (q quarantineStore) Get(id string) (console.QuarantinedMail, error) {
	st, err := q.store()
	if err != nil {
		return console.QuarantinedMail{}, err
	}
	v, err := st.View(id)
	if errors.Is(err, mailrelay.ErrNotFound) {
		return console.QuarantinedMail{}, console.ErrNotFound
	}
	if err != nil {
		return console.QuarantinedMail{}, err
	}
	m := quarantined(v.QuarantineItem)
	m.Text, m.Attachments = v.Text, v.Attachments
	for _, h := range v.Headers {
		m.Headers = append(m.Headers, console.MailHeader{Name: h.Name, Value: h.Value})
	}
	return m, nil
}

func (q quarantineStore) Release(ctx context.Context, id string) error {
	st, err := q.store()
	if err != nil {
		return err
	}
	_, err = st.Release(ctx, id)
	return err
}

func (q quarantineStore) Delete(id string) error {
	st, err := q.store()
	if err != nil {
		return err
	}
	return st.Delete(id)
}

// health is the dashboard's view of /readyz.
func (a *App) health() []console.Component {
	lines, _ := a.readiness()
	out := make([]console.Component, 0, len(lines))
	for _, l := range lines {
		name, status, _ := strings.Cut(l, " ")
		ok := status == "up" || strings.HasPrefix(status, "up ") || status == "off" || status == "not built"
		out = append(out, console.Component{Name: name, Status: status, OK: ok})
	}
	return out
}

// readiness lists every component with its status.
func (a *App) readiness() (lines []string, ready bool) {
	ready = true
	add := func(name, status string, ok bool) {
		lines = append(lines, name+" "+status)
		ready = ready && ok
	}
	if a.serving.Load() {
		add("console", "up", true)
	} else {
		add("console", "stopping", false)
	}
	if s := a.live.Load(); s != nil {
		add("tenants", fmt.Sprintf("up (%d)", len(s.Tenants())), true)
	} else {
		add("tenants", "no directory", false)
	}
	st, ok := a.events.ready()
	add("events", st, ok)
	st, ok = a.events.det.ready()
	add("incidents", st, ok)
	for _, f := range a.funcs {
		st, ok := f.status()
		add("function/"+f.name, st, ok)
	}
	return lines, ready
}

func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	lines, ready := a.readiness()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, strings.Join(lines, "\n"))
}

// reloadAPI is POST /-/reload. It answers with a ReloadResult as JSON:
// 200 when the new config is in force, 422 when it was refused (the running
// config stays), 409 when running the embedded demo, 403 for a client that
// is not on a loopback address.
func (a *App) reloadAPI(w http.ResponseWriter, r *http.Request) {
	if !fromLoopback(r) {
		http.Error(w, "reload is allowed from loopback addresses only", http.StatusForbidden)
		return
	}
	res, err := a.Reload("api")
	code := http.StatusOK
	switch {
	case err == ErrNoConfigFile:
		code = http.StatusConflict
	case err != nil:
		code = http.StatusUnprocessableEntity
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(res)
}

func fromLoopback(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// incidentsAPI is GET /api/incidents: the incidents (detect/incident's
// JSON form, timeline included) as a JSON array in the order they
// opened; 403 for a
// client that is not on a loopback address.
func (a *App) incidentsAPI(w http.ResponseWriter, r *http.Request) {
	if !fromLoopback(r) {
		http.Error(w, "the incident API is allowed from loopback addresses only", http.StatusForbidden)
		return
	}
	list := a.events.det.incidents.List(incident.Filter{Active: r.URL.Query().Get("active") == "1"})
	if list == nil {
		list = []incident.Incident{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

// accounts opens the console's account file of the configuration, with
// the config's tenants (nil when the config does not fully load).
func (ad *Admin) accounts() (*console.Accounts, *config.Config, error) {
	cfg, err := ad.config()
	if err != nil {
		return nil, nil, err
	}
	accts, err := console.OpenAccounts(console.AccountsConfig{Path: filepath.Join(consoleDir(cfg), console.AccountsFile)})
	return accts, cfg, err
}

// auditCLI records an account command in the console's audit log.
func auditCLI(cfg *config.Config, action, target, detail string) error {
	au, err := console.OpenAudit(filepath.Join(consoleDir(cfg), console.AuditFile))
	if err != nil {
		return err
	}
	who := "cli"
	if u := os.Getenv("USER"); u != "" {
		who = "cli:" + u
	}
	err = au.Append(console.AuditEntry{User: who, Remote: "local", Action: action, Target: target, Outcome: "success", Detail: detail})
	return errors.Join(err, au.Close())
}

// readPassword reads the password from the first line of in.
func readPassword(in io.Reader) (string, error) {
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("no password on standard input")
	}
	return pw, nil
}

// AccountAdd creates a console account; the password is the first line of
// in. A tenant account's tenant must exist in the configuration, and a
// name the configuration declares under tenants[].accounts must be added
// with that tenant and role. With withTOTP a TOTP secret is generated and
// its otpauth:// URI printed.
func (ad *Admin) AccountAdd(user, tenantID string, role console.Role, withTOTP bool, in io.Reader) error {
	accts, cfg, err := ad.accounts()
	if err != nil {
		return err
	}
	if tenantID != "" {
		known := false
		for _, t := range cfg.Tenants {
			known = known || t.ID == tenantID
		}
		if !known {
			return fmt.Errorf("tenant %q is not in the configuration", tenantID)
		}
	}
	for _, t := range cfg.Tenants {
		for _, acc := range t.Accounts {
			want := console.Role(acc.Role)
			if want == "" {
				want = console.RoleViewer
			}
			if acc.Name == user && (t.ID != tenantID || want != role) {
				return fmt.Errorf("user %q is declared in the configuration as %s of tenant %q", user, want, t.ID)
			}
		}
	}
	pw, err := readPassword(in)
	if err != nil {
		return err
	}
	if err := accts.Add(user, tenantID, role, pw); err != nil {
		return err
	}
	if err := auditCLI(cfg, "account.add", user, fmt.Sprintf("role %s tenant %q", role, tenantID)); err != nil {
		return err
	}
	fmt.Fprintf(ad.Out, "account %s added (%s%s)\n", user, role, map[bool]string{true: " of " + tenantID}[tenantID != ""])
	if withTOTP {
		return ad.AccountTOTP(user, true)
	}
	return nil
}

// AccountPassword replaces an account's password (first line of in).
func (ad *Admin) AccountPassword(user string, in io.Reader) error {
	accts, cfg, err := ad.accounts()
	if err != nil {
		return err
	}
	pw, err := readPassword(in)
	if err != nil {
		return err
	}
	if err := accts.SetPassword(user, pw); err != nil {
		return err
	}
	fmt.Fprintf(ad.Out, "password of %s changed\n", user)
	return auditCLI(cfg, "account.password", user, "")
}

// AccountTOTP sets a new TOTP secret (printing its otpauth:// URI) or
// removes it.
func (ad *Admin) AccountTOTP(user string, on bool) error {
	accts, cfg, err := ad.accounts()
	if err != nil {
		return err
	}
	secret := ""
	if on {
		if secret, err = console.NewTOTPSecret(); err != nil {
			return err
		}
	}
	if err := accts.SetTOTP(user, secret); err != nil {
		return err
	}
	if on {
		fmt.Fprintf(ad.Out, "TOTP secret of %s: %s\n%s\n", user, secret, console.TOTPURI("seccloud", user, secret))
	} else {
		fmt.Fprintf(ad.Out, "TOTP of %s removed\n", user)
	}
	return auditCLI(cfg, "account.totp", user, map[bool]string{true: "set", false: "removed"}[on])
}

// AccountRemove deletes an account.
func (ad *Admin) AccountRemove(user string) error {
	accts, cfg, err := ad.accounts()
	if err != nil {
		return err
	}
	if err := accts.Remove(user); err != nil {
		return err
	}
	fmt.Fprintf(ad.Out, "account %s removed\n", user)
	return auditCLI(cfg, "account.remove", user, "")
}

// AccountList prints the accounts.
func (ad *Admin) AccountList() error {
	accts, _, err := ad.accounts()
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(ad.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "USER\tROLE\tTENANT\tTOTP\tCREATED")
	for _, a := range accts.List() {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", a.User, a.Role, a.Tenant, a.TOTP, a.Created.Format(time.RFC3339))
	}
	return w.Flush()
}
