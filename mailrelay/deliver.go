package mailrelay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/mailrelay/internal/spool"
)

// envelope is what the queue keeps beside a message's data.
type envelope struct {
	From     string    `json:"f"`
	To       []string  `json:"t"`
	Tenant   string    `json:"tn,omitempty"`
	Dir      Direction `json:"d"`
	Client   string    `json:"c,omitempty"`
	Helo     string    `json:"h,omitempty"`
	Body8    bool      `json:"b8,omitempty"`
	UTF8     bool      `json:"u8,omitempty"`
	Created  int64     `json:"ct"`
	Attempts int       `json:"a,omitempty"`
	MsgID    string    `json:"mid,omitempty"`
	Subject  string    `json:"s,omitempty"`
	Delayed  bool      `json:"dn,omitempty"` // a delay DSN was sent
}

func (e *envelope) encode() []byte {
	b, _ := json.Marshal(e)
	return b
}

func decodeEnvelope(b []byte) (*envelope, error) {
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("mailrelay: envelope: %w", err)
	}
	if len(e.To) == 0 {
		return nil, errors.New("mailrelay: envelope without recipients")
	}
	return &e, nil
}

// qmsg is a queued message in memory. data is nil when it must be read
// back from the spool.
type qmsg struct {
	id   string
	gen  uint32
	env  *envelope
	ref  spool.Ref
	data []byte
}

type deliverer struct {
	s   *Server
	cfg *DeliveryConfig

	mu      sync.Mutex
	cond    *sync.Cond
	list    []*qmsg
	stopped bool
	timers  map[*time.Timer]struct{}
	idle    map[string][]*clientConn
	active  map[*clientConn]struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newDeliverer(s *Server) *deliverer {
	d := &deliverer{s: s, cfg: &s.cfg.Delivery, timers: make(map[*time.Timer]struct{}),
		idle: make(map[string][]*clientConn), active: make(map[*clientConn]struct{})}
	d.cond = sync.NewCond(&d.mu)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d
}

func (d *deliverer) start() {
	for i := 0; i < d.cfg.Workers; i++ {
		d.wg.Add(1)
		go d.worker()
	}
}

func (d *deliverer) stop() {
	d.mu.Lock()
	d.stopped = true
	for t := range d.timers {
		t.Stop()
	}
	for c := range d.active {
		c.c.Close()
	}
	d.cond.Broadcast()
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	d.mu.Lock()
	for _, l := range d.idle {
		for _, c := range l {
			c.close()
		}
	}
	d.idle = nil
	d.mu.Unlock()
}

func (d *deliverer) enqueue(m *qmsg) {
	d.mu.Lock()
	if !d.stopped {
		d.list = append(d.list, m)
		d.cond.Signal()
	}
	d.mu.Unlock()
}

func (d *deliverer) later(m *qmsg, delay time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		d.mu.Lock()
		delete(d.timers, t)
		d.mu.Unlock()
		d.enqueue(m)
	})
	d.timers[t] = struct{}{}
}

func (d *deliverer) worker() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		for len(d.list) == 0 && !d.stopped {
			d.cond.Wait()
		}
		if d.stopped {
			d.mu.Unlock()
			return
		}
		m := d.list[0]
		d.list[0] = nil
		d.list = d.list[1:]
		d.mu.Unlock()
		d.process(m)
	}
}

// route is where a group of recipients goes.
type route struct {
	key    string // "tenant:<id>" or "domain:<name>"
	tenant string
	domain string
	rcpts  []int // indexes into env.To
}

func (d *deliverer) routes(env *envelope) []*route {
	var out []*route
	byKey := make(map[string]*route, 1)
	for i, r := range env.To {
		dom := domainOf(r)
		key, tn := "domain:"+dom, ""
		if t, ok := d.s.mailTenant(dom); ok {
			key, tn = "tenant:"+t.ID, t.ID
		} else if env.Dir == Inbound {
			// Accepted for a tenant that no longer owns the domain: never
			// send internet mail back out to the internet; hold it.
			key, tn = "gone:"+dom, "?"
		}
		rt := byKey[key]
		if rt == nil {
			rt = &route{key: key, tenant: tn, domain: dom}
			byKey[key] = rt
			out = append(out, rt)
		}
		rt.rcpts = append(rt.rcpts, i)
	}
	return out
}

// hosts returns the next hops of a route, in order, or a reply that fails
// its recipients.
func (d *deliverer) hosts(ctx context.Context, rt *route) ([]string, *reply) {
	if rt.tenant == "?" {
		return nil, &reply{code: 451, text: "4.3.0 domain " + rt.domain + " is no longer served by any tenant"}
	}
	if rt.tenant != "" {
		t, ok := d.s.mailTenant(rt.domain)
		if !ok || len(t.MailServers) == 0 {
			return nil, &reply{code: 451, text: "4.3.0 no mail server configured for tenant " + rt.tenant}
		}
		return t.MailServers, nil
	}
	if d.cfg.Smarthost != "" {
		return []string{d.cfg.Smarthost}, nil
	}
	mxs, err := d.cfg.Resolver.LookupMX(ctx, rt.domain)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return nil, &reply{code: 550, text: "5.1.2 domain " + rt.domain + " not found"}
		}
		return nil, &reply{code: 451, text: "4.4.3 MX lookup failed: " + sanitizeText(err.Error())}
	}
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
	var hs []string
	for _, mx := range mxs {
		h := strings.TrimSuffix(mx.Host, ".")
		if h == "" {
			return nil, &reply{code: 556, text: "5.1.10 domain " + rt.domain + " accepts no mail (null MX)"}
		}
		hs = append(hs, net.JoinHostPort(h, strconv.Itoa(d.cfg.Port)))
	}
	if len(hs) == 0 {
		hs = []string{net.JoinHostPort(rt.domain, strconv.Itoa(d.cfg.Port))}
	}
	return hs, nil
}

func (d *deliverer) process(m *qmsg) {
	s := d.s
	cfg := &s.cfg
	env := m.env
	data := m.data
	if data == nil {
		var err error
		data, err = s.spool.ReadData(m.ref)
		if err != nil {
			cfg.Logger.Error("mailrelay: queue read failed", "id", m.id, "err", err)
			d.later(m, d.cfg.MinBackoff)
			return
		}
	}
	results := make([]reply, len(env.To))
	for _, rt := range d.routes(env) {
		rcpts := make([]string, len(rt.rcpts))
		for i, j := range rt.rcpts {
			rcpts[i] = env.To[j]
		}
		start := cfg.Now()
		host, res := d.deliverRoute(rt, env, rcpts, data)
		for i, j := range rt.rcpts {
			results[j] = res[i]
		}
		d.emitAttempt(m, rt, host, rcpts, res, cfg.Now().Sub(start))
	}
	var temp []string
	var failed []failure
	expired := cfg.Now().Sub(time.Unix(0, env.Created)) >= d.cfg.MaxAge
	for i, r := range results {
		switch {
		case r.code >= 200 && r.code < 300:
		case r.temp() && !expired:
			temp = append(temp, env.To[i])
		default:
			failed = append(failed, failure{rcpt: env.To[i], reply: r})
		}
	}
	if len(failed) > 0 && d.cfg.Bounce == BounceDSN && env.From != "" {
		d.bounce(m, data, failed)
	}
	if len(temp) == 0 {
		s.spool.Done(m.id, m.ref)
		return
	}
	next := *env
	next.To = temp
	next.Attempts++
	if dn := d.cfg.DelayNotice; dn > 0 && !env.Delayed && env.From != "" && d.cfg.Bounce == BounceDSN &&
		cfg.Now().Sub(time.Unix(0, env.Created)) >= dn {
		var delayed []failure
		for i, r := range results {
			if r.temp() {
				delayed = append(delayed, failure{rcpt: env.To[i], reply: r})
			}
		}
		d.notify(m, data, delayed, true)
		next.Delayed = true
	}
	nm := &qmsg{id: m.id, gen: m.gen + 1, env: &next}
	ref, err := s.spool.Put(m.id, nm.gen, next.encode(), data, &m.ref)
	if err != nil {
		cfg.Logger.Error("mailrelay: queue update failed", "id", m.id, "err", err)
		nm.gen, nm.ref, nm.data = m.gen, m.ref, data
	} else {
		nm.ref = ref
	}
	delay := d.cfg.MinBackoff
	for i := 1; i < next.Attempts && delay < d.cfg.MaxBackoff; i++ {
		delay *= 2
	}
	d.later(nm, min(delay, d.cfg.MaxBackoff))
}

// deliverRoute tries the route's hosts in order and returns the host used
// and one reply per recipient.
func (d *deliverer) deliverRoute(rt *route, env *envelope, rcpts []string, data []byte) (string, []reply) {
	ctx := d.ctx
	hosts, fail := d.hosts(ctx, rt)
	res := make([]reply, len(rcpts))
	if fail != nil {
		for i := range res {
			res[i] = *fail
		}
		return "", res
	}
	lastErr := "no next hop"
	for _, h := range hosts {
		for try := 0; try < 2; try++ {
			c, pooled, err := d.conn(ctx, h, dialTenant(rt, env))
			if err != nil {
				lastErr = sanitizeText(err.Error())
				var de *deliveryError
				if errors.As(err, &de) && de.reply.perm() {
					for i := range res {
						res[i] = de.reply
					}
					return h, res
				}
				break // next host
			}
			r, err := c.send(env, rcpts, data)
			if err != nil {
				d.drop(c)
				lastErr = sanitizeText(err.Error())
				if pooled {
					continue // a stale pooled connection: one fresh try
				}
				break
			}
			d.release(c)
			return h, r
		}
	}
	for i := range res {
		res[i] = reply{code: 451, text: "4.4.1 delivery failed: " + lastErr}
	}
	return "", res
}

// dialTenant is the tenant whose egress is used: the sender's tenant for
// mail leaving towards the internet, none for deliveries to tenants.
func dialTenant(rt *route, env *envelope) string {
	if rt.tenant == "" {
		return env.Tenant
	}
	return ""
}

func (d *deliverer) conn(ctx context.Context, host, tenant string) (*clientConn, bool, error) {
	key := host
	if d.cfg.DialTenant != nil {
		key = tenant + "|" + host
	}
	d.mu.Lock()
	l := d.idle[key]
	for len(l) > 0 {
		c := l[len(l)-1]
		l = l[:len(l)-1]
		if time.Since(c.used) < 30*time.Second {
			d.idle[key] = l
			d.active[c] = struct{}{}
			d.mu.Unlock()
			return c, true, nil
		}
		go c.close()
	}
	d.idle[key] = l
	d.mu.Unlock()
	dial := d.cfg.Dial
	if d.cfg.DialTenant != nil {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.cfg.DialTenant(ctx, tenant, network, addr)
		}
	}
	c, err := dialClient(ctx, dial, d.cfg, host, d.s.cfg.Hostname)
	if err != nil {
		return nil, false, err
	}
	c.key = key
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		c.c.Close()
		return nil, false, errors.New("mailrelay: shutting down")
	}
	d.active[c] = struct{}{}
	d.mu.Unlock()
	return c, false, nil
}

func (d *deliverer) release(c *clientConn) {
	d.mu.Lock()
	delete(d.active, c)
	if !d.stopped && len(d.idle[c.key]) < d.cfg.MaxIdlePerHost {
		c.used = time.Now()
		d.idle[c.key] = append(d.idle[c.key], c)
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	c.close()
}

func (d *deliverer) drop(c *clientConn) {
	d.mu.Lock()
	delete(d.active, c)
	d.mu.Unlock()
	c.c.Close()
}

func (d *deliverer) emitAttempt(m *qmsg, rt *route, host string, rcpts []string, res []reply, dur time.Duration) {
	env := m.env
	e := detect.Event{Time: d.s.cfg.Now(), ID: m.id, Module: "mail", Dataset: "mail.delivery", Category: "email",
		Action: "smtp_delivery", Tenant: env.Tenant, DestDomain: host, Duration: dur}
	if ap, err := netip.ParseAddrPort(env.Client); err == nil {
		e.Client = ap
	}
	e.Email = detect.EmailInfo{From: env.From, To: rcpts, Subject: env.Subject, MessageID: env.MsgID, Direction: string(env.Dir)}
	ok, temp := 0, 0
	status := make([]string, 0, len(res))
	for _, r := range res {
		switch {
		case r.code >= 200 && r.code < 300:
			ok++
		case r.temp():
			temp++
		}
		status = append(status, r.String())
	}
	switch {
	case ok == len(res):
		e.Type, e.Outcome = "info", "success"
		e.Verdict.Action = detect.ActionAllow
	case temp > 0:
		e.Type, e.Outcome = "info", "failure"
		e.Verdict.Action = detect.ActionTempFail
	default:
		e.Type, e.Outcome = "info", "failure"
		e.Verdict.Action = detect.ActionNone
	}
	e.Labels = []detect.Label{{Key: "queue_id", Value: m.id}, {Key: "attempt", Value: strconv.Itoa(env.Attempts + 1)},
		{Key: "route", Value: rt.key}, {Key: "status", Value: strings.Join(status, " | ")}}
	d.s.cfg.Sink.Emit(e)
}

type failure struct {
	rcpt  string
	reply reply
}
