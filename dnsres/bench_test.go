package dnsres

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
	"github.com/jichitai/seccloud/tenant"
)

type countSink struct{ n int }

func (c *countSink) Emit(detect.Event) {}

func benchServer(b *testing.B, sink detect.Sink) (*Server, *Cache) {
	return benchServerDet(b, sink, true)
}

// benchServerDet builds the benchmark server: the appliance's chain
// (policy, then the detector when det, then the cache).
func benchServerDet(b *testing.B, sink detect.Sink, det bool) (*Server, *Cache) {
	snap, err := tenant.NewSnapshot([]tenant.Tenant{{ID: "bench", Name: "bench", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Policy: tenant.Policy{EgressOptional: true}}}, tenant.Options{})
	if err != nil {
		b.Fatal(err)
	}
	res := ResolverFunc(func(_ context.Context, q Question) (*dns.Msg, error) {
		m := new(dns.Msg)
		rr, _ := dns.NewRR(q.Name + " 86400 IN A 198.18.0.1")
		m.Answer = append(m.Answer, rr)
		return m, nil
	})
	cache, err := NewCache(CacheConfig{Resolver: res})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close() })
	iset, _ := intel.FromDomains("c2c.example")
	pol, _ := NewPolicy(PolicyConfig{Intel: intel.NewLive(iset)})
	cfg := ServerConfig{Addr: "127.0.0.1:0", Directory: tenant.NewLive(snap), Handler: Chain(cache, pol.Middleware), Sink: sink}
	if det {
		d, err := NewDetector(DetectorConfig{})
		if err != nil {
			b.Fatal(err)
		}
		cfg.Handler, cfg.Observer = Chain(cache, pol.Middleware, d.Middleware), d
	}
	srv, err := NewServer(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return srv, cache
}

func benchQueries(b *testing.B, n int) [][]byte {
	qs := make([][]byte, n)
	for i := range qs {
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("h%05d.bench.test.", i), dns.TypeA)
		var err error
		if qs[i], err = m.Pack(); err != nil {
			b.Fatal(err)
		}
	}
	return qs
}

type discardWriter struct {
	s    *Server
	r    *Request
	done bool
	n    int
}

func (w *discardWriter) answered() bool      { return w.done }
func (w *discardWriter) send(b []byte) error { w.done = true; w.n += len(b); return nil }
func (w *discardWriter) WriteMsg(m *dns.Msg) error {
	b, _ := w.s.pack(w.r, m, nil, false)
	w.s.logQuery(w.r, b, m)
	return w.send(b)
}
func (w *discardWriter) WriteWire(b []byte) error         { w.s.logQuery(w.r, b, nil); return w.send(b) }
func (w *discardWriter) Detach(r *Request) ResponseWriter { return &discardWriter{s: w.s, r: r} }

// BenchmarkServeCacheHit is the CPU cost of one cached answer without the
// sockets: parse, tenant, policy, cache lookup, patching, query-log event.
// The serial variants run on one goroutine locked to its thread and also
// report that thread's CPU time per query (cpu-ns/op), which does not
// count the time spent waiting for a core on a busy machine.
func BenchmarkServeCacheHit(b *testing.B) {
	b.Run("detector", func(b *testing.B) { benchServeCacheHit(b, true) })
	b.Run("no-detector", func(b *testing.B) { benchServeCacheHit(b, false) })
	b.Run("serial/detector", func(b *testing.B) { benchServeCacheHitSerial(b, true) })
	b.Run("serial/no-detector", func(b *testing.B) { benchServeCacheHitSerial(b, false) })
}

func benchServeCacheHitSerial(b *testing.B, det bool) {
	srv, cache := benchServerDet(b, new(countSink), det)
	qs := benchQueries(b, 10000)
	client := netip.MustParseAddrPort("127.0.0.1:40000")
	r := new(Request)
	w := &discardWriter{s: srv, r: r}
	for _, q := range qs { // warm
		w.done = false
		srv.serve(w, r, q, client, false, srv.now())
	}
	for len(cache.flightsSnapshot()) > 0 {
		runtime.Gosched()
	}
	b.ReportAllocs()
	b.ResetTimer()
	stop := cpuTimer(b)
	for i := 0; i < b.N; i++ {
		w.done = false
		srv.serve(w, r, qs[i%len(qs)], client, false, srv.now())
	}
	stop()
	if cache.Stats().Hits < uint64(b.N) {
		b.Fatalf("hits %d < %d", cache.Stats().Hits, b.N)
	}
}

func benchServeCacheHit(b *testing.B, det bool) {
	srv, cache := benchServerDet(b, new(countSink), det)
	qs := benchQueries(b, 10000)
	client := netip.MustParseAddrPort("127.0.0.1:40000")
	{ // warm
		r := new(Request)
		for _, q := range qs {
			srv.serve(&discardWriter{s: srv, r: r}, r, q, client, false, srv.now())
		}
		for len(cache.flightsSnapshot()) > 0 {
			runtime.Gosched()
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := new(Request)
		w := &discardWriter{s: srv, r: r}
		i := 0
		for pb.Next() {
			w.done = false
			srv.serve(w, r, qs[i%len(qs)], client, false, srv.now())
			i++
		}
	})
	if cache.Stats().Hits < uint64(b.N) {
		b.Fatalf("hits %d < %d", cache.Stats().Hits, b.N)
	}
}

func (c *Cache) flightsSnapshotBench() int { return len(c.flightsSnapshot()) }

// BenchmarkUDPCacheHit measures cached answers over loopback UDP, one
// client socket per goroutine, one query in flight each (latency-bound).
func BenchmarkUDPCacheHit(b *testing.B) {
	srv, _ := benchServer(b, new(countSink))
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	qs := benchQueries(b, 1000)
	addr := net.UDPAddrFromAddrPort(srv.Addr())
	c, _ := net.DialUDP("udp", nil, addr)
	buf := make([]byte, 2048)
	for _, q := range qs {
		c.Write(q)
		c.Read(buf)
	}
	c.Close()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.DialUDP("udp", nil, addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 2048)
		i := 0
		for pb.Next() {
			if _, err := c.Write(qs[i%len(qs)]); err != nil {
				b.Error(err)
				return
			}
			if _, err := c.Read(buf); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkCacheMemory reports the heap held per cached entry (an A
// answer with one record, names like hx1234.bench.test.) next to the
// cache's own accounting of it: "inserted" after one miss per name,
// "hit" after a second query per name (which attaches the query-log data
// to the entry). The server runs without the Detector, whose bounded
// memo of names is not the cache's.
func BenchmarkCacheMemory(b *testing.B) {
	for _, hits := range []int{0, 1} {
		name := map[int]string{0: "inserted", 1: "hit"}[hits]
		b.Run(name, func(b *testing.B) { benchCacheMemory(b, hits) })
	}
}

func benchCacheMemory(b *testing.B, hits int) {
	const n = 100000
	for i := 0; i < b.N; i++ {
		srv, cache := benchServerDet(b, detect.Discard, false)
		qs := benchQueries(b, n)
		for j := range qs {
			qs[j][13] = 'x' // distinct from benchQueries' other users
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := new(Request)
		client := netip.MustParseAddrPort("127.0.0.1:40000")
		for pass := 0; pass <= hits; pass++ {
			for _, q := range qs {
				srv.serve(&discardWriter{s: srv, r: r}, r, q, client, false, srv.now())
			}
			for cache.flightsSnapshotBench() > 0 {
				runtime.Gosched()
			}
		}
		runtime.GC()
		runtime.GC() // sync.Pool buffers live one collection longer
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(qs)
		st := cache.Stats()
		if st.Entries != n {
			b.Fatalf("%d entries, want %d", st.Entries, n)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(st.Entries), "heap-bytes/entry")
		b.ReportMetric(float64(st.Bytes)/float64(st.Entries), "accounted-bytes/entry")
		runtime.KeepAlive(cache)
	}
}
