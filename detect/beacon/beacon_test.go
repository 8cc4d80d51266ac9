package beacon_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/beacon"
	"github.com/jichitai/seccloud/detect/rules"
)

var t0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

func series(n int, every, jitter time.Duration, size, sizeJitter int, rng *rand.Rand) ([]int64, []int64) {
	ts, sz := make([]int64, n), make([]int64, n)
	for i := range n {
		j := time.Duration(0)
		if jitter > 0 {
			j = time.Duration(rng.Int64N(int64(2*jitter))) - jitter
		}
		ts[i] = t0.Add(time.Duration(i)*every + j).UnixNano()
		sz[i] = int64(size)
		if sizeJitter > 0 {
			sz[i] += int64(rng.IntN(sizeJitter))
		}
	}
	return ts, sz
}

func TestScore(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for name, tc := range map[string]struct {
		ts, sz   func() ([]int64, []int64)
		min, max float64
	}{
		"perfect beacon":  {ts: func() ([]int64, []int64) { return series(48, time.Minute, 0, 300, 0, rng) }, min: 0.99, max: 1},
		"jittered beacon": {ts: func() ([]int64, []int64) { return series(48, 5*time.Minute, 3*time.Second, 600, 40, rng) }, min: 0.85, max: 1},
		"browsing": {ts: func() ([]int64, []int64) {
			ts, sz := make([]int64, 60), make([]int64, 60)
			at := t0
			for i := range ts {
				at = at.Add(time.Duration(rng.ExpFloat64()*900) * time.Second)
				ts[i], sz[i] = at.UnixNano(), int64(rng.ExpFloat64()*300000)
			}
			return ts, sz
		}, min: 0, max: 0.7},
	} {
		t.Run(name, func(t *testing.T) {
			ts, sz := tc.ts()
			s := beacon.Score(ts, sz, 48)
			assert.GreaterOrEqual(t, s.Total, tc.min, "%+v", s)
			assert.LessOrEqual(t, s.Total, tc.max, "%+v", s)
		})
	}
}

func TestDetectorOncePerWindowAndBounded(t *testing.T) {
	var alerts []*rules.Alert
	d := beacon.New(beacon.Config{Handler: rules.HandlerFunc(func(a *rules.Alert) { alerts = append(alerts, a) }), MaxPairs: 10})
	for i := range 200 {
		d.Process(&detect.Event{Time: t0.Add(time.Duration(i) * time.Minute), Module: "proxy", Tenant: "a",
			Client: netip.MustParseAddrPort("127.0.1.5:1"), DestDomain: "c2.example", BytesOut: 400})
	}
	assert.Len(t, alerts, 1, "one alert per pair per window")
	assert.Equal(t, "seccloud-beacon", alerts[0].Rule.ID)
	assert.Equal(t, "a", alerts[0].Tenant)
	for i := range 50 {
		d.Process(&detect.Event{Time: t0, Module: "proxy", Tenant: "a",
			Client: netip.MustParseAddrPort("127.0.1.5:1"), DestDomain: fmt.Sprintf("d%d.example", i)})
	}
	st := d.Stats()
	assert.Equal(t, 10, st.Pairs)
	assert.Equal(t, 41, st.PairsFull)
	// Other modules are not looked at.
	d.Process(&detect.Event{Time: t0, Module: "dns", Client: netip.MustParseAddrPort("127.0.1.5:1"), DestDomain: "x"})
	assert.Equal(t, 10, d.Stats().Pairs)
}

func BenchmarkProcess(b *testing.B) {
	d := beacon.New(beacon.Config{})
	evs := make([]detect.Event, 1024)
	for i := range evs {
		evs[i] = detect.Event{Module: "proxy", Tenant: "a", Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 1, byte(i % 200)}), 1),
			DestDomain: fmt.Sprintf("d%d.example", i%37), BytesOut: 500}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev := &evs[i%len(evs)]
		ev.Time = t0.Add(time.Duration(i) * 2 * time.Second)
		d.Process(ev)
		i++
	}
}
