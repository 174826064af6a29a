// The structure cache: decoded envelopes and MIME trees of recently
// fetched bodies, so that FETCH ENVELOPE/BODYSTRUCTURE and section fetches
// of the same messages (a client paging through its list, several devices
// of one account) skip the database read and the JSON decoding, which were
// a third of the mixed IMAP profile's CPU. Bodies are immutable, so an
// entry never goes stale: it is only dropped, least recently used first,
// above a bound on memory.
package store

import (
	"container/list"
	"sync"

	"loft/internal/message"
)

// maxStructCacheBytes bounds the cache's memory as estimated by
// structCost: a few thousand typical messages, small next to the mailbox
// index, and paid once per server, not per session.
const maxStructCacheBytes = 16 << 20

// structCost estimates the memory of a decoded structure from the size of
// its JSON: the Go values take about twice the bytes of their encoding,
// plus the cache's own bookkeeping.
func structCost(jsonLen int) int64 { return 2*int64(jsonLen) + 200 }

type structCache struct {
	mu    sync.Mutex
	size  int64                    // sum of the entries' costs
	lru   list.List                // of *structEntry, most recently used first
	items map[string]*list.Element // by blob id
}

type structEntry struct {
	blob string
	msg  *message.Message
	cost int64
}

func newStructCache() *structCache {
	return &structCache{items: make(map[string]*list.Element)}
}

// get returns the cached structure of a body, nil if it is not cached.
func (c *structCache) get(blob string) *message.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[blob]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*structEntry).msg
}

// put caches a structure decoded from jsonLen bytes.
func (c *structCache) put(blob string, msg *message.Message, jsonLen int) {
	cost := structCost(jsonLen)
	if cost > maxStructCacheBytes/16 {
		return // a huge MIME tree would push out many ordinary ones
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[blob]; ok {
		return
	}
	c.items[blob] = c.lru.PushFront(&structEntry{blob: blob, msg: msg, cost: cost})
	c.size += cost
	for c.size > maxStructCacheBytes {
		el := c.lru.Back()
		e := el.Value.(*structEntry)
		c.lru.Remove(el)
		delete(c.items, e.blob)
		c.size -= e.cost
	}
}
