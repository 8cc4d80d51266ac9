package dnsres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/dnsres"
	"github.com/jichitai/seccloud/dnsres/dnsrestest"
)

// silence makes a never answer (a zone under a random-subdomain flood, or
// whose servers are down).
func silence(a *dnsrestest.Authority) {
	a.SetHook(func(dns.ResponseWriter, *dns.Msg) bool { return true })
}

func randomName(zone string) string {
	return fmt.Sprintf("r%08x.%s", rand.Uint32(), zone)
}

// TestRecursorFetchLimit: a zone whose server never answers gets a
// random-subdomain flood; at most the limit's queries are outstanding to
// it, the rest fail at once (one alert), and other zones keep resolving
// meanwhile. Per zone, and per server address.
func TestRecursorFetchLimit(t *testing.T) {
	const limit, flood = 4, 40
	cases := []struct {
		name    string
		cfg     func(*dnsres.RecursorConfig)
		err     error
		checkSt func(t *testing.T, st dnsres.RecursorStats)
		checkEv func(t *testing.T, e detect.Event)
	}{
		{"per zone", func(c *dnsres.RecursorConfig) { c.FetchesPerZone = limit }, dnsres.ErrZoneFetchLimit,
			func(t *testing.T, st dnsres.RecursorStats) {
				assert.EqualValues(t, flood-limit, st.FetchLimited)
				assert.Equal(t, []string{"slow.test."}, st.ZonesAtLimit)
				assert.Zero(t, st.ServerLimited)
			},
			func(t *testing.T, e detect.Event) {
				assert.Equal(t, "slow.test.", e.DestDomain)
				assert.Contains(t, e.Verdict.Reason, "slow.test.")
			}},
		{"per server", func(c *dnsres.RecursorConfig) { c.FetchesPerZone = -1; c.FetchesPerServer = limit }, dnsres.ErrServerFetchLimit,
			func(t *testing.T, st dnsres.RecursorStats) {
				assert.Zero(t, st.FetchLimited)
				assert.EqualValues(t, flood-limit, st.ServerLimited)
				assert.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.53.4")}, st.ServersAtLimit)
			},
			func(t *testing.T, e detect.Event) {
				assert.Equal(t, "127.0.53.4", e.Dest.Addr().String())
				assert.Contains(t, e.Verdict.Reason, "127.0.53.4")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sink := new(dnsrestest.Sink)
			h := newHier(t, func(c *dnsres.RecursorConfig) {
				tc.cfg(c)
				c.Sink = sink
				c.Timeout = time.Minute // the admitted queries stay outstanding
			})
			silence(h.slow)
			// Learn the delegation of slow.test. (the one query times out).
			warm, cancelWarm := context.WithTimeout(context.Background(), 200*time.Millisecond)
			_, err := h.r.Resolve(warm, dnsres.Question{Name: randomName("slow.test."), Type: dns.TypeA, Class: dns.ClassINET})
			cancelWarm()
			require.Error(t, err)
			require.EqualValues(t, 1, h.slow.Queries())

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errs := make(chan error, flood)
			var wg sync.WaitGroup
			for i := 0; i < flood; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := h.r.Resolve(ctx, dnsres.Question{Name: randomName("slow.test."), Type: dns.TypeA, Class: dns.ClassINET})
					errs <- err
				}()
			}
			// All but the admitted ones fail without waiting for an answer.
			for i := 0; i < flood-limit; i++ {
				select {
				case err := <-errs:
					require.ErrorIs(t, err, tc.err)
				case <-time.After(30 * time.Second): // a hang guard, not a threshold
					t.Fatalf("only %d of %d flood resolutions ended", i, flood-limit)
				}
			}
			require.Eventually(t, func() bool { return h.slow.Queries() == 1+limit }, 10*time.Second, 5*time.Millisecond)
			tc.checkSt(t, h.r.Stats())

			// Other zones resolve while slow.test. is saturated.
			m := resolve(t, h.r, "www.leaf.test.", dns.TypeA)
			assert.Equal(t, []string{"www.leaf.test. A 192.0.2.1"}, rrStrings(m.Answer))
			m = resolve(t, h.r, "www.other.test.", dns.TypeA)
			assert.Equal(t, []string{"www.other.test. A 192.0.2.2"}, rrStrings(m.Answer))

			// One alert, not one per refused query.
			var alerts []detect.Event
			for _, e := range sink.Events() {
				if e.Verdict.Rule == "dns-fetch-limit" {
					alerts = append(alerts, e)
				}
			}
			require.Len(t, alerts, 1)
			tc.checkEv(t, alerts[0])
			assert.EqualValues(t, 1+limit, h.slow.Queries(), "no query beyond the limit reached the server")

			// The admitted resolutions end (here: cancelled); the slots are free again.
			cancel()
			wg.Wait()
			for i := 0; i < limit; i++ {
				assert.False(t, errors.Is(<-errs, tc.err))
			}
			assert.Zero(t, h.r.Outstanding("slow.test."))
			st := h.r.Stats()
			assert.Empty(t, st.ZonesAtLimit)
			assert.Empty(t, st.ServersAtLimit)
		})
	}
}

// TestServerFetchLimitWaterTorture drives the flood through the server:
// clients get SERVFAIL for the flooded zone and normal answers for
// others.
func TestServerFetchLimitWaterTorture(t *testing.T) {
	const limit, flood = 4, 30
	// The recursor's query timeout is longer than the cache's resolution
	// timeout: an admitted query holds its slot until the cache gives up.
	h := newHier(t, func(c *dnsres.RecursorConfig) { c.FetchesPerZone = limit; c.Timeout = time.Minute })
	silence(h.slow)
	cache, err := dnsres.NewCache(dnsres.CacheConfig{Resolver: h.r, ResolveTimeout: 2 * time.Second, StaleTTL: -1})
	require.NoError(t, err)
	defer cache.Close()
	srv, err := dnsres.NewServer(dnsres.ServerConfig{Addr: "127.0.0.1:0", Directory: testDirectory(t), Handler: cache, Sink: new(dnsrestest.Sink)})
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	defer srv.Shutdown(context.Background())
	f := &fixture{srv: srv}
	// Warm up: the root's and the TLD's delegations are known, as on a
	// resolver that has been running.
	r := f.query(t, "127.0.1.5", "udp", q("www.leaf.test.", dns.TypeA))
	require.Equal(t, dns.RcodeSuccess, r.Rcode)
	r = f.query(t, "127.0.1.5", "udp", q(randomName("slow.test."), dns.TypeA))
	require.Equal(t, dns.RcodeServerFailure, r.Rcode)

	rcodes := make(chan int, flood)
	var wg sync.WaitGroup
	for i := 0; i < flood; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := f.exchange("127.0.1.5", "udp", q(randomName("slow.test."), dns.TypeA))
			if err != nil {
				rcodes <- -1
				return
			}
			rcodes <- r.Rcode
		}()
	}
	// Meanwhile a name of another zone, not cached, resolves.
	require.Eventually(t, func() bool { return h.r.Outstanding("slow.test.") == limit }, 10*time.Second, 5*time.Millisecond)
	r = f.query(t, "127.0.1.5", "udp", q("www.other.test.", dns.TypeA))
	assert.Equal(t, dns.RcodeSuccess, r.Rcode)
	assert.Equal(t, []string{"www.other.test. A 192.0.2.2"}, rrStrings(r.Answer))
	wg.Wait()
	close(rcodes)
	for rc := range rcodes {
		assert.Equal(t, "SERVFAIL", dns.RcodeToString[rc])
	}
	st := h.r.Stats()
	assert.NotZero(t, st.FetchLimited, "the flood was cut by the per-zone limit")
	assert.Zero(t, h.r.Outstanding("slow.test."), "every slot released")
}

func TestRecursorFetchLimitOff(t *testing.T) {
	h := newHier(t, func(c *dnsres.RecursorConfig) { c.FetchesPerZone = -1; c.FetchesPerServer = -1 })
	m := resolve(t, h.r, "www.leaf.test.", dns.TypeA)
	require.Len(t, m.Answer, 1)
	assert.Zero(t, h.r.Stats().FetchLimited)
	assert.Zero(t, h.r.Stats().ServerLimited)
	assert.Zero(t, h.r.Outstanding("leaf.test."))
}

func TestRecursorFetchLimitErrorsAreDistinct(t *testing.T) {
	assert.False(t, errors.Is(dnsres.ErrZoneFetchLimit, dnsres.ErrFetchLimit))
	assert.False(t, errors.Is(dnsres.ErrServerFetchLimit, dnsres.ErrZoneFetchLimit))
}

// TestForwarderFetchLimitPerDomain: forwarding, the flood is cut per
// registered domain.
func TestForwarderFetchLimitPerDomain(t *testing.T) {
	const limit, flood = 3, 30
	up := dnsrestest.NewAuthority(t, "127.0.0.1:0", map[string]string{"example.test.": upstreamZone})
	// The upstream never answers for flood.test. (its servers are down).
	up.SetHook(func(_ dns.ResponseWriter, q *dns.Msg) bool {
		return dns.IsSubDomain("flood.test.", strings.ToLower(q.Question[0].Name))
	})
	sink := new(dnsrestest.Sink)
	fw, err := dnsres.NewForwarder(dnsres.ForwarderConfig{Upstreams: []string{up.Addr.String()}, Timeout: time.Minute,
		Attempts: 1, FetchesPerDomain: limit, Sink: sink})
	require.NoError(t, err)
	defer fw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, flood)
	for i := 0; i < flood; i++ {
		go func() {
			_, err := fw.Resolve(ctx, dnsres.Question{Name: randomName("x.flood.test."), Type: dns.TypeA, Class: dns.ClassINET})
			errs <- err
		}()
	}
	for i := 0; i < flood-limit; i++ {
		select {
		case err := <-errs:
			require.ErrorIs(t, err, dnsres.ErrZoneFetchLimit)
		case <-time.After(30 * time.Second): // a hang guard
			t.Fatalf("only %d of %d flood questions ended", i, flood-limit)
		}
	}
	assert.Equal(t, limit, fw.Outstanding("other.flood.test."))
	st := fw.Stats()
	assert.EqualValues(t, flood-limit, st.FetchLimited)
	assert.Equal(t, []string{"flood.test."}, st.DomainsAtLimit)
	m, err := fw.Resolve(context.Background(), dnsres.Question{Name: "www.example.test.", Type: dns.TypeA, Class: dns.ClassINET})
	require.NoError(t, err)
	assert.Equal(t, dns.RcodeSuccess, m.Rcode)
	assert.NotEmpty(t, m.Answer)
	require.Len(t, sink.Events(), 1)
	assert.Equal(t, "flood.test.", sink.Events()[0].DestDomain)
	cancel()
	for i := 0; i < limit; i++ {
		assert.NotErrorIs(t, <-errs, dnsres.ErrZoneFetchLimit)
	}
	assert.Zero(t, fw.Outstanding("flood.test."))
}
