package proxy

import (
	"bufio"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
)

// App is a SaaS application that may leave through the breakout line.
type App struct {
	// ID names the app in tenant policies (tenant.Policy.Breakout) and
	// events: "m365", "google", "slack", "webex".
	ID string
	// Title is the display name.
	Title string
	// Domains are patterns as in Rules ("example.com" with subdomains,
	// "=host" one host).
	Domains []string
}

//go:embed apps/*.txt
var appFiles embed.FS

// DefaultApps returns the built-in SaaS definitions (files apps/*.txt in
// the package: m365, google, slack, webex).
func DefaultApps() []App {
	apps, err := LoadApps(appFiles, "apps")
	if err != nil {
		panic(err) // the embedded files are tested
	}
	return apps
}

// LoadApps reads every *.txt file of dir in fsys as one App named after
// the file (see ParseApp). Operators add apps by adding files.
func LoadApps(fsys fs.FS, dir string) ([]App, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.txt"))
	if err != nil {
		return nil, err
	}
	var apps []App
	for _, n := range names {
		f, err := fsys.Open(n)
		if err != nil {
			return nil, err
		}
		a, err := ParseApp(strings.TrimSuffix(path.Base(n), ".txt"), f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		apps = append(apps, a)
	}
	return apps, nil
}

// ParseApp reads an app definition: "#" comments, an optional
// "title <text>" line, then one domain pattern a line.
func ParseApp(id string, r io.Reader) (App, error) {
	a := App{ID: id, Title: id}
	if id == "" || strings.ContainsAny(id, " \t/") {
		return a, fmt.Errorf("proxy: bad app id %q", id)
	}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = strings.TrimSpace(s[:i])
		}
		if s == "" {
			continue
		}
		if t, ok := strings.CutPrefix(s, "title "); ok {
			a.Title = strings.TrimSpace(t)
			continue
		}
		var p patterns
		if strings.Contains(s, "://") || strings.ContainsAny(s, " \t") {
			return a, fmt.Errorf("proxy: app %s line %d: want a domain pattern, got %q", id, line, s)
		}
		if err := p.add1(s); err != nil {
			return a, fmt.Errorf("proxy: app %s line %d: %w", id, line, err)
		}
		a.Domains = append(a.Domains, s)
	}
	if err := sc.Err(); err != nil {
		return a, err
	}
	if len(a.Domains) == 0 {
		return a, fmt.Errorf("proxy: app %s has no domains", id)
	}
	return a, nil
}

// BreakoutConfig sends the SaaS apps a tenant's policy names
// (tenant.Policy.Breakout) over a separate line, still filtered and
// logged. A health check watches the line; while it is down the apps fall
// back to the main egress, and return when it recovers.
type BreakoutConfig struct {
	// Apps are the app definitions. Nil: DefaultApps().
	Apps []App
	// LocalAddrs are the breakout line's source addresses (one per address
	// family), used instead of the tenant's egress address.
	LocalAddrs []netip.Addr
	// Proxy, instead, is an upstream HTTP proxy ("host:port") on the
	// breakout line, reached with CONNECT (from LocalAddrs when set).
	Proxy string
	// HealthTarget is the "host:port" whose TCP connect (from LocalAddrs)
	// proves the line up. Empty: Proxy. Required without Proxy.
	HealthTarget string
	// HealthInterval is the time between checks. Zero: 10 s.
	HealthInterval time.Duration
	// HealthTimeout bounds one check. Zero: 3 s.
	HealthTimeout time.Duration
}

// Egress path labels in events ("egress" label).
const (
	PathMain     = "main"
	PathBreakout = "breakout"
	PathFallback = "fallback" // a breakout app sent over the main line
)

// breakout is the compiled BreakoutConfig and its health state.
type breakout struct {
	cfg     BreakoutConfig
	apps    []appMatcher
	healthy atomic.Bool
	checks  atomic.Int64
}

type appMatcher struct {
	id string
	p  patterns
}

func newBreakout(cfg BreakoutConfig) (*breakout, error) {
	if cfg.Apps == nil {
		cfg.Apps = DefaultApps()
	}
	if cfg.Proxy == "" && len(cfg.LocalAddrs) == 0 {
		return nil, errors.New("proxy: Config.Breakout needs LocalAddrs or Proxy")
	}
	if cfg.HealthTarget == "" {
		cfg.HealthTarget = cfg.Proxy
	}
	if cfg.HealthTarget == "" {
		return nil, errors.New("proxy: Config.Breakout.HealthTarget is required without Proxy")
	}
	for _, hp := range []string{cfg.Proxy, cfg.HealthTarget} {
		if hp == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(hp); err != nil {
			return nil, fmt.Errorf("proxy: Config.Breakout: %q: %w", hp, err)
		}
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 10 * time.Second
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = 3 * time.Second
	}
	b := &breakout{cfg: cfg}
	for _, a := range cfg.Apps {
		m := appMatcher{id: a.ID}
		if err := m.p.add(a.Domains, "Config.Breakout.Apps["+a.ID+"]"); err != nil {
			return nil, err
		}
		b.apps = append(b.apps, m)
	}
	return b, nil
}

// app returns the id of the app host belongs to, or "".
func (b *breakout) app(host string) string {
	r := Request{Host: host}
	for i := range b.apps {
		if _, ok := b.apps[i].p.match(&r); ok {
			return b.apps[i].id
		}
	}
	return ""
}

// local returns the breakout source address of dst's family.
func (b *breakout) local(dst netip.Addr) netip.Addr {
	for _, a := range b.cfg.LocalAddrs {
		if a.Unmap().Is4() == dst.Is4() {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// check probes the line once and records the result; it reports a change.
func (b *breakout) check(ctx context.Context) (up, changed bool) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.HealthTimeout)
	defer cancel()
	d := net.Dialer{}
	if ap, err := netip.ParseAddrPort(b.cfg.HealthTarget); err == nil {
		if l := b.local(ap.Addr().Unmap()); l.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(l, 0))
		}
	}
	c, err := d.DialContext(ctx, "tcp", b.cfg.HealthTarget)
	if err == nil {
		c.Close()
	}
	b.checks.Add(1)
	up = err == nil
	return up, b.healthy.Swap(up) != up
}

// route is how one request or tunnel leaves.
type route struct {
	app  string // SaaS app id, "" when none
	path string // PathMain, PathBreakout or PathFallback
}

// routeFor picks the egress path of tenant t's request to host.
func (s *Server) routeFor(t *tenant.Tenant, host string) route {
	b := s.brk
	if b == nil {
		return route{path: PathMain}
	}
	app := b.app(host)
	if app == "" || !slices.Contains(t.Policy.Breakout, app) {
		return route{app: app, path: PathMain}
	}
	if !b.healthy.Load() {
		return route{app: app, path: PathFallback}
	}
	return route{app: app, path: PathBreakout}
}

// healthLoop checks the breakout line until the server closes.
func (s *Server) healthLoop() {
	defer s.wg.Done()
	b := s.brk
	t := time.NewTicker(b.cfg.HealthInterval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-s.done; cancel() }()
	for {
		if up, changed := b.check(ctx); changed {
			if up {
				s.log.Info("proxy: breakout line up; breakout apps use it again", "target", b.cfg.HealthTarget)
			} else {
				s.log.Warn("proxy: breakout line DOWN; breakout apps fall back to the main egress", "target", b.cfg.HealthTarget)
			}
		}
		select {
		case <-s.done:
			return
		case <-t.C:
		}
	}
}

// BreakoutUp reports whether the breakout line passed its last health
// check (false without breakout).
func (s *Server) BreakoutUp() bool { return s.brk != nil && s.brk.healthy.Load() }

// dialBreakout connects to one of addrs over the breakout line: from its
// local address, or through its upstream proxy with CONNECT to the checked
// address (the upstream proxy does not resolve again).
func (s *Server) dialBreakout(ctx context.Context, addrs []netip.Addr, port uint16) (net.Conn, netip.AddrPort, netip.Addr, error) {
	b := s.brk
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	var errs []error
	for _, a := range addrs {
		dst := netip.AddrPortFrom(a, port)
		d := net.Dialer{Control: dialControl}
		target := dst.String()
		if b.cfg.Proxy != "" {
			target = b.cfg.Proxy
		}
		var local netip.Addr
		if ta, err := netip.ParseAddrPort(target); err == nil {
			local = b.local(ta.Addr().Unmap())
		} else if len(b.cfg.LocalAddrs) > 0 {
			local = b.cfg.LocalAddrs[0].Unmap()
		}
		if local.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))
		}
		c, err := d.DialContext(ctx, "tcp", target)
		if err == nil && b.cfg.Proxy != "" {
			err = connectVia(ctx, c, dst.String())
			if err != nil {
				c.Close()
			}
		}
		if err == nil {
			return c, dst, local, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, netip.AddrPort{}, netip.Addr{}, fmt.Errorf("proxy: breakout dial: %w", errors.Join(errs...))
}

// connectVia opens a CONNECT tunnel to target over c, an upstream proxy.
func connectVia(ctx context.Context, c net.Conn, target string) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
		defer c.SetDeadline(time.Time{})
	}
	if _, err := io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n"); err != nil {
		return err
	}
	// Read the reply byte by byte up to the blank line, so that no byte of
	// the tunnel is consumed.
	var head []byte
	var one [1]byte
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if _, err := c.Read(one[:]); err != nil {
			return fmt.Errorf("proxy: upstream CONNECT: %w", err)
		}
		head = append(head, one[0])
		if len(head) > 8192 {
			return errors.New("proxy: upstream CONNECT reply too long")
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(head))), nil)
	if err != nil {
		return fmt.Errorf("proxy: upstream CONNECT: %w", err)
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("proxy: upstream CONNECT: %s", resp.Status)
	}
	return nil
}

// dialRoute dials on the route's path; a breakout dial that fails falls
// back to the main egress at once (rt.path becomes PathFallback).
func (s *Server) dialRoute(ctx context.Context, t *tenant.Tenant, rt *route, addrs []netip.Addr, port uint16) (net.Conn, netip.AddrPort, netip.Addr, error) {
	if rt.path == PathBreakout {
		c, dst, eg, err := s.dialBreakout(ctx, addrs, port)
		if err == nil {
			return s.shape(t, c), dst, eg, nil
		}
		s.log.Warn("proxy: breakout dial failed; falling back to the main egress", "app", rt.app, "err", err)
		rt.path = PathFallback
	}
	c, dst, eg, err := s.dial(ctx, t, addrs, port)
	if err != nil {
		return nil, dst, eg, err
	}
	return s.shape(t, c), dst, eg, nil
}

// label records the app and the egress path in the event (nothing for
// ordinary traffic on the main line).
func (rt *route) label(ev *detect.Event) {
	if rt.app == "" && rt.path == PathMain {
		return
	}
	if rt.app != "" {
		ev.Labels = append(ev.Labels, detect.Label{Key: "app", Value: rt.app})
	}
	ev.Labels = append(ev.Labels, detect.Label{Key: "egress", Value: rt.path})
}
