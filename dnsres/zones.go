package dnsres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// maxCNAMEChain bounds CNAME chains followed inside a zone and by the
// Recursor.
const maxCNAMEChain = 8

// ZoneError is a problem in a zone file, with its position when known.
type ZoneError struct {
	File string
	Line int // 0 when the error is about the whole zone
	Err  error
}

func (e *ZoneError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *ZoneError) Unwrap() error { return e.Err }

// Zone is one authoritative zone held in memory. Immutable once built.
type Zone struct {
	origin string // lower-case FQDN
	soa    *dns.SOA
	rrs    map[string]map[uint16][]dns.RR // lower-case owner → type → records
	names  map[string]bool                // every owner and empty non-terminal
	cuts   map[string]bool                // delegation points below the apex
}

// Origin returns the zone's name.
func (z *Zone) Origin() string { return z.origin }

// Serial returns the SOA serial.
func (z *Zone) Serial() uint32 { return z.soa.Serial }

var lineRE = regexp.MustCompile(`at line: (\d+):\d+`)

// ParseZone reads an RFC 1035 zone file for origin from r; file names it
// in errors, which are *ZoneError with the line.
func ParseZone(r io.Reader, origin, file string) (*Zone, error) {
	origin = lowerFQDN(origin)
	zp := dns.NewZoneParser(r, origin, file)
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		ze := &ZoneError{File: file, Err: err}
		if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
			ze.Line, _ = strconv.Atoi(m[1])
		}
		return nil, ze
	}
	z, err := NewZone(origin, rrs)
	if err != nil {
		return nil, &ZoneError{File: file, Err: err}
	}
	return z, nil
}

// LoadZoneFile reads the zone file at path for origin.
func LoadZoneFile(origin, path string) (*Zone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &ZoneError{File: path, Err: err}
	}
	defer f.Close()
	return ParseZone(f, origin, path)
}

// NewZone builds a zone from its records: exactly one SOA at the origin,
// every record at or below the origin.
func NewZone(origin string, rrs []dns.RR) (*Zone, error) {
	origin = lowerFQDN(origin)
	z := &Zone{origin: origin, rrs: make(map[string]map[uint16][]dns.RR), names: map[string]bool{origin: true}, cuts: make(map[string]bool)}
	for _, rr := range rrs {
		h := rr.Header()
		owner := strings.ToLower(h.Name)
		if !dns.IsSubDomain(origin, owner) {
			return nil, fmt.Errorf("record %q is outside the zone %s", h.Name, origin)
		}
		h.Name = owner
		if soa, ok := rr.(*dns.SOA); ok {
			if owner != origin {
				return nil, fmt.Errorf("SOA at %s, not at the origin %s", owner, origin)
			}
			if z.soa != nil {
				return nil, errors.New("more than one SOA record")
			}
			z.soa = soa
		}
		if h.Rrtype == dns.TypeNS && owner != origin {
			z.cuts[owner] = true
		}
		if z.rrs[owner] == nil {
			z.rrs[owner] = make(map[uint16][]dns.RR)
		}
		z.rrs[owner][h.Rrtype] = append(z.rrs[owner][h.Rrtype], rr)
		for n := owner; n != origin; {
			z.names[n] = true
			i, end := dns.NextLabel(n, 0)
			if end {
				break
			}
			n = n[i:]
		}
	}
	if z.soa == nil {
		return nil, fmt.Errorf("zone %s has no SOA record", origin)
	}
	return z, nil
}

// DefaultZone returns a minimal zone for origin: an SOA and one NS record
// naming ns, for a tenant zone that has no file yet.
func DefaultZone(origin, ns string) *Zone {
	origin = lowerFQDN(origin)
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
		Ns: dns.Fqdn(ns), Mbox: "hostmaster." + origin, Serial: 1, Refresh: 3600, Retry: 600, Expire: 604800, Minttl: 300}
	nsrr := &dns.NS{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 3600}, Ns: dns.Fqdn(ns)}
	z, _ := NewZone(origin, []dns.RR{soa, nsrr})
	return z
}

// Zones answers authoritatively for a set of zones (the tenants' zones)
// and passes every other question on. The set is replaced atomically
// (Set, Load); queries in flight keep the set they started with. Safe for
// concurrent use.
type Zones struct {
	mu  sync.Mutex // serialises updates
	set atomic.Pointer[map[string]*Zone]
}

// NewZones returns a Zones holding zones.
func NewZones(zones ...*Zone) *Zones {
	z := new(Zones)
	z.Set(zones...)
	return z
}

// Set replaces the whole set.
func (zs *Zones) Set(zones ...*Zone) {
	m := make(map[string]*Zone, len(zones))
	for _, z := range zones {
		if w, ok := toWire(z.origin); ok {
			m[w] = z
		}
	}
	zs.mu.Lock()
	zs.set.Store(&m)
	zs.mu.Unlock()
}

// Zone returns the zone named origin.
func (zs *Zones) Zone(origin string) (*Zone, bool) {
	w, ok := toWire(lowerFQDN(origin))
	if !ok {
		return nil, false
	}
	z, ok := (*zs.set.Load())[w]
	return z, ok
}

// Load (re)loads zones from files (origin → zone file path) and makes
// them the whole set: a zone whose file fails to parse keeps its previous
// version if it had one (and is left out otherwise); zones not named are
// dropped. Every failure is returned, joined, as *ZoneError.
func (zs *Zones) Load(files map[string]string) error {
	return zs.Update(files, nil)
}

// Update is Load plus fixed zones (e.g. DefaultZone for zones without a
// file) added to the set as they are.
func (zs *Zones) Update(files map[string]string, fixed []*Zone) error {
	zs.mu.Lock()
	defer zs.mu.Unlock()
	old := *zs.set.Load()
	m := make(map[string]*Zone, len(files)+len(fixed))
	var errs []error
	for _, z := range fixed {
		if w, ok := toWire(z.origin); ok {
			m[w] = z
		}
	}
	for origin, path := range files {
		w, ok := toWire(lowerFQDN(origin))
		if !ok {
			errs = append(errs, &ZoneError{File: path, Err: fmt.Errorf("bad origin %q", origin)})
			continue
		}
		z, err := LoadZoneFile(origin, path)
		if err != nil {
			errs = append(errs, err)
			if prev, ok := old[w]; ok {
				m[w] = prev
			}
			continue
		}
		m[w] = z
	}
	zs.set.Store(&m)
	return errors.Join(errs...)
}

// Len returns the number of zones.
func (zs *Zones) Len() int { return len(*zs.set.Load()) }

// Middleware returns the zones step in front of next.
func (zs *Zones) Middleware(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) (int, error) {
		set := *zs.set.Load()
		if len(set) == 0 {
			return next.ServeDNS(ctx, w, r)
		}
		var z *Zone
		eachSuffix(r.wireName(), true, func(s []byte) bool {
			z = set[string(s)]
			return z != nil
		})
		if z == nil {
			return next.ServeDNS(ctx, w, r)
		}
		m := z.Answer(r.Name(), r.Type)
		r.Source = "zone"
		return m.Rcode, w.WriteMsg(m)
	})
}

// Answer returns the authoritative answer for qname (lower-case FQDN) and
// qtype: the records (following CNAMEs inside the zone), a referral at a
// delegation (with glue), NODATA or NXDOMAIN with the SOA, wildcards
// synthesized. Only Rcode, AA and the sections are set.
func (z *Zone) Answer(qname string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.Authoritative = true
	name := qname
	for hops := 0; ; hops++ {
		// A delegation at or above name (below the apex): referral.
		if cut := z.cutAbove(name); cut != "" && !(cut == name && qtype == dns.TypeDS) {
			m.Authoritative = len(m.Answer) > 0
			m.Ns = append(m.Ns, z.rrs[cut][dns.TypeNS]...)
			for _, rr := range z.rrs[cut][dns.TypeNS] {
				t := rr.(*dns.NS).Ns
				if dns.IsSubDomain(cut, t) {
					m.Extra = append(m.Extra, z.rrs[t][dns.TypeA]...)
					m.Extra = append(m.Extra, z.rrs[t][dns.TypeAAAA]...)
				}
			}
			return m
		}
		set, exists := z.rrs[name]
		if !exists && !z.names[name] {
			// Wildcard at the closest encloser.
			ce := name
			for !z.names[ce] && ce != z.origin {
				i, end := dns.NextLabel(ce, 0)
				if end {
					ce = z.origin
					break
				}
				ce = ce[i:]
			}
			if ws, ok := z.rrs["*."+ce]; ok {
				set, exists = synthesize(ws, name), true
			}
		}
		if !exists && !z.names[name] {
			if len(m.Answer) == 0 {
				m.Rcode = dns.RcodeNameError
			}
			m.Ns = append(m.Ns, z.negSOA())
			return m
		}
		if rrs := set[qtype]; len(rrs) > 0 {
			m.Answer = append(m.Answer, rrs...)
			return m
		}
		if qtype == dns.TypeANY && len(set) > 0 {
			for _, rrs := range set {
				m.Answer = append(m.Answer, rrs...)
			}
			return m
		}
		if c := set[dns.TypeCNAME]; len(c) > 0 && hops < maxCNAMEChain {
			m.Answer = append(m.Answer, c[0])
			target := strings.ToLower(c[0].(*dns.CNAME).Target)
			if !dns.IsSubDomain(z.origin, target) {
				return m // the client's resolver follows it
			}
			name = target
			continue
		}
		m.Ns = append(m.Ns, z.negSOA()) // NODATA
		return m
	}
}

// cutAbove returns the delegation point at or above name, if any.
func (z *Zone) cutAbove(name string) string {
	if len(z.cuts) == 0 {
		return ""
	}
	for n := name; n != z.origin; {
		if z.cuts[n] {
			return n
		}
		i, end := dns.NextLabel(n, 0)
		if end {
			break
		}
		n = n[i:]
	}
	return ""
}

func (z *Zone) negSOA() dns.RR {
	soa := dns.Copy(z.soa).(*dns.SOA)
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return soa
}

// synthesize copies wildcard records with the owner name replaced.
func synthesize(set map[uint16][]dns.RR, name string) map[uint16][]dns.RR {
	out := make(map[uint16][]dns.RR, len(set))
	for t, rrs := range set {
		for _, rr := range rrs {
			c := dns.Copy(rr)
			c.Header().Name = name
			out[t] = append(out[t], c)
		}
	}
	return out
}
