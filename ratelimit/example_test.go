package ratelimit_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/jichitai/seccloud/ratelimit"
)

// A request limiter: 2 per second, bursts of 3, judged at explicit times.
func ExampleLimiter() {
	l, err := ratelimit.New(ratelimit.Config{Rate: 2, Burst: 3})
	if err != nil {
		panic(err)
	}
	t := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	for i := range 5 {
		fmt.Println("request", i, l.AllowN(t, 1))
	}
	fmt.Println("500ms later:", l.AllowN(t.Add(500*time.Millisecond), 1))
	// Output:
	// request 0 true
	// request 1 true
	// request 2 true
	// request 3 false
	// request 4 false
	// 500ms later: true
}

// A bad configuration names its field.
func ExampleNew_badConfig() {
	_, err := ratelimit.New(ratelimit.Config{Rate: 100, Burst: -1})
	fmt.Println(err)
	// Output:
	// ratelimit: invalid Burst: must be >= 1, got -1
}

// A limit per client address, as a WAF uses it.
func ExampleKeyed() {
	perClient, err := ratelimit.NewKeyed[netip.Addr](ratelimit.KeyedConfig{Rate: 1, Burst: 2, MaxKeys: 1 << 16})
	if err != nil {
		panic(err)
	}
	t := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	bot, visitor := netip.MustParseAddr("127.0.0.66"), netip.MustParseAddr("127.0.1.5")
	fmt.Println(perClient.AllowN(t, bot, 1), perClient.AllowN(t, bot, 1), perClient.AllowN(t, bot, 1))
	fmt.Println("visitor:", perClient.AllowN(t, visitor, 1))
	// Output:
	// true true false
	// visitor: true
}

// At most two requests of a sender in flight, one more may wait.
func ExampleConcurrency() {
	c, err := ratelimit.NewConcurrency[string](ratelimit.ConcurrencyConfig{MaxInFlight: 2, MaxQueue: 1, QueueTimeout: time.Millisecond})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	fmt.Println(c.Acquire(ctx, "sender@example.jp"))
	fmt.Println(c.Acquire(ctx, "sender@example.jp"))
	fmt.Println(c.Acquire(ctx, "sender@example.jp")) // waits 1ms in the queue
	c.Release("sender@example.jp")
	fmt.Println(c.InFlight("sender@example.jp"))
	// Output:
	// <nil>
	// <nil>
	// ratelimit: queue timeout after 1ms
	// 1
}

// Shaping a writer to a byte budget; a net.Conn is wrapped the same way
// with NewConn(conn, readBudget, writeBudget).
func ExampleNewWriter() {
	budget, err := ratelimit.New(ratelimit.Config{Rate: 1 << 20, Burst: 64 << 10}) // 1 MiB/s
	if err != nil {
		panic(err)
	}
	var sink bytes.Buffer
	w := ratelimit.NewWriter(&sink, budget)
	n, err := w.Write([]byte(strings.Repeat("x", 1000))) // within the burst: no wait
	fmt.Println(n, err)
	// Output:
	// 1000 <nil>
}

// Sharing 100 Mbit/s between tenants by weight, tenant b capped.
func ExampleFair() {
	f, err := ratelimit.NewFair(ratelimit.FairConfig{
		Capacity: 100e6 / 8, // bytes per second
		Burst:    64 << 10,
		Tenants: []ratelimit.FairTenantConfig{
			{ID: "a", Weight: 2},
			{ID: "b", Weight: 1, Ceiling: 20e6 / 8},
		},
	})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	fmt.Println(f.WaitN(context.Background(), "a", 1500))
	fmt.Println(f.WaitN(context.Background(), "c", 1500))
	b, _ := f.Tenant("b") // a Budget for NewConn
	fmt.Println(b.Burst())
	// Output:
	// <nil>
	// ratelimit: unknown tenant: "c"
	// 65536
}

// A limit shared by the nodes of a cluster. With Redis:
//
//	store, _ := ratelimit.NewRedisStore(ratelimit.RedisStoreConfig{Client: redis.NewClient(opts)})
//
// The example uses the in-memory store so that it runs anywhere.
func ExampleShared() {
	store, err := ratelimit.NewMemoryStore(ratelimit.MemoryStoreConfig{})
	if err != nil {
		panic(err)
	}
	sh, err := ratelimit.NewShared(ratelimit.SharedConfig{Store: store, Limit: ratelimit.Limit{Rate: 0.01, Burst: 2}, Nodes: 3})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for range 3 {
		r := sh.Allow(ctx, "mail-sender:a@example.jp")
		fmt.Println(r.Allowed, r.Remaining)
	}
	// Output:
	// true 1
	// true 0
	// false 0
}

// A kernel shaping plan for two tenants.
func ExampleNewPlan() {
	p, err := ratelimit.NewPlan(ratelimit.PlanConfig{
		Device:   "eth1",
		LinkRate: 1e9,
		Tenants: []ratelimit.TenantBandwidth{
			{ID: "a", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")}, Rate: 100e6, Ceil: 300e6},
		},
	})
	if err != nil {
		panic(err)
	}
	for _, c := range p.Setup {
		fmt.Println("tc", strings.Join(c, " "))
	}
	// Output:
	// tc qdisc add dev eth1 root handle 1: htb default 2
	// tc class add dev eth1 parent 1: classid 1:1 htb rate 1000000000bit ceil 1000000000bit quantum 1514
	// tc class add dev eth1 parent 1:1 classid 1:2 htb rate 900000000bit ceil 1000000000bit quantum 1514
	// tc qdisc add dev eth1 parent 1:2 fq_codel
	// tc class add dev eth1 parent 1:1 classid 1:10 htb rate 100000000bit ceil 300000000bit quantum 1514
	// tc qdisc add dev eth1 parent 1:10 fq_codel
	// tc filter add dev eth1 parent 1: protocol ip prio 10 u32 match ip dst 127.0.1.0/24 flowid 1:10
}
