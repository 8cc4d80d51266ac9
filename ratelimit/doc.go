// Package ratelimit is the one rate-limiting mechanism of seccloud: token
// buckets for requests and bytes, per-key limits with a hard cap on keys,
// concurrency caps, bandwidth shaping of readers, writers and connections,
// weighted fair sharing of a global capacity among tenants, limits shared
// by several nodes through Redis, and a generator of Linux tc plans for
// shaping tenants in the kernel. It imports no other package of seccloud.
//
// The kinds of limiter:
//
//   - Limiter: one token bucket (GCRA on one atomic word, lock-free).
//   - Keyed: one bucket per key (client address, tenant, sender), at most
//     MaxKeys keys, CLOCK eviction of quiet keys.
//   - Concurrency: at most MaxInFlight requests per key, with an optional
//     bounded queue and queue timeout.
//   - Reader, Writer, Conn: charge a Budget (a byte Limiter, or a tenant of
//     a Fair scheduler) for the bytes that pass.
//   - Fair: a global capacity shared by weight among tenants, each with an
//     optional ceiling; work-conserving.
//   - Shared: a keyed limit kept in a Store (RedisStore across nodes,
//     MemoryStore alone) that falls back to local limits when the store is
//     unreachable, and recovers by itself.
//   - Plan: HTB + fq_codel tc commands per tenant, for multi-Gbit/s shaping.
//
// Every constructor takes a config struct, validates it and reports the
// faulty field in a *ConfigError. Every limiter that reads a clock has a
// method taking an explicit time (AllowN(t, n)) so that tests are
// deterministic.
//
// Usage, limiting each client address to 10 requests per second with
// bursts of 20, and a tenant's connections to 100 Mbit/s in each direction:
//
//	perClient, err := ratelimit.NewKeyed[netip.Addr](ratelimit.KeyedConfig{
//		Rate: 10, Burst: 20, MaxKeys: 1 << 20,
//	})
//	if err != nil {
//		return err
//	}
//	if !perClient.Allow(clientAddr) {
//		// answer 429 / refuse
//	}
//
//	down, _ := ratelimit.New(ratelimit.Config{Rate: 100e6 / 8, Burst: 64 << 10})
//	up, _ := ratelimit.New(ratelimit.Config{Rate: 100e6 / 8, Burst: 64 << 10})
//	conn = ratelimit.NewConn(conn, down, up) // reads charge down, writes up
package ratelimit
