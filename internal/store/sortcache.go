// The sort cache: the SORT and THREAD keys (SortInfo) of the messages of
// the mailboxes sessions sort or thread, in memory, so that a SORT of a
// 100,000-message mailbox does not read 100,000 rows of body_index each
// time — what Dovecot's cache file gives it.
//
// A message's keys come from its body, which never changes, so an entry
// never needs updating for a flag change, and UIDs only grow (mailbox ids
// are never reused either: AUTOINCREMENT), so an entry is brought up to
// date by reading the messages above its highest UID. Expunged messages
// are noted by the writer (applyChanges, right after each commit, as for
// the mailbox index) and dropped from the entry at its next use; where a
// change comes from another process (the CLI), the entry keeps the keys
// of messages that no longer exist, which callers never ask for, until it
// is evicted. `loft reindex` rewrites keys only as the running code
// computes them, so it cannot make an entry wrong.
//
// Entries are evicted, least recently used first, above a bound on cached
// messages; a mailbox larger than the bound is not cached.
package store

import (
	"context"
	"slices"
	"sync"
	"time"
)

// maxSortCached bounds the cache's memory: a SortInfo is some 200 bytes
// plus its strings (addresses, base subject, message ids), 300–400 bytes
// for common mail, so 250,000 messages (two or three large mailboxes) is
// about 100 MB at most.
const maxSortCached = 250_000

type sortCache struct {
	mu      sync.Mutex
	entries map[coverageKey]*sortEntry // by account and mailbox (textcache.go)
	total   int                        // messages in all entries
	max     int                        // maxSortCached; lower in tests
}

// sortEntry is one mailbox's keys.
type sortEntry struct {
	load sync.Mutex // one refresh at a time
	mu   sync.Mutex // guards keys and gone
	// keys is sorted by UID. Callers get the slice itself, so it is never
	// changed in place: a refresh appends past its length or replaces it.
	keys []SortInfo
	has  SortKeys // which fields keys holds; 0 before the first load
	gone []uint32 // expunged since the last refresh
	// n and used are the cache's, under sortCache.mu.
	n    int
	used time.Time
}

func newSortCache() *sortCache {
	return &sortCache{entries: make(map[coverageKey]*sortEntry), max: maxSortCached}
}

// SortInfo returns the sort and thread data of a mailbox's messages, in
// UID order, from the cache after the first call: at least the fields
// that want says (other fields may be zero). It may also hold messages
// expunged since (see the top of the file), and a message that arrives
// meanwhile may be missing: callers look up the UIDs they know. The slice
// is shared: callers must not change it.
func (s *Store) SortInfo(ctx context.Context, accountID, mailboxID int64, want SortKeys) ([]SortInfo, error) {
	c, k := s.sorts, coverageKey{accountID, mailboxID}
	e := c.entry(k)
	e.load.Lock()
	defer e.load.Unlock()
	e.mu.Lock()
	keys, has := e.keys, e.has
	e.mu.Unlock()
	// Dates are what the first SORT of a mailbox wants most often: load
	// only those then, and add the rest when something wants more.
	if has < want && len(keys) == 0 {
		has = want
	} else if has < want {
		more, ok, err := s.addSortStrings(ctx, keys)
		if err != nil {
			return nil, err
		}
		if !ok {
			more = nil // changed meanwhile: load everything afresh
		}
		keys, has = more, want
	}
	var after uint32
	if len(keys) > 0 {
		after = keys[len(keys)-1].UID
	}
	fresh, err := s.loadSortInfo(ctx, accountID, mailboxID, after, has)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if len(keys) == 0 {
		keys = fresh // not copied: 20 MB for 100,000 messages
	} else {
		keys = append(keys, fresh...) // e.keys is what we read: refreshes hold e.load
	}
	e.has = has
	if len(e.gone) > 0 {
		slices.Sort(e.gone)
		keys = slices.DeleteFunc(slices.Clone(keys), func(si SortInfo) bool {
			_, gone := slices.BinarySearch(e.gone, si.UID)
			return gone
		})
		e.gone = nil
	}
	e.keys = keys
	e.mu.Unlock()
	c.resize(k, e, len(keys))
	return keys, nil
}

// entry returns the mailbox's entry, registering an empty one if needed.
func (c *sortCache) entry(k coverageKey) *sortEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil {
		e = &sortEntry{}
		c.entries[k] = e
	}
	e.used = time.Now()
	return e
}

// resize records that e now holds n messages and evicts entries, least
// recently used first, while the cache is over its bound; e itself goes
// when it alone is.
func (c *sortCache) resize(k coverageKey, e *sortEntry, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[k] != e {
		return // dropped meanwhile: it was never counted
	}
	c.total += n - e.n
	e.n = n
	if n > c.max {
		c.drop(k)
		return
	}
	for c.total > c.max {
		var oldest coverageKey
		var at time.Time
		for id, o := range c.entries {
			if id != k && (at.IsZero() || o.used.Before(at)) {
				oldest, at = id, o.used
			}
		}
		if at.IsZero() {
			return
		}
		c.drop(oldest)
	}
}

// drop forgets an entry; its next use starts afresh. c.mu is held.
func (c *sortCache) drop(k coverageKey) {
	if e, ok := c.entries[k]; ok {
		c.total -= e.n
		delete(c.entries, k)
	}
}

// applyChanges notes committed expunges in the entries they concern. The
// writer calls it after each commit, in commit order; it only appends
// UIDs, so that the writer never waits for a refresh's query.
func (c *sortCache) applyChanges(changes []Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) == 0 {
		return
	}
	for _, ch := range changes {
		switch ch.Kind {
		case ChangeExpunge:
			if e := c.entries[coverageKey{ch.accountID, ch.MailboxID}]; e != nil {
				e.mu.Lock()
				e.gone = append(e.gone, ch.UIDs...)
				e.mu.Unlock()
			}
		case ChangeMailboxRename, ChangeMailboxDelete, ChangeAccountDelete:
			// Rare, and renaming INBOX moves its messages away: start afresh.
			for id := range c.entries {
				c.drop(id)
			}
		}
	}
}
