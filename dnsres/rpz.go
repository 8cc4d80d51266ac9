package dnsres

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// RPZAction is what a response-policy rule does with a query.
type RPZAction uint8

// The RPZ actions (CNAME targets in the zone file in parentheses).
const (
	RPZNXDomain  RPZAction = iota + 1 // CNAME .            → NXDOMAIN
	RPZNoData                         // CNAME *.           → NOERROR, no answer
	RPZPassthru                       // CNAME rpz-passthru. → resolved normally, no other policy
	RPZDrop                           // CNAME rpz-drop.    → no answer at all
	RPZTCPOnly                        // CNAME rpz-tcp-only. → TC=1 over UDP, resolved over TCP
	RPZLocalData                      // any other records  → answered with them
)

var rpzActionNames = [...]string{"", "nxdomain", "nodata", "passthru", "drop", "tcp-only", "local-data"}

func (a RPZAction) String() string {
	if int(a) < len(rpzActionNames) {
		return rpzActionNames[a]
	}
	return fmt.Sprintf("RPZAction(%d)", a)
}

// RPZRule is one QNAME trigger of a response-policy zone.
type RPZRule struct {
	// Trigger is the name the rule matches, lower-case without the
	// trailing dot; a leading "*." matches every name below (not the name
	// itself).
	Trigger string
	// Action is what the rule does.
	Action RPZAction
	// Data are the local-data records (owner "." until answered; the
	// owner is replaced by the question name), for RPZLocalData.
	Data []dns.RR
	// Zone is the policy zone's name; File and Record (the 1-based
	// position of the trigger's first record in the file) locate the rule.
	Zone   string
	File   string
	Record int
}

// RPZZone is one parsed response-policy zone (read-only once parsed).
type RPZZone struct {
	// Name is the zone's apex (its SOA owner, or the origin it was parsed
	// with), lower-case without the trailing dot.
	Name string
	// File is the file it was read from.
	File string
	// Rules counts the QNAME triggers; Ignored the records of trigger
	// kinds not supported (rpz-ip, rpz-nsdname, rpz-nsip,
	// rpz-client-ip), which are skipped.
	Rules, Ignored int

	exact map[string]*RPZRule
	wild  map[string]*RPZRule // key: the name below "*."
}

// ParseRPZ reads a response-policy zone in RFC 1035 zone-file syntax.
// origin is the zone name used when the file has no $ORIGIN and no SOA
// ("rpz" when empty); file names the source in errors, which are
// *ZoneError values with the line.
func ParseRPZ(r io.Reader, origin, file string) (*RPZZone, error) {
	if origin == "" {
		origin = "rpz"
	}
	origin = dns.Fqdn(strings.ToLower(origin))
	zp := dns.NewZoneParser(r, origin, file)
	zp.SetIncludeAllowed(false)
	zp.SetDefaultTTL(uint32(DefaultSinkholeTTL / time.Second))
	z := &RPZZone{File: file, exact: map[string]*RPZRule{}, wild: map[string]*RPZRule{}}
	apex := origin
	type rec struct {
		rr   dns.RR
		line int
	}
	var recs []rec
	line := 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		// The parser reports no line per record: rules are located by
		// their record's position instead.
		line++
		if soa, isSOA := rr.(*dns.SOA); isSOA {
			apex = strings.ToLower(soa.Hdr.Name)
			continue
		}
		recs = append(recs, rec{rr, line})
	}
	if err := zp.Err(); err != nil {
		ze := &ZoneError{File: file, Err: err}
		if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
			ze.Line, _ = strconv.Atoi(m[1])
		}
		return nil, ze
	}
	z.Name = strings.TrimSuffix(apex, ".")
	for _, r := range recs {
		h := r.rr.Header()
		owner := strings.ToLower(h.Name)
		if h.Rrtype == dns.TypeNS || owner == apex {
			continue // the zone's own NS and apex records
		}
		if !dns.IsSubDomain(apex, owner) {
			return nil, &ZoneError{File: file, Err: fmt.Errorf("dnsres: RPZ record %d: %s is outside the policy zone %s", r.line, owner, apex)}
		}
		trigger := strings.TrimSuffix(strings.TrimSuffix(owner, apex), ".")
		if isUnsupportedTrigger(trigger) {
			z.Ignored++
			continue
		}
		if trigger == "" || trigger == "*" {
			return nil, &ZoneError{File: file, Err: fmt.Errorf("dnsres: RPZ record %d: trigger %q matches everything", r.line, owner)}
		}
		action := RPZLocalData
		if c, ok := r.rr.(*dns.CNAME); ok {
			switch strings.ToLower(c.Target) {
			case ".":
				action = RPZNXDomain
			case "*.":
				action = RPZNoData
			case "rpz-passthru.":
				action = RPZPassthru
			case "rpz-drop.":
				action = RPZDrop
			case "rpz-tcp-only.":
				action = RPZTCPOnly
			}
		}
		m, key := z.exact, trigger
		if strings.HasPrefix(trigger, "*.") {
			m, key = z.wild, trigger[2:]
		}
		rule := m[key]
		if rule == nil {
			rule = &RPZRule{Trigger: trigger, Action: action, Zone: z.Name, File: file, Record: r.line}
			m[key] = rule
			z.Rules++
		} else if rule.Action != RPZLocalData || action != RPZLocalData {
			return nil, &ZoneError{File: file, Err: fmt.Errorf("dnsres: RPZ record %d: trigger %s has a second action (%s after %s of record %d)",
				r.line, trigger, action, rule.Action, rule.Record)}
		}
		if action == RPZLocalData {
			d := dns.Copy(r.rr)
			d.Header().Name = "."
			rule.Data = append(rule.Data, d)
		}
	}
	return z, nil
}

// isUnsupportedTrigger reports trigger kinds other than QNAME.
func isUnsupportedTrigger(t string) bool {
	i := strings.LastIndexByte(t, '.')
	switch t[i+1:] {
	case "rpz-ip", "rpz-nsdname", "rpz-nsip", "rpz-client-ip":
		return true
	}
	return false
}

// match returns the rule for the dotted lower-case name: an exact
// trigger, else the wildcard of the closest parent.
func (z *RPZZone) match(name []byte) *RPZRule {
	if r, ok := z.exact[string(name)]; ok {
		return r
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			if r, ok := z.wild[string(name[i+1:])]; ok {
				return r
			}
		}
	}
	return nil
}

// Match returns the rule of the first zone (in order) whose triggers
// match name (presentation form, any case, trailing dot optional).
func (p *RPZ) Match(name string) *RPZRule {
	return p.match([]byte(normName(name)))
}

func (p *RPZ) match(name []byte) *RPZRule {
	zs := p.zones.Load()
	if zs == nil {
		return nil
	}
	for _, z := range *zs {
		if r := z.match(name); r != nil {
			return r
		}
	}
	return nil
}

// RPZ is an ordered set of response-policy zones, reloadable at run time.
// The zero value holds no zones. Safe for concurrent use.
type RPZ struct {
	mu    sync.Mutex // serialises Load
	zones atomic.Pointer[[]*RPZZone]
}

// Zones returns the zones in force, in order.
func (p *RPZ) Zones() []*RPZZone {
	if zs := p.zones.Load(); zs != nil {
		return *zs
	}
	return nil
}

// Set replaces the zones in force.
func (p *RPZ) Set(zones ...*RPZZone) {
	zs := append([]*RPZZone(nil), zones...)
	p.zones.Store(&zs)
}

// Load reads the RPZ files in order (each parsed with origin "rpz" unless
// it sets one) and puts them in force. A file that fails to read or parse
// keeps its previous version when it had one (else it is left out); the
// errors are returned joined, each naming file and line.
func (p *RPZ) Load(files []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := map[string]*RPZZone{}
	for _, z := range p.Zones() {
		prev[z.File] = z
	}
	var zs []*RPZZone
	var errs []error
	for _, f := range files {
		z, err := parseRPZFile(f)
		if err != nil {
			errs = append(errs, err)
			if old := prev[f]; old != nil {
				zs = append(zs, old)
			}
			continue
		}
		zs = append(zs, z)
	}
	p.zones.Store(&zs)
	return errors.Join(errs...)
}

func parseRPZFile(path string) (*RPZZone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dnsres: RPZ: %w", err)
	}
	defer f.Close()
	return ParseRPZ(f, "", path)
}
