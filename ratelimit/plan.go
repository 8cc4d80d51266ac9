package ratelimit

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// PlanConfig describes the per-tenant bandwidth of one network interface,
// to be turned into a Linux traffic-control plan by NewPlan.
type PlanConfig struct {
	// Device is the interface whose egress is shaped, e.g. "eth1".
	// Required: 1 to 15 characters among letters, digits and "._@-".
	Device string
	// LinkRate is the interface's capacity in bits per second. Required,
	// in [8000, 1e13].
	LinkRate int64
	// TxQueues is the number of transmit queues to shape. 0 or 1 means
	// one HTB tree at the root. More means an mq root with one HTB tree
	// per queue (1 to 1024), so that queues do not serialise on one lock;
	// see Plan for what this costs.
	TxQueues int
	// Match selects which address of a packet places it in its tenant's
	// class. The zero value, MatchDst, suits the interface facing the
	// tenants (download); MatchSrc suits the one facing the internet
	// (upload).
	Match Match
	// Leaf is the qdisc under each class. Empty means "fq_codel". One of
	// fq_codel, fq, cake, sfq, pfifo, bfifo.
	Leaf string
	// MTU is the largest frame in bytes, used for HTB quanta. Zero means
	// 1514. It must be in [576, 65536].
	MTU int
	// Tenants are the tenants' classes. At least one is required; their
	// guaranteed rates may not add up to more than LinkRate, and their
	// networks may not overlap.
	Tenants []TenantBandwidth
}

// Match selects the address that classifies packets in a Plan.
type Match int

// The addresses a Plan can classify on.
const (
	MatchDst Match = iota // destination address
	MatchSrc              // source address
)

// TenantBandwidth is one tenant's class in a Plan.
type TenantBandwidth struct {
	// ID names the tenant in the generated script's comments. Required.
	ID string
	// Networks are the tenant's address ranges. At least one is required.
	Networks []netip.Prefix
	// Rate is the guaranteed rate in bits per second. Required, >= 8000.
	Rate int64
	// Ceil is the most the tenant may use by borrowing idle capacity, in
	// bits per second. Zero means LinkRate. It must be in [Rate,
	// LinkRate].
	Ceil int64
	// Weight scales the tenant's share of borrowed capacity (the HTB
	// quantum is Weight*MTU). Zero means 1; at most 100.
	Weight int
}

// Plan is a tc plan: HTB classes per tenant, matched on their networks by
// u32 filters, with a leaf qdisc (fq_codel by default) per class, and a
// default class for traffic of no tenant.
//
// With TxQueues > 1 the root is mq and each transmit queue gets its own
// HTB tree carrying every tenant at Rate/TxQueues and Ceil/TxQueues: a
// single HTB root serialises every packet of the interface on one qdisc
// lock, which caps it at a few Gbit/s, whereas per-queue trees scale with
// the queues. The split is exact only when each tenant's flows spread evenly
// across the queues (the hash of XPS/RSS does that for many flows); a
// tenant with one big flow is held to Ceil/TxQueues. Pinning each tenant to
// one queue, as LibreQoS does with XDP steering, removes that limit but
// needs an XDP program and is out of scope here.
//
// Plan holds only data; running the commands is up to the caller (as root,
// with iproute2's tc).
type Plan struct {
	// Device is the shaped interface.
	Device string
	// Teardown deletes the root qdisc of Device (it fails harmlessly
	// when there is none). Run it before Setup.
	Teardown []string
	// Setup are the tc commands, without the leading "tc", in order.
	Setup [][]string
	// Comments maps an index of Setup to a line of explanation that
	// Script writes before that command.
	Comments map[int]string
}

var deviceName = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,15}$`)

var leafQdiscs = map[string]bool{"fq_codel": true, "fq": true, "cake": true, "sfq": true, "pfifo": true, "bfifo": true}

const (
	minPlanRate   = 8000
	maxPlanRate   = 10_000_000_000_000
	maxPlanQueues = 1024
	firstMinor    = 0x10
)

// NewPlan validates cfg and generates its plan. It refuses an invalid
// configuration with a *ConfigError naming the field.
func NewPlan(cfg PlanConfig) (*Plan, error) {
	if !deviceName.MatchString(cfg.Device) || cfg.Device == "." || cfg.Device == ".." {
		return nil, cfgErr("Device", "must be 1-15 characters among letters, digits and \"._@-\", got %q", cfg.Device)
	}
	if cfg.LinkRate < minPlanRate || cfg.LinkRate > maxPlanRate {
		return nil, cfgErr("LinkRate", "must be in [%d, %d] bit/s, got %d", minPlanRate, int64(maxPlanRate), cfg.LinkRate)
	}
	if cfg.TxQueues < 0 || cfg.TxQueues > maxPlanQueues {
		return nil, cfgErr("TxQueues", "must be in [0, %d], got %d", maxPlanQueues, cfg.TxQueues)
	}
	if cfg.Match != MatchDst && cfg.Match != MatchSrc {
		return nil, cfgErr("Match", "must be MatchDst or MatchSrc, got %d", cfg.Match)
	}
	leaf := cfg.Leaf
	if leaf == "" {
		leaf = "fq_codel"
	}
	if !leafQdiscs[leaf] {
		return nil, cfgErr("Leaf", "must be one of fq_codel, fq, cake, sfq, pfifo, bfifo; got %q", cfg.Leaf)
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = 1514
	}
	if mtu < 576 || mtu > 65536 {
		return nil, cfgErr("MTU", "must be in [576, 65536], got %d", cfg.MTU)
	}
	if len(cfg.Tenants) == 0 {
		return nil, cfgErr("Tenants", "at least one tenant is required")
	}
	if len(cfg.Tenants) > 0xffff-firstMinor {
		return nil, cfgErr("Tenants", "at most %d tenants, got %d", 0xffff-firstMinor, len(cfg.Tenants))
	}
	var sum int64
	type owned struct {
		p     netip.Prefix
		field string
	}
	var seen []owned
	for i, t := range cfg.Tenants {
		f := fmt.Sprintf("Tenants[%d]", i)
		if t.ID == "" {
			return nil, cfgErr(f+".ID", "must not be empty")
		}
		if t.Rate < minPlanRate || t.Rate > cfg.LinkRate {
			return nil, cfgErr(f+".Rate", "must be in [%d, LinkRate=%d] bit/s, got %d", minPlanRate, cfg.LinkRate, t.Rate)
		}
		if t.Ceil != 0 && (t.Ceil < t.Rate || t.Ceil > cfg.LinkRate) {
			return nil, cfgErr(f+".Ceil", "must be 0 or in [Rate=%d, LinkRate=%d] bit/s, got %d", t.Rate, cfg.LinkRate, t.Ceil)
		}
		if t.Weight < 0 || t.Weight > 100 {
			return nil, cfgErr(f+".Weight", "must be in [0, 100], got %d", t.Weight)
		}
		if len(t.Networks) == 0 {
			return nil, cfgErr(f+".Networks", "at least one network is required")
		}
		for j, p := range t.Networks {
			nf := fmt.Sprintf("%s.Networks[%d]", f, j)
			if !p.IsValid() {
				return nil, cfgErr(nf, "invalid prefix")
			}
			if p.Addr().Zone() != "" {
				return nil, cfgErr(nf, "must not have a zone, got %s", p)
			}
			p = p.Masked()
			if p.Addr().Is4In6() {
				return nil, cfgErr(nf, "use the plain IPv4 form, got %s", p)
			}
			for _, o := range seen {
				if o.p.Overlaps(p) {
					return nil, cfgErr(nf, "%s overlaps %s of %s", p, o.p, o.field)
				}
			}
			seen = append(seen, owned{p, nf})
		}
		sum += t.Rate
		if sum > cfg.LinkRate {
			return nil, cfgErr(f+".Rate", "the guaranteed rates add up to %d bit/s, more than LinkRate=%d", sum, cfg.LinkRate)
		}
	}

	p := &Plan{
		Device:   cfg.Device,
		Teardown: []string{"qdisc", "del", "dev", cfg.Device, "root"},
		Comments: map[int]string{},
	}
	dev := cfg.Device
	queues := max(cfg.TxQueues, 1)
	div := func(r int64) int64 { return max(minPlanRate, (r+int64(queues)-1)/int64(queues)) }
	bits := func(r int64) string { return strconv.FormatInt(r, 10) + "bit" }
	add := func(comment string, args ...string) {
		if comment != "" {
			p.Comments[len(p.Setup)] = comment
		}
		p.Setup = append(p.Setup, args)
	}
	dir := "dst"
	if cfg.Match == MatchSrc {
		dir = "src"
	}
	defRate := max(minPlanRate, cfg.LinkRate-sum)

	tree := func(major int, parent []string, comment string) {
		h := fmt.Sprintf("%x:", major)
		id := func(minor int) string { return fmt.Sprintf("%x:%x", major, minor) }
		add(comment, append(append([]string{"qdisc", "add", "dev", dev}, parent...), "handle", h, "htb", "default", "2")...)
		link := bits(div(cfg.LinkRate))
		add("", "class", "add", "dev", dev, "parent", h, "classid", id(1), "htb", "rate", link, "ceil", link, "quantum", strconv.Itoa(mtu))
		add("traffic of no tenant", "class", "add", "dev", dev, "parent", id(1), "classid", id(2), "htb",
			"rate", bits(div(defRate)), "ceil", link, "quantum", strconv.Itoa(mtu))
		add("", "qdisc", "add", "dev", dev, "parent", id(2), leaf)
		for i, t := range cfg.Tenants {
			minor := firstMinor + i
			ceil := t.Ceil
			if ceil == 0 {
				ceil = cfg.LinkRate
			}
			add("tenant "+strconv.Quote(t.ID), "class", "add", "dev", dev, "parent", id(1), "classid", id(minor), "htb",
				"rate", bits(div(t.Rate)), "ceil", bits(div(ceil)), "quantum", strconv.Itoa(mtu*max(t.Weight, 1)))
			add("", "qdisc", "add", "dev", dev, "parent", id(minor), leaf)
			for _, n := range t.Networks {
				n = n.Masked()
				if n.Addr().Is4() {
					add("", "filter", "add", "dev", dev, "parent", h, "protocol", "ip", "prio", "10",
						"u32", "match", "ip", dir, n.String(), "flowid", id(minor))
				} else {
					add("", "filter", "add", "dev", dev, "parent", h, "protocol", "ipv6", "prio", "11",
						"u32", "match", "ip6", dir, n.String(), "flowid", id(minor))
				}
			}
		}
	}
	if queues == 1 {
		tree(1, []string{"root"}, "one HTB tree")
	} else {
		add(fmt.Sprintf("mq root: one HTB tree per transmit queue, each with 1/%d of every rate", queues),
			"qdisc", "add", "dev", dev, "root", "handle", "1:", "mq")
		for q := 1; q <= queues; q++ {
			tree(q+1, []string{"parent", fmt.Sprintf("1:%x", q)}, fmt.Sprintf("transmit queue %d", q-1))
		}
	}
	return p, nil
}

// Script renders the plan as a POSIX shell script calling tc.
func (p *Plan) Script() string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# tc plan generated by github.com/jichitai/seccloud/ratelimit\nset -e\n")
	fmt.Fprintf(&b, "tc %s 2>/dev/null || true\n", strings.Join(p.Teardown, " "))
	for i, c := range p.Setup {
		if com, ok := p.Comments[i]; ok {
			fmt.Fprintf(&b, "# %s\n", com)
		}
		fmt.Fprintf(&b, "tc %s\n", strings.Join(c, " "))
	}
	return b.String()
}
