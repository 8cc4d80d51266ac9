package dnsres

import (
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jichitai/seccloud/detect"
)

// DefaultFetchesPerZone is the default of RecursorConfig.FetchesPerZone:
// at most 200 queries outstanding to the servers of one zone. A zone whose
// servers answer in 20 ms sustains 10,000 cache misses per second within
// it, far above what one zone legitimately needs here; only a zone whose
// servers stop answering (or a random-subdomain "water torture" flood
// against one domain) reaches it.
const DefaultFetchesPerZone = 200

// DefaultFetchesPerServer is the default of
// RecursorConfig.FetchesPerServer: at most 1,000 queries outstanding to
// one name-server address, whatever the zones (a flood spread over many
// zones hosted on one server).
const DefaultFetchesPerServer = 1000

// ErrServerFetchLimit is returned by Recursor.Resolve when every server
// of a zone on the way already has RecursorConfig.FetchesPerServer
// queries outstanding.
var ErrServerFetchLimit = errors.New("dnsres: too many queries outstanding for the name servers")

// fetchLimited reports whether err is a refusal by a fetch limit.
func fetchLimited(err error) bool {
	return errors.Is(err, ErrZoneFetchLimit) || errors.Is(err, ErrServerFetchLimit)
}

// ErrZoneFetchLimit is returned by Recursor.Resolve when the servers of a
// zone on the way already have RecursorConfig.FetchesPerZone queries
// outstanding: the resolution fails at once instead of queueing (the
// Cache then answers stale, when it has an expired answer, or SERVFAIL).
var ErrZoneFetchLimit = errors.New("dnsres: too many queries outstanding for the zone")

// fetchAlertEvery is how often at most one fetch-limit alert is emitted
// per zone.
const fetchAlertEvery = time.Minute

// maxAlertZones bounds the zones remembered for alert throttling.
const maxAlertZones = 10_000

const fetchShards = 16

// fetchLimiter counts the queries outstanding per key (a zone name, a
// server address) and refuses more than limit. Safe for concurrent use.
type fetchLimiter[K comparable] struct {
	limit   int
	seed    maphash.Seed
	shards  [fetchShards]fetchShard[K]
	limited atomic.Uint64
	sink    detect.Sink
	now     func() time.Time

	amu     sync.Mutex
	alerted map[K]time.Time // key → last alert
}

type fetchShard[K comparable] struct {
	mu sync.Mutex
	n  map[K]int
}

func newFetchLimiter[K comparable](limit int, sink detect.Sink, now func() time.Time) *fetchLimiter[K] {
	f := &fetchLimiter[K]{limit: limit, seed: maphash.MakeSeed(), sink: sink, now: now, alerted: map[K]time.Time{}}
	for i := range f.shards {
		f.shards[i].n = map[K]int{}
	}
	return f
}

func (f *fetchLimiter[K]) shard(k K) *fetchShard[K] {
	return &f.shards[maphash.Comparable(f.seed, k)%fetchShards]
}

// acquire takes one slot of zone; false when zone is at the limit (the
// refusal is counted and may emit an alert). A nil limiter admits all.
func (f *fetchLimiter[K]) acquire(zone K) bool {
	if f == nil {
		return true
	}
	s := f.shard(zone)
	s.mu.Lock()
	n := s.n[zone]
	if n >= f.limit {
		s.mu.Unlock()
		f.limited.Add(1)
		f.alert(zone, n)
		return false
	}
	s.n[zone] = n + 1
	s.mu.Unlock()
	return true
}

// release gives back a slot taken by acquire.
func (f *fetchLimiter[K]) release(zone K) {
	if f == nil {
		return
	}
	s := f.shard(zone)
	s.mu.Lock()
	if n := s.n[zone] - 1; n > 0 {
		s.n[zone] = n
	} else {
		delete(s.n, zone)
	}
	s.mu.Unlock()
}

// outstanding returns the queries outstanding for zone.
func (f *fetchLimiter[K]) outstanding(zone K) int {
	if f == nil {
		return 0
	}
	s := f.shard(zone)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[zone]
}

// atLimit returns the zones currently at the limit.
func (f *fetchLimiter[K]) atLimit() []K {
	if f == nil {
		return nil
	}
	var out []K
	for i := range f.shards {
		s := &f.shards[i]
		s.mu.Lock()
		for z, n := range s.n {
			if n >= f.limit {
				out = append(out, z)
			}
		}
		s.mu.Unlock()
	}
	return out
}

// alert emits one event per zone and fetchAlertEvery to the sink.
func (f *fetchLimiter[K]) alert(zone K, n int) {
	if f.sink == nil {
		return
	}
	now := f.now()
	f.amu.Lock()
	if last, ok := f.alerted[zone]; ok && now.Sub(last) < fetchAlertEvery {
		f.amu.Unlock()
		return
	}
	if len(f.alerted) >= maxAlertZones {
		for z, t := range f.alerted {
			if now.Sub(t) >= fetchAlertEvery {
				delete(f.alerted, z)
			}
		}
		if len(f.alerted) >= maxAlertZones {
			clear(f.alerted)
		}
	}
	f.alerted[zone] = now
	f.amu.Unlock()
	e := detect.Event{
		Time: now, Module: "dns", Dataset: "dns.detection", Kind: "alert",
		Category: "network", Type: "denied", Action: "dns_fetch_limit", Outcome: "failure",
		Severity: detect.SeverityStopped,
		Verdict:  detect.Verdict{Action: detect.ActionDrop, Rule: "dns-fetch-limit"},
	}
	switch k := any(zone).(type) {
	case string:
		e.DestDomain = k
		e.Labels = []detect.Label{{Key: "dns_domain", Value: k}}
		e.Verdict.RuleName = "per-zone fetch limit"
		e.Verdict.Reason = fmt.Sprintf("ゾーン %s への未応答の問い合わせが上限 %d に達したため、新しい問い合わせを SERVFAIL にしています（ランダムサブドメイン攻撃の可能性） / zone %s has %d queries outstanding (limit %d): further queries fail at once (random-subdomain attack?)",
			k, f.limit, k, n, f.limit)
	case netip.Addr:
		e.Dest = netip.AddrPortFrom(k, 53)
		e.Verdict.RuleName = "per-server fetch limit"
		e.Verdict.Reason = fmt.Sprintf("ネームサーバ %s への未応答の問い合わせが上限 %d に達したため、このサーバへの新しい問い合わせを止めています / name server %s has %d queries outstanding (limit %d): no more queries to it until some end",
			k, f.limit, k, n, f.limit)
	}
	f.sink.Emit(e)
}

// RecursorStats are a Recursor's counters.
type RecursorStats struct {
	// Queries is the number of queries sent to servers.
	Queries uint64
	// FetchLimited is the number of queries not sent because their zone
	// was at RecursorConfig.FetchesPerZone (each failed a resolution).
	FetchLimited uint64
	// ZonesAtLimit are the zones at the limit now (unordered).
	ZonesAtLimit []string
	// ServerLimited is the number of times a server was skipped because
	// it was at RecursorConfig.FetchesPerServer.
	ServerLimited uint64
	// ServersAtLimit are the server addresses at that limit now.
	ServersAtLimit []netip.Addr
}

// Stats returns the recursor's counters. Safe for concurrent use.
func (r *Recursor) Stats() RecursorStats {
	st := RecursorStats{Queries: r.sent.Load()}
	if r.limit != nil {
		st.FetchLimited = r.limit.limited.Load()
		st.ZonesAtLimit = r.limit.atLimit()
	}
	if r.slimit != nil {
		st.ServerLimited = r.slimit.limited.Load()
		st.ServersAtLimit = r.slimit.atLimit()
	}
	return st
}

// Outstanding returns the number of queries outstanding to the servers of
// zone (a fully qualified, lower-case name such as "example.jp.").
func (r *Recursor) Outstanding(zone string) int { return r.limit.outstanding(zone) }
