package app

import (
	"context"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jichitai/seccloud/detect"
)

// healthInterval is how often watchHealth looks (a variable for tests).
var healthInterval = 5 * time.Second

// dependency is the state of something a function needs and does not own
// (clamd, an upstream resolver, the breakout line, NATS): the function
// degrades as configured while it is down.
type dependency struct {
	Name   string // e.g. "dns/upstream 127.0.0.1:53", "cluster/nats"
	Up     bool
	Detail string // why it is down, or what it is
}

// dependent is implemented by services that watch their dependencies.
type dependent interface {
	dependencies() []dependency
}

// componentState is one line of the health picture.
type componentState struct {
	Name, Status string
	OK           bool
}

// componentStates returns every component (as /readyz lists them) and every
// dependency of the running functions.
func (a *App) componentStates() []componentState {
	lines, _ := a.readiness()
	out := make([]componentState, 0, len(lines)+4)
	for _, l := range lines {
		name, status, _ := strings.Cut(l, " ")
		ok := status == "up" || strings.HasPrefix(status, "up ") || status == "off" || status == "not built"
		out = append(out, componentState{Name: name, Status: status, OK: ok})
	}
	for _, d := range a.dependencies() {
		st := "up"
		if !d.Up {
			st = "down"
		}
		if d.Detail != "" {
			st += " (" + d.Detail + ")"
		}
		out = append(out, componentState{Name: "dep/" + d.Name, Status: st, OK: d.Up})
	}
	return out
}

// dependencies collects the dependencies of the running functions and of
// the cluster stream.
func (a *App) dependencies() []dependency {
	var deps []dependency
	for _, f := range a.funcs {
		f.mu.Lock()
		svc := f.svc
		f.mu.Unlock()
		if d, ok := svc.(dependent); ok {
			deps = append(deps, d.dependencies()...)
		}
	}
	if a.limits != nil {
		deps = append(deps, a.limits.dependency())
	}
	if w := a.events.cluster.writer; w != nil {
		deps = append(deps, dependency{Name: "cluster/nats", Up: w.Connected(), Detail: a.cfg.Load().Cluster.NATS})
	}
	return deps
}

// watchHealth checks every component and dependency each interval until
// ctx is done. A component that goes down emits an alert event (and one
// that comes back an event), so the SOC sees an outage in the same place
// as an attack; seccloud_component_up shows the state to Prometheus.
func (a *App) watchHealth(ctx context.Context, every time.Duration) {
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "seccloud_component_up",
		Help: "1 when the component or dependency is up (or switched off), 0 when it is down."}, []string{"component"})
	if err := a.reg.Register(up); err != nil {
		a.log.Warn("component metric not registered", "err", err)
	}
	prev := map[string]bool{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, c := range a.componentStates() {
			v := 0.0
			if c.OK {
				v = 1
			}
			up.WithLabelValues(c.Name).Set(v)
			was, seen := prev[c.Name]
			prev[c.Name] = c.OK
			if (!seen && c.OK) || (seen && was == c.OK) {
				continue
			}
			e := detect.Event{Time: time.Now(), Module: "appliance", Dataset: "appliance.health", Kind: "event",
				Category: "host", Type: "change", Action: "component_up", Outcome: "success",
				Message: c.Name + " is back: " + c.Status,
				Labels:  []detect.Label{{Key: "component", Value: c.Name}}}
			if !c.OK {
				e.Kind, e.Action, e.Outcome = "alert", "component_down", "failure"
				e.Message = c.Name + " is down: " + c.Status
				a.log.Warn("component down", "component", c.Name, "status", c.Status)
			} else {
				a.log.Info("component back up", "component", c.Name, "status", c.Status)
			}
			a.events.emit(e)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pingTimeout bounds one dependency probe.
const pingTimeout = 2 * time.Second

// dependencies of the proxy: clamd (when scanning) and the breakout line
// (when configured).
func (p *proxyService) dependencies() []dependency {
	var deps []dependency
	if p.scanner != nil {
		ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		err := p.scanner.Ping(ctx)
		cancel()
		deps = append(deps, probe("proxy/clamd", err))
	}
	if p.breakout {
		up := p.srv.BreakoutUp()
		d := dependency{Name: "proxy/breakout", Up: up}
		if !up {
			d.Detail = "falling back to the main egress"
		}
		deps = append(deps, d)
	}
	return deps
}

// dependencies of the mail relay: clamd, when scanning.
func (m *mailService) dependencies() []dependency {
	if m.av == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	return []dependency{probe("mail/clamd", m.av.Ping(ctx))}
}

func probe(name string, err error) dependency {
	if err != nil {
		return dependency{Name: name, Detail: err.Error()}
	}
	return dependency{Name: name, Up: true}
}

// dependencies of the resolver: each forwarding upstream, asked for the
// root's NS records (any answer, whatever its rcode, counts as up).
func (d *dnsService) dependencies() []dependency {
	ups := d.a.cfg.Load().DNS.Upstreams
	deps := make([]dependency, 0, len(ups))
	for _, u := range ups {
		c := &dns.Client{Net: "udp", Timeout: pingTimeout}
		m := new(dns.Msg)
		m.SetQuestion(".", dns.TypeNS)
		_, _, err := c.Exchange(m, u)
		deps = append(deps, probe("dns/upstream "+u, err))
	}
	return deps
}
