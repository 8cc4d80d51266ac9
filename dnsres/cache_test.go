package dnsres

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/dnsres/internal/wire"
)

// capWriter records what a Cache answers (directly or from a detached
// resolution).
type capWriter struct{ ch chan capResp }

type capResp struct {
	wire []byte   // WriteWire
	msg  *dns.Msg // WriteMsg
	r    *Request
}

func newCapWriter() *capWriter { return &capWriter{ch: make(chan capResp, 64)} }

func (w *capWriter) WriteWire(b []byte) error {
	w.ch <- capResp{wire: append([]byte(nil), b...)}
	return nil
}
func (w *capWriter) WriteMsg(m *dns.Msg) error      { w.ch <- capResp{msg: m}; return nil }
func (w *capWriter) Detach(*Request) ResponseWriter { return w }

// next waits for the next answer and unpacks it.
func (w *capWriter) next(t *testing.T) *dns.Msg {
	t.Helper()
	select {
	case c := <-w.ch:
		if c.msg != nil {
			return c.msg
		}
		m := new(dns.Msg)
		require.NoError(t, m.Unpack(c.wire))
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
		return nil
	}
}

type reqOpt struct {
	id       uint16
	rd, cd   bool
	edns, do bool
}

// testRequest builds a request as the server would after parsing it.
func testRequest(t testing.TB, name string, qtype uint16, start time.Time, o reqOpt) *Request {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id, m.RecursionDesired, m.CheckingDisabled = o.id, o.rd, o.cd
	if o.edns {
		m.SetEdns0(4096, o.do)
	}
	raw, err := m.Pack()
	require.NoError(t, err)
	r := new(Request)
	var q wire.Query
	require.NoError(t, wire.ParseQuery(raw, &q, r.keyBuf[:]))
	r.setQuery(raw, &q)
	r.Client, r.Start, r.ourUDP = netip.MustParseAddrPort("127.0.1.5:5353"), start, DefaultUDPSize
	return r
}

// fakeResolver answers from zone-file lines per question name, counts its
// calls, and fails while down is set.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][]string // name → records of the answer section
	ns      map[string][]string // name → records of the authority section
	rcode   map[string]int
	calls   atomic.Int64
	down    atomic.Bool
}

func (f *fakeResolver) Resolve(_ context.Context, q Question) (*dns.Msg, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return nil, errors.New("upstream down")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	m := new(dns.Msg)
	m.Rcode = f.rcode[q.Name]
	for _, s := range f.answers[q.Name] {
		rr, err := dns.NewRR(s)
		if err != nil {
			return nil, err
		}
		m.Answer = append(m.Answer, rr)
	}
	for _, s := range f.ns[q.Name] {
		rr, err := dns.NewRR(s)
		if err != nil {
			return nil, err
		}
		m.Ns = append(m.Ns, rr)
	}
	return m, nil
}

type testClock struct{ ns atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newTestCache(t *testing.T, res Resolver, cfg CacheConfig) (*Cache, *testClock) {
	t.Helper()
	clk := new(testClock)
	clk.ns.Store(time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	cfg.Resolver, cfg.Now = res, clk.Now
	c, err := NewCache(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, clk
}

func ttls(m *dns.Msg) []uint32 {
	var out []uint32
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if rr.Header().Rrtype != dns.TypeOPT {
				out = append(out, rr.Header().Ttl)
			}
		}
	}
	return out
}

// TestCacheTTLPatching: a hit is the stored message with the client's
// ID, flags, question case and OPT, and every TTL lowered by the entry's
// age; the entry lives for its smallest TTL.
func TestCacheTTLPatching(t *testing.T) {
	res := &fakeResolver{answers: map[string][]string{"www.example.test.": {
		"www.example.test. 600 IN CNAME host.example.test.",
		"host.example.test. 300 IN A 192.0.2.1",
		"host.example.test. 120 IN A 192.0.2.2",
	}}}
	c, clk := newTestCache(t, res, CacheConfig{NoPrefetch: true})
	w := newCapWriter()

	r := testRequest(t, "WwW.Example.TEST.", dns.TypeA, clk.Now(), reqOpt{id: 0x1234, rd: true})
	_, err := c.ServeDNS(context.Background(), w, r)
	require.NoError(t, err)
	m := w.next(t)
	assert.EqualValues(t, 0x1234, m.Id)
	assert.True(t, m.Response && m.RecursionDesired && m.RecursionAvailable)
	assert.Equal(t, "WwW.Example.TEST.", m.Question[0].Name, "question as asked")
	assert.Equal(t, []uint32{120, 120, 120}, ttls(m), "every TTL capped at the smallest")
	assert.Nil(t, m.IsEdns0())

	clk.Advance(45 * time.Second)
	r = testRequest(t, "www.EXAMPLE.test.", dns.TypeA, clk.Now(), reqOpt{id: 0x4321, edns: true})
	_, err = c.ServeDNS(context.Background(), w, r)
	require.NoError(t, err)
	m = w.next(t)
	assert.Equal(t, "cache", r.Source)
	assert.EqualValues(t, 0x4321, m.Id)
	assert.False(t, m.RecursionDesired)
	assert.False(t, m.CheckingDisabled)
	assert.Equal(t, "www.EXAMPLE.test.", m.Question[0].Name)
	assert.Equal(t, []uint32{75, 75, 75}, ttls(m), "120 − 45 s")
	require.NotNil(t, m.IsEdns0())
	assert.EqualValues(t, DefaultUDPSize, m.IsEdns0().UDPSize())
	assert.Equal(t, []string{"host.example.test.", "192.0.2.1", "192.0.2.2"}, r.Answers, "query-log answers")
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}, r.Resolved)
	assert.Equal(t, "www.example.test.", r.Name())
	assert.EqualValues(t, 1, res.calls.Load())

	clk.Advance(74*time.Second + 500*time.Millisecond) // 119.5 s old
	r = testRequest(t, "www.example.test.", dns.TypeA, clk.Now(), reqOpt{id: 7})
	_, _ = c.ServeDNS(context.Background(), w, r)
	m = w.next(t)
	assert.Equal(t, []uint32{1, 1, 1}, ttls(m), "whole seconds of age")
	assert.EqualValues(t, 1, res.calls.Load())

	clk.Advance(500 * time.Millisecond) // 120 s: expired
	r = testRequest(t, "www.example.test.", dns.TypeA, clk.Now(), reqOpt{id: 8})
	_, _ = c.ServeDNS(context.Background(), w, r)
	m = w.next(t)
	assert.Equal(t, []uint32{120, 120, 120}, ttls(m), "refreshed")
	assert.EqualValues(t, 2, res.calls.Load())
	assert.EqualValues(t, 8, m.Id)

	// CD is part of the key: its own entry, the bit echoed on hits.
	for i := 0; i < 2; i++ {
		r = testRequest(t, "www.example.test.", dns.TypeA, clk.Now(), reqOpt{id: 9, cd: true})
		_, _ = c.ServeDNS(context.Background(), w, r)
		m = w.next(t)
		assert.True(t, m.CheckingDisabled)
		assert.Len(t, m.Answer, 3)
	}
	assert.EqualValues(t, 3, res.calls.Load())
}

// TestCacheNegativeTTL: NXDOMAIN and NODATA are cached for
// min(SOA TTL, MINIMUM), the SOA's TTL patched like any other; without an
// SOA they are not cached.
func TestCacheNegativeTTL(t *testing.T) {
	soa := "example.test. 3600 IN SOA ns1.example.test. host.example.test. 1 3600 600 86400 60"
	res := &fakeResolver{
		ns:    map[string][]string{"nx.example.test.": {soa}, "www.example.test.": {soa}},
		rcode: map[string]int{"nx.example.test.": dns.RcodeNameError, "nosoa.example.test.": dns.RcodeNameError},
	}
	c, clk := newTestCache(t, res, CacheConfig{NoPrefetch: true})
	w := newCapWriter()
	ask := func(name string, qtype uint16) *dns.Msg {
		r := testRequest(t, name, qtype, clk.Now(), reqOpt{id: 1})
		_, err := c.ServeDNS(context.Background(), w, r)
		require.NoError(t, err)
		return w.next(t)
	}
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
	}{
		{"nx.example.test.", dns.TypeA, dns.RcodeNameError},
		{"www.example.test.", dns.TypeMX, dns.RcodeSuccess},
	} {
		m := ask(tc.name, tc.qtype)
		assert.Equal(t, tc.rcode, m.Rcode, tc.name)
		assert.Equal(t, []uint32{60}, ttls(m), tc.name)
	}
	clk.Advance(20 * time.Second)
	before := res.calls.Load()
	for _, name := range []string{"nx.example.test.", "www.example.test."} {
		qtype := dns.TypeA
		if name == "www.example.test." {
			qtype = dns.TypeMX
		}
		m := ask(name, qtype)
		assert.Equal(t, []uint32{40}, ttls(m), name)
	}
	assert.Equal(t, before, res.calls.Load(), "answered from the cache")

	ask("nosoa.example.test.", dns.TypeA)
	ask("nosoa.example.test.", dns.TypeA)
	assert.Equal(t, before+2, res.calls.Load(), "no SOA: not cached")
}

// TestCacheServeStale: RFC 8767. An expired entry is answered (TTL
// min(TTL, 30)) when the refresh fails; for the 30 s after a failure the
// resolver is not asked again; past StaleTTL the answer is SERVFAIL; with
// serve-stale off, SERVFAIL at once.
func TestCacheServeStale(t *testing.T) {
	for _, tc := range []struct {
		name     string
		staleTTL time.Duration
	}{
		{"on", time.Hour},
		{"off", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := &fakeResolver{answers: map[string][]string{"www.example.test.": {"www.example.test. 100 IN A 192.0.2.1"}}}
			c, clk := newTestCache(t, res, CacheConfig{NoPrefetch: true, StaleTTL: tc.staleTTL, StaleAnswerTimeout: -1})
			w := newCapWriter()
			ask := func() (*dns.Msg, *Request) {
				r := testRequest(t, "www.example.test.", dns.TypeA, clk.Now(), reqOpt{id: 9})
				_, err := c.ServeDNS(context.Background(), w, r)
				require.NoError(t, err)
				return w.next(t), r
			}
			m, _ := ask()
			require.Len(t, m.Answer, 1)
			res.down.Store(true)
			clk.Advance(150 * time.Second) // expired 50 s ago
			m, _ = ask()
			if tc.staleTTL < 0 {
				assert.Equal(t, dns.RcodeServerFailure, m.Rcode)
				assert.Zero(t, c.Stats().Stale)
				return
			}
			require.Equal(t, dns.RcodeSuccess, m.Rcode)
			assert.Equal(t, []uint32{30}, ttls(m), "stale answers carry min(TTL, 30)")
			assert.EqualValues(t, 2, res.calls.Load())

			clk.Advance(10 * time.Second) // within the failure recheck timer
			m, r := ask()
			assert.Equal(t, []uint32{30}, ttls(m))
			assert.Equal(t, "stale", r.Source)
			assert.Equal(t, []string{"192.0.2.1"}, r.Answers)
			assert.EqualValues(t, 2, res.calls.Load(), "not asked again within 30 s")

			clk.Advance(25 * time.Second) // timer passed: asked again, fails, stale
			m, _ = ask()
			assert.Equal(t, []uint32{30}, ttls(m))
			assert.EqualValues(t, 3, res.calls.Load())
			assert.EqualValues(t, 3, c.Stats().Stale)

			res.down.Store(false)
			clk.Advance(31 * time.Second)
			m, _ = ask()
			assert.Equal(t, []uint32{100}, ttls(m), "fresh again once the upstream answers")

			res.down.Store(true)
			clk.Advance(100*time.Second + time.Hour) // past the stale window
			m, _ = ask()
			assert.Equal(t, dns.RcodeServerFailure, m.Rcode)
		})
	}
}

// TestCachePrefetch: a hit in the last tenth of the TTL refreshes the
// entry in the background, once.
func TestCachePrefetch(t *testing.T) {
	res := &fakeResolver{answers: map[string][]string{"www.example.test.": {"www.example.test. 100 IN A 192.0.2.1"}}}
	c, clk := newTestCache(t, res, CacheConfig{})
	w := newCapWriter()
	ask := func() *dns.Msg {
		r := testRequest(t, "www.example.test.", dns.TypeA, clk.Now(), reqOpt{id: 3})
		_, err := c.ServeDNS(context.Background(), w, r)
		require.NoError(t, err)
		return w.next(t)
	}
	ask()
	clk.Advance(50 * time.Second)
	ask()
	assert.EqualValues(t, 1, res.calls.Load(), "no prefetch at half the TTL")
	clk.Advance(41 * time.Second)
	m := ask()
	assert.Equal(t, []uint32{9}, ttls(m), "answered from the old entry")
	require.Eventually(t, func() bool { return res.calls.Load() == 2 && len(c.flightsSnapshot()) == 0 }, 5*time.Second, 10*time.Millisecond)
	m = ask()
	assert.Equal(t, []uint32{100}, ttls(m), "the prefetched entry")
	assert.EqualValues(t, 1, c.Stats().Prefetches)
}

// TestCacheAccounting: Bytes is exactly the sum of the entries' sizes
// (log data included once attached), stays within MaxBytes by eviction,
// and Flush empties it.
func TestCacheAccounting(t *testing.T) {
	res := ResolverFunc(func(_ context.Context, q Question) (*dns.Msg, error) {
		m := new(dns.Msg)
		rr, err := dns.NewRR(q.Name + " 3600 IN A 198.18.0.1")
		m.Answer = append(m.Answer, rr)
		return m, err
	})
	const maxBytes = 64 * 2048
	c, clk := newTestCache(t, res, CacheConfig{MaxBytes: maxBytes})
	w := newCapWriter()
	sum := func() (n, bytes int64) {
		for i := range c.shards {
			sh := &c.shards[i]
			sh.mu.RLock()
			for _, e := range sh.m {
				n++
				bytes += e.size()
			}
			sh.mu.RUnlock()
		}
		return n, bytes
	}
	ask := func(i int) {
		r := testRequest(t, fmt.Sprintf("h%05d.bench.test.", i), dns.TypeA, clk.Now(), reqOpt{id: uint16(i)})
		_, err := c.ServeDNS(context.Background(), w, r)
		require.NoError(t, err)
		w.next(t)
	}
	for i := 0; i < 200; i++ {
		ask(i)
	}
	require.Eventually(t, func() bool { return len(c.flightsSnapshot()) == 0 }, 5*time.Second, 10*time.Millisecond)
	st := c.Stats()
	n, bytes := sum()
	assert.Equal(t, st.Entries, n)
	assert.Equal(t, st.Bytes, bytes, "accounted bytes are the entries' sizes")
	e := c.get(testRequest(t, "h00001.bench.test.", dns.TypeA, clk.Now(), reqOpt{}).key)
	require.NotNil(t, e)
	// 48-byte struct + 64-byte block (8 header + 2 offset + 51 message) + map share.
	assert.EqualValues(t, entryStructSize+64+mapSlotBytes, e.size())

	ask(1) // a hit attaches the query-log data
	ld := e.logd.Load()
	require.NotNil(t, ld)
	assert.EqualValues(t, int64(entryStructSize+64+mapSlotBytes)+ld.size(), e.size())
	assert.Equal(t, st.Bytes+ld.size(), c.Stats().Bytes)

	for i := 200; i < 3000; i++ {
		ask(i)
	}
	require.Eventually(t, func() bool { return len(c.flightsSnapshot()) == 0 }, 5*time.Second, 10*time.Millisecond)
	st = c.Stats()
	n, bytes = sum()
	assert.Equal(t, st.Bytes, bytes)
	assert.Equal(t, st.Entries, n)
	assert.LessOrEqual(t, st.Bytes, int64(maxBytes))
	assert.Positive(t, st.Evictions)
	assert.Less(t, st.Entries, int64(3000))
	c.Flush()
	assert.Zero(t, c.Stats().Bytes)
	assert.Zero(t, c.Stats().Entries)
}

// TestCacheKeyVerified: the map is keyed by a hash; an entry found under
// a question's hash answers it only if its stored question (and DO/CD
// flags) are that question.
func TestCacheKeyVerified(t *testing.T) {
	res := &fakeResolver{answers: map[string][]string{
		"a.example.test.": {"a.example.test. 300 IN A 192.0.2.1"},
		"b.example.test.": {"b.example.test. 300 IN A 192.0.2.2"},
	}}
	c, clk := newTestCache(t, res, CacheConfig{})
	w := newCapWriter()
	ra := testRequest(t, "a.example.test.", dns.TypeA, clk.Now(), reqOpt{})
	_, _ = c.ServeDNS(context.Background(), w, ra)
	w.next(t)
	ea := c.get(ra.key)
	require.NotNil(t, ea)
	rb := testRequest(t, "b.example.test.", dns.TypeA, clk.Now(), reqOpt{})
	// Plant a's entry under b's hash, as a hash collision would.
	hb := maphash.Bytes(c.seed, rb.key)
	sh := c.shard(hb)
	sh.mu.Lock()
	sh.m[hb] = ea
	sh.mu.Unlock()
	assert.Nil(t, c.get(rb.key), "a's entry does not answer b")
	_, _ = c.ServeDNS(context.Background(), w, rb)
	m := w.next(t)
	require.Len(t, m.Answer, 1)
	assert.Equal(t, "192.0.2.2", m.Answer[0].(*dns.A).A.String())

	rdo := testRequest(t, "a.example.test.", dns.TypeA, clk.Now(), reqOpt{edns: true, do: true})
	assert.Nil(t, c.get(rdo.key), "DO set: another key")
	assert.False(t, ea.matches(rdo.key))
	assert.True(t, ea.matches(ra.key))
}

func TestEntrySizes(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) == 8 {
		assert.Equal(t, 48, entryStructSize, "entry: one 48-byte size class")
		assert.Equal(t, 64, logDataStructSize, "logData: one 64-byte size class")
	}
	for n, want := range map[int]int{0: 0, 1: 8, 8: 8, 9: 16, 61: 64, 64: 64, 65: 80, 1000: 1024, 32768: 32768, 32769: 40960} {
		assert.Equal(t, want, allocSize(n), n)
	}
}

// FuzzCacheEntry feeds arbitrary packed responses to the cache's wire
// code: building an entry (TTL offsets), reading its query-log data and
// answering from it with TTLs patched. It must never panic; a message
// that miekg/dns unpacks must still unpack after patching, with the
// client's ID, the same response code, and no TTL above the stored one.
func FuzzCacheEntry(f *testing.F) {
	for _, s := range []string{
		"www.example.test. 300 IN A 192.0.2.1",
		"www.example.test. 300 IN CNAME host.example.test.",
		"www.example.test. 60 IN MX 10 mail.example.test.",
		"www.example.test. 60 IN TXT \"hello\"",
	} {
		rr, _ := dns.NewRR(s)
		m := new(dns.Msg)
		m.SetQuestion("www.example.test.", dns.TypeA)
		m.Id = 0
		m.Response = true
		m.Answer = []dns.RR{rr, rr}
		m.Compress = true
		b, _ := m.Pack()
		f.Add(b, uint32(300), uint32(10), false)
	}
	f.Add([]byte{0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xC0, 0x0C, 0, 1, 0, 1}, uint32(5), uint32(1), true)
	c, err := NewCache(CacheConfig{Resolver: ResolverFunc(func(context.Context, Question) (*dns.Msg, error) { return nil, errors.New("no") })})
	if err != nil {
		f.Fatal(err)
	}
	r := testRequest(f, "WWW.example.test.", dns.TypeA, time.Unix(1000, 0), reqOpt{id: 0xBEEF, rd: true})
	f.Fuzz(func(t *testing.T, msg []byte, ttl, age uint32, stale bool) {
		// Any bytes: no panic, offsets inside the message.
		now := r.Start.UnixNano()
		if b, err := buildEntry(msg, ttl, 0); err == nil {
			e := &entry{b: b, stored: now - int64(age)*1e9}
			require.Equal(t, msg, e.msg())
			for i := 0; i < e.nTTL(); i++ {
				require.LessOrEqual(t, e.ttlOff(i)+4, len(msg))
			}
			_ = e.buildLog()
			_ = e.matches(r.key)
			w := newCapWriter()
			_, _ = c.answer(w, r, e, nil, now, stale)
		}
		// What the cache stores is always packed by miekg/dns (compression
		// pointers only to names): the answer unpacks, with the patches.
		orig := new(dns.Msg)
		if orig.Unpack(msg) != nil || orig.IsEdns0() != nil {
			return
		}
		orig.Compress = true
		canon, err := orig.Pack()
		if err != nil || len(canon) > maxStoredMessage {
			return
		}
		b, err := buildEntry(canon, ttl, 0)
		require.NoError(t, err)
		e := &entry{b: b, stored: now - int64(age)*1e9}
		w := newCapWriter()
		rc, err := c.answer(w, r, e, e.buildLog(), now, stale)
		require.NoError(t, err)
		got := <-w.ch
		if got.msg != nil { // too big for the client: truncated by the writer
			return
		}
		out := new(dns.Msg)
		require.NoError(t, out.Unpack(got.wire))
		assert.EqualValues(t, 0xBEEF, out.Id)
		assert.Equal(t, orig.Rcode, out.Rcode)
		assert.Equal(t, orig.Rcode&0xF, rc)
		want := ttls(orig)
		for i, v := range want {
			switch {
			case stale:
				want[i] = min(v, uint32(DefaultStaleAnswerTTL/time.Second))
			case v > age:
				want[i] = v - age
			default:
				want[i] = 0
			}
		}
		assert.Equal(t, want, ttls(out))
	})
}
