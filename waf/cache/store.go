package cache

import (
	"net/http"
	"strings"
)

// lookup returns the stored variant of key matching r (promoting it in
// the LRU order, and from the disk tier into memory) and whether any
// variant of key is stored.
func (c *Cache) lookup(key string, r *http.Request) (*entry, bool) {
	c.mu.Lock()
	vs := c.m[key]
	for _, e := range vs {
		if e.matches(r) {
			c.moveToFront(e)
			c.mu.Unlock()
			return e, true
		}
	}
	c.mu.Unlock()
	if c.disk == nil {
		return nil, len(vs) > 0
	}
	e, any := c.disk.get(key, r)
	if e != nil {
		c.insert(e)
	}
	return e, any || len(vs) > 0
}

// insert stores e, replacing the variant with the same Vary values, and
// evicts least recently used entries while the memory tier and the disk
// tier's index together exceed MaxBytes (to disk when the disk tier is
// on).
func (c *Cache) insert(e *entry) {
	c.mu.Lock()
	vs := c.m[e.primary]
	replaced := false
	for i, o := range vs {
		if sameVariant(o, e) {
			c.unlink(o)
			c.bytes -= o.size
			vs[i] = e
			replaced = true
			break
		}
	}
	if !replaced {
		vs = append(vs, e)
	}
	c.m[e.primary] = vs
	c.pushFront(e)
	c.bytes += e.size
	var victims []*entry
	// The disk tier's index counts in MaxBytes too, including the index
	// entries the victims are about to take.
	var idx int64
	if c.disk != nil {
		idx = c.disk.idxBytes.Load()
	}
	for c.bytes+idx > c.cfg.MaxBytes && c.tail != nil && c.tail != e {
		v := c.tail
		c.removeLocked(v)
		victims = append(victims, v)
		c.evictions.Add(1)
		if c.disk != nil {
			idx += refSize(v.primary, v.varyNames, v.varyVals)
		}
	}
	c.mu.Unlock()
	if c.disk != nil {
		c.disk.drop(e.primary, e) // the memory copy is newer
		for _, v := range victims {
			c.disk.put(v, c.log)
		}
	}
}

func sameVariant(a, b *entry) bool {
	if len(a.varyNames) != len(b.varyNames) {
		return false
	}
	for i := range a.varyNames {
		if a.varyNames[i] != b.varyNames[i] || a.varyVals[i] != b.varyVals[i] {
			return false
		}
	}
	return true
}

// removeLocked takes e out of the map and the LRU list.
func (c *Cache) removeLocked(e *entry) {
	c.unlink(e)
	c.bytes -= e.size
	vs := c.m[e.primary]
	for i, o := range vs {
		if o == e {
			vs = append(vs[:i:i], vs[i+1:]...)
			break
		}
	}
	if len(vs) == 0 {
		delete(c.m, e.primary)
	} else {
		c.m[e.primary] = vs
	}
}

func (c *Cache) pushFront(e *entry) {
	e.prev, e.next = nil, c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}

func (c *Cache) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else if c.head == e {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else if c.tail == e {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (c *Cache) moveToFront(e *entry) {
	if c.head == e {
		return
	}
	c.unlink(e)
	c.pushFront(e)
}

// invalidate removes every stored variant of the primary key.
func (c *Cache) invalidate(key string) int {
	c.mu.Lock()
	vs := append([]*entry(nil), c.m[key]...)
	for _, e := range vs {
		c.removeLocked(e)
	}
	c.mu.Unlock()
	n := len(vs)
	if c.disk != nil {
		n += c.disk.dropKey(key)
	}
	return n
}

// Purge removes the stored responses of one URL ("https://host/path?q";
// "host/path" or "//host/path" purge both schemes) and returns how many
// were removed. The host is compared case-insensitively.
func (c *Cache) Purge(url string) int {
	n := 0
	for _, k := range purgeKeys(url) {
		n += c.invalidate(k)
	}
	return n
}

// PurgePrefix removes the stored responses whose URL starts with prefix
// (same forms as Purge, e.g. "https://www.city.example.jp/news/") and
// returns how many were removed.
func (c *Cache) PurgePrefix(prefix string) int {
	n := 0
	for _, p := range purgeKeys(prefix) {
		c.mu.Lock()
		var vs []*entry
		for k, es := range c.m {
			if strings.HasPrefix(k, p) {
				vs = append(vs, es...)
			}
		}
		for _, e := range vs {
			c.removeLocked(e)
		}
		c.mu.Unlock()
		n += len(vs)
		if c.disk != nil {
			n += c.disk.dropPrefix(p)
		}
	}
	return n
}

// purgeKeys turns a purge target into primary-key forms.
func purgeKeys(u string) []string {
	u = strings.TrimSpace(u)
	lowerHost := func(s string) string {
		h, rest, _ := strings.Cut(s, "/")
		if rest == "" && !strings.Contains(s, "/") {
			return strings.ToLower(h)
		}
		return strings.ToLower(h) + "/" + rest
	}
	switch {
	case strings.HasPrefix(u, "http://"):
		return []string{"http://" + lowerHost(u[7:])}
	case strings.HasPrefix(u, "https://"):
		return []string{"https://" + lowerHost(u[8:])}
	}
	u = lowerHost(strings.TrimPrefix(u, "//"))
	if u == "" {
		return nil
	}
	return []string{"http://" + u, "https://" + u}
}

// Stats are counters since New.
type Stats struct {
	Hits, Misses, Stores, Evictions int64
	// Entries and Bytes are the memory tier's current content; Bytes is
	// the heap memory it holds, as bounded by Config.MaxBytes.
	Entries int
	Bytes   int64
	// DiskEntries and DiskBytes are the disk tier's (files);
	// DiskIndexBytes is the memory its index holds (part of MaxBytes).
	DiskEntries    int
	DiskBytes      int64
	DiskIndexBytes int64
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	n := 0
	for _, vs := range c.m {
		n += len(vs)
	}
	s := Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Stores: c.stores.Load(),
		Evictions: c.evictions.Load(), Entries: n, Bytes: c.bytes}
	c.mu.Unlock()
	if c.disk != nil {
		s.DiskEntries, s.DiskBytes, s.DiskIndexBytes = c.disk.stats()
	}
	return s
}
