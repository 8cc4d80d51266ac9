package ratelimit

import (
	"math"
	"net/netip"
	"regexp"
	"testing"
	"time"
)

// FuzzGCRA drives a Limiter with arbitrary rates, bursts, instants (far in
// the past and future) and request sizes: nothing may panic, and the
// admitted tokens must respect the GCRA bound.
func FuzzGCRA(f *testing.F) {
	f.Add(10.0, 5, int64(0), int64(1_000_000_000), 1, 3)
	f.Add(1e11, 1<<40, int64(math.MinInt64), int64(math.MaxInt64), math.MaxInt, 1<<40)
	f.Add(1e-3, 1, int64(-1), int64(1), -1, 0)
	f.Add(125e6, 65536, int64(1)<<62, -(int64(1) << 62), 65536, 1500)
	f.Fuzz(func(t *testing.T, rate float64, burst int, ta, tb int64, n1, n2 int) {
		l, err := New(Config{Rate: rate, Burst: burst})
		if err != nil {
			return
		}
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		// ta, tb as nanoseconds around base, and as seconds (centuries).
		for _, pair := range [][2]time.Time{
			{base.Add(time.Duration(ta)), base.Add(time.Duration(tb))},
			{time.Unix(ta, 0), time.Unix(tb, 0)},
		} {
			l, _ = New(Config{Rate: rate, Burst: burst})
			first, second := pair[0], pair[1]
			admitted := 0.0
			for _, n := range []int{n1, n2, n1, n2} {
				if l.AllowN(first, n) {
					if n < 0 || n > burst {
						t.Fatalf("admitted n=%d outside [0, burst=%d]", n, burst)
					}
					admitted += float64(n)
				}
			}
			if admitted > float64(burst) {
				t.Fatalf("admitted %v at one instant, burst %d", admitted, burst)
			}
			tok := l.Tokens(first)
			if tok < 0 || tok > float64(burst) || math.IsNaN(tok) {
				t.Fatalf("Tokens = %v outside [0, %d]", tok, burst)
			}
			if second.After(first) {
				for _, n := range []int{n2, n1} {
					if l.AllowN(second, n) {
						admitted += float64(n)
					}
				}
				span := math.Min(second.Sub(first).Seconds(), float64(timeLimit)/1e9)
				// Rounding costs up to a nanosecond per request.
				if bound := float64(burst) + rate*span + 2; admitted > bound*(1+1e-9) {
					t.Fatalf("admitted %v over %vs, bound %v", admitted, span, bound)
				}
			}
		}
	})
}

var safeArg = regexp.MustCompile(`^[A-Za-z0-9._:/@-]+$`)

// FuzzPlan feeds arbitrary names, networks and rates to NewPlan: it must
// refuse or produce commands whose every argument is a plain word, so
// the script cannot be used to inject shell commands.
func FuzzPlan(f *testing.F) {
	f.Add("eth1", "a", "127.0.1.0/24", int64(1e9), int64(1e8), int64(0), 1, "fq_codel")
	f.Add("eth0; reboot", "x\ny", "::/0", int64(-1), int64(1)<<62, int64(-5), -1, "htb")
	f.Add("veth0", "tenant \"b\"", "fd00::/8", int64(1e10), int64(1e10), int64(1e10), 1024, "")
	f.Fuzz(func(t *testing.T, dev, id, prefix string, link, rate, ceil int64, queues int, leaf string) {
		p, err := netip.ParsePrefix(prefix)
		if err != nil {
			p = netip.Prefix{}
		}
		plan, err := NewPlan(PlanConfig{
			Device: dev, LinkRate: link, TxQueues: queues % 8, Leaf: leaf,
			Tenants: []TenantBandwidth{{ID: id, Networks: []netip.Prefix{p}, Rate: rate, Ceil: ceil}},
		})
		if err != nil {
			return
		}
		for _, c := range append([][]string{plan.Teardown}, plan.Setup...) {
			for _, a := range c {
				if !safeArg.MatchString(a) {
					t.Fatalf("unsafe argument %q in %q", a, c)
				}
			}
		}
		_ = plan.Script()
	})
}
