package waf

import (
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWaterLevel(t *testing.T) {
	assert.True(t, math.IsInf(waterLevel([]float64{1, 2, 3}, 10), 1))
	assert.InDelta(t, 2.8, waterLevel(append(repeat(1, 20), repeat(100, 50)...), 160), 1e-9)
	assert.InDelta(t, 5, waterLevel([]float64{5, 5, 5, 5}, 20-1e-9), 1e-6)
	assert.InDelta(t, 0, waterLevel([]float64{3}, 0), 1e-9)
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// TestAdaptiveProtection drives one site's adaptive state with explicit
// times: 20 normal clients at 1 request/s teach the baseline; then 50
// flooders at 100 requests/s each join. The site enters protection, every
// flooder is held near its fair share and no normal request is refused.
func TestAdaptiveProtection(t *testing.T) {
	cfg := DDoSConfig{BaselineHalfLife: 5 * time.Second}
	require.NoError(t, cfg.defaults())
	cfg.AdaptiveMinRate = 5
	s := &siteLoad{clients: map[netip.Addr]int32{}}
	t0 := time.Unix(1_700_000_000, 0)
	normal := make([]netip.Addr, 20)
	for i := range normal {
		normal[i] = netip.MustParseAddr(fmt.Sprintf("127.0.1.%d", i+1))
	}
	flood := make([]netip.Addr, 50)
	for i := range flood {
		flood[i] = netip.MustParseAddr(fmt.Sprintf("127.0.3.%d", i+1))
	}
	// 60 s of normal traffic: one request per client per second, spread.
	for sec := range 60 {
		for i, c := range normal {
			over, _ := s.hit(c, t0.Add(time.Duration(sec)*time.Second+time.Duration(i)*10*time.Millisecond), &cfg)
			require.False(t, over)
		}
	}
	assert.InDelta(t, 20, s.baseline, 2, "baseline learned")
	assert.False(t, s.attack)
	// 20 s of flood on top.
	normalRefused, floodPassed, floodSent := 0, 0, 0
	for sec := 60; sec < 80; sec++ {
		at := t0.Add(time.Duration(sec) * time.Second)
		for k := range 100 {
			tick := at.Add(time.Duration(k) * 10 * time.Millisecond)
			for _, c := range flood {
				over, _ := s.hit(c, tick, &cfg)
				if sec > 60 { // the first window is measured before protection starts
					floodSent++
					if !over {
						floodPassed++
					}
				}
			}
			if k%5 == 0 {
				if over, _ := s.hit(normal[k/5], tick.Add(time.Millisecond), &cfg); over {
					normalRefused++
				}
			}
		}
	}
	assert.True(t, s.attack, "in protection")
	assert.InDelta(t, 20, s.baseline, 2, "the flood did not become the baseline")
	assert.Zero(t, normalRefused, "normal clients keep their share")
	// capacity is 4 × 20 req/s; the flooders share what normal clients
	// leave, but never less than MinClientShare (2/s) each
	assert.LessOrEqual(t, floodPassed, 19*50*2+100, "each flooder held near its share")
	assert.Greater(t, floodSent-floodPassed, floodSent*9/10)
	// the flood stops: protection ends after a quiet window
	for sec := 80; sec < 83; sec++ {
		for i, c := range normal {
			s.hit(c, t0.Add(time.Duration(sec)*time.Second+time.Duration(i)*10*time.Millisecond), &cfg)
		}
	}
	assert.False(t, s.attack)
}
