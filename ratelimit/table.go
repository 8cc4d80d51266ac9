package ratelimit

import (
	"hash/maphash"
	"sync"
)

// table is a bounded map from keys to GCRA states, split into shards to
// spread lock contention. Each shard holds at most perShard keys; when a
// shard is full, inserting a key evicts one chosen by the CLOCK algorithm
// (second chance, the usual cheap approximation of LRU):
//
//   - a key whose bucket is full again (TAT <= now) is evicted at once: its
//     state says nothing that absence does not, so forgetting it is free;
//   - otherwise a key used since the hand last passed gets a second chance
//     (its reference bit is cleared), and the first key not used since is
//     evicted.
//
// A hit only sets a bit, so unlike a linked-list LRU it touches no other
// entry: this keeps lookups over a million keys cheap.
type table[K comparable] struct {
	seed     maphash.Seed
	shards   []tshard[K]
	mask     uint64
	perShard int
}

type tshard[K comparable] struct {
	mu    sync.Mutex
	index map[K]tentry
	ring  []K // the keys in CLOCK order
	hand  int
	_     [64]byte // keep shards on separate cache lines
}

// tentry is kept in the map itself, so that a hit touches one place in
// memory: with a million keys, every extra pointer to follow is a cache
// miss.
type tentry struct {
	tat int64
	pos int32 // index in ring
	ref bool  // used since the hand last passed
}

// newTable returns a table holding at most maxKeys keys.
func newTable[K comparable](maxKeys int) *table[K] {
	n := 64
	for n > 1 && maxKeys/n < 64 {
		n /= 2
	}
	t := &table[K]{
		seed:     maphash.MakeSeed(),
		shards:   make([]tshard[K], n),
		mask:     uint64(n - 1),
		perShard: maxKeys / n,
	}
	for i := range t.shards {
		t.shards[i].index = make(map[K]tentry)
	}
	return t
}

func (t *table[K]) shard(key K) *tshard[K] {
	return &t.shards[maphash.Comparable(t.seed, key)&t.mask]
}

// take applies g.take to key's state at now and returns the resulting
// state. An absent key has a full bucket; it is inserted only when the take
// succeeds.
func (t *table[K]) take(key K, g *gcra, now, cost int64) (int64, bool) {
	s := t.shard(key)
	s.mu.Lock()
	if e, ok := s.index[key]; ok {
		nt, allowed := g.take(e.tat, now, cost)
		if allowed || !e.ref {
			if allowed {
				e.tat = nt
			}
			e.ref = true
			s.index[key] = e
		}
		s.mu.Unlock()
		return nt, allowed
	}
	nt, allowed := g.take(-timeLimit, now, cost)
	if allowed {
		s.insert(key, nt, now, t.perShard)
	}
	s.mu.Unlock()
	return nt, allowed
}

// peek returns key's state, or -timeLimit (full bucket) if absent.
func (t *table[K]) peek(key K) int64 {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.index[key]; ok {
		return e.tat
	}
	return -timeLimit
}

// remove forgets key.
func (t *table[K]) remove(key K) {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.index[key]
	if !ok {
		return
	}
	delete(s.index, key)
	last := int32(len(s.ring) - 1)
	if e.pos != last {
		moved := s.ring[last]
		s.ring[e.pos] = moved
		me := s.index[moved]
		me.pos = e.pos
		s.index[moved] = me
	}
	var zero K
	s.ring[last] = zero
	s.ring = s.ring[:last]
	if s.hand >= len(s.ring) {
		s.hand = 0
	}
}

func (t *table[K]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.index)
		s.mu.Unlock()
	}
	return n
}

// insert adds key, evicting one key first if the shard is full. The caller
// holds s.mu and has checked that key is absent.
func (s *tshard[K]) insert(key K, tat, now int64, limit int) {
	if len(s.ring) < limit {
		s.index[key] = tentry{tat: tat, pos: int32(len(s.ring))}
		s.ring = append(s.ring, key)
		return
	}
	if limit == 0 {
		return
	}
	// At most two turns of the hand: the first clears every reference
	// bit it passes, so the second finds a victim.
	for {
		k := s.ring[s.hand]
		e := s.index[k]
		if e.tat <= now || !e.ref {
			delete(s.index, k)
			break
		}
		e.ref = false
		s.index[k] = e
		s.hand++
		if s.hand == len(s.ring) {
			s.hand = 0
		}
	}
	s.ring[s.hand] = key
	s.index[key] = tentry{tat: tat, pos: int32(s.hand)}
	s.hand++
	if s.hand == len(s.ring) {
		s.hand = 0
	}
}
