// The text coverage cache: for each mailbox searched, which of its
// messages the text index (body_fts) does not cover, and, for those it
// covers, which body_index row (the body_fts rowid) each has, so that
// SEARCH TEXT maps the index's candidates to UIDs in memory rather than
// joining every message of the mailbox with body_index each time (200 of
// the 460 ms a word in most of 100,000 messages took).
//
// Coverage only grows: a message's body never changes, a body's text once
// in body_fts stays there, and UIDs only grow. So an entry holds the
// highest UID it has looked at, the UIDs up to it that were not covered,
// and the (body row, UID) pairs of those that were; each use reads only
// the messages above that UID and the uncovered ones again (the indexer
// may have added them, or they were expunged). A body row's id changes
// only when `loft reindex` replaces the row, in this process or another:
// that bumps meta's text_generation in the same commit, and an entry read
// at another generation starts over. Pairs of expunged messages stay in
// an entry (callers filter by the mailbox's current UIDs) until the entry
// holds twice the mailbox's messages and is dropped.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"
)

// maxCoverageEntries bounds the cache's entries: an entry is a few words
// plus the UIDs of its mailbox not indexed yet (usually none) and its
// pairs, which maxCoveredPairs bounds.
const maxCoverageEntries = 10_000

// maxCoveredPairs bounds the pairs of all entries: 16 bytes each, so 2
// million (a few large mailboxes) is 32 MB. A mailbox with more messages
// keeps no pairs, and its searches join with body_index as before.
const maxCoveredPairs = 2_000_000

type coverageKey struct{ account, mailbox int64 }

type textCoverage struct {
	mu       sync.Mutex
	entries  map[coverageKey]*coverageEntry
	pairs    int // in all entries
	maxPairs int // maxCoveredPairs; lower in tests
}

type coverageEntry struct {
	mu        sync.Mutex // held across a refresh's queries: one at a time
	gen       int64      // meta's text_generation the entry was read at
	checked   uint32     // the highest UID looked at
	uncovered []uint32   // UIDs up to checked whose text body_fts does not hold, ascending
	// pairs are the covered messages up to checked, by body row then UID;
	// replaced, never changed in place, so callers may keep a slice. nil
	// with noPairs: the mailbox is above maxCoveredPairs.
	pairs   []bodyUID
	noPairs bool
	seen    int       // messages looked at, ever: at least the mailbox's size
	used    time.Time // under textCoverage.mu
	counted int       // len(pairs) as textCoverage.pairs counts it; under textCoverage.mu
}

// bodyUID is a message of a mailbox and its body's body_index id.
type bodyUID struct {
	id  int64
	uid uint32
}

func compareBodyUID(a, b bodyUID) int {
	if c := cmp.Compare(a.id, b.id); c != 0 {
		return c
	}
	return cmp.Compare(a.uid, b.uid)
}

func newTextCoverage() *textCoverage {
	return &textCoverage{entries: make(map[coverageKey]*coverageEntry), maxPairs: maxCoveredPairs}
}

// coverage is a mailbox's text coverage as of a search's snapshot.
type coverage struct {
	uncovered []uint32  // UIDs whose text body_fts does not hold, ascending
	size      int       // at least the mailbox's number of messages
	pairs     []bodyUID // the covered messages; nil if not cached
}

// queryer is a *sql.DB or a *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// textGeneration reads meta's text_generation (see the file comment).
func textGeneration(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) (int64, error) {
	var gen int64
	err := q.QueryRowContext(ctx, `SELECT coalesce((SELECT value FROM meta WHERE key = 'text_generation'), 0)`).Scan(&gen)
	return gen, err
}

// bumpTextGeneration marks body_index ids as changed, in the transaction
// that changes them.
func bumpTextGeneration(t *txn) error {
	_, err := t.exec(`INSERT INTO meta(key, value) VALUES ('text_generation', 1)
		ON CONFLICT(key) DO UPDATE SET value = value + 1`)
	return err
}

// coverageOf returns a mailbox's text coverage, reading with q (the
// search's snapshot) at text generation gen what the entry lacks.
func (s *Store) coverageOf(ctx context.Context, q queryer, accountID, mailboxID, gen int64) (*coverage, error) {
	key := coverageKey{accountID, mailboxID}
	e := s.texts.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gen != gen {
		e.gen, e.checked, e.uncovered, e.pairs, e.noPairs, e.seen = gen, 0, nil, nil, false, 0
	}
	var still []uint32
	var add []bodyUID
	scan := func(rows *sql.Rows, advance bool) error {
		defer rows.Close()
		for rows.Next() {
			var uid uint32
			var id sql.NullInt64
			var covered bool
			if err := rows.Scan(&uid, &id, &covered); err != nil {
				return err
			}
			if covered {
				add = append(add, bodyUID{id.Int64, uid})
			} else {
				still = append(still, uid)
			}
			if advance {
				e.checked = uid
				e.seen++
			}
		}
		return rows.Err()
	}
	if len(e.uncovered) > 0 {
		list, err := json.Marshal(e.uncovered)
		if err != nil {
			return nil, err
		}
		rows, err := q.QueryContext(ctx, `SELECT m.uid, i.id, i.id IS NOT NULL AND i.indexed = 1
			FROM messages m LEFT JOIN body_index i ON i.id = m.body_id
			WHERE m.mailbox_id = ? AND m.uid IN (SELECT value FROM json_each(?)) ORDER BY m.uid`, mailboxID, string(list))
		if err == nil {
			err = scan(rows, false)
		}
		if err != nil {
			return nil, fmt.Errorf("store: text coverage: %w", err)
		}
	}
	rows, err := q.QueryContext(ctx, `SELECT m.uid, i.id, i.id IS NOT NULL AND i.indexed = 1
		FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id LEFT JOIN body_index i ON i.id = m.body_id
		WHERE m.mailbox_id = ? AND b.account_id = ? AND m.uid > ? ORDER BY m.uid`, mailboxID, accountID, e.checked)
	if err == nil {
		err = scan(rows, true)
	}
	if err != nil {
		// The entry may have advanced past rows it did not keep.
		e.gen, e.checked, e.uncovered, e.pairs, e.noPairs, e.seen = -1, 0, nil, nil, false, 0
		s.texts.resize(key, e)
		return nil, fmt.Errorf("store: text coverage: %w", err)
	}
	e.uncovered = still
	if !e.noPairs && len(add) > 0 {
		if len(e.pairs)+len(add) > s.texts.maxPairs {
			e.pairs, e.noPairs = nil, true
		} else {
			slices.SortFunc(add, compareBodyUID)
			e.pairs = mergePairs(e.pairs, add)
		}
	}
	s.texts.resize(key, e)
	c := &coverage{uncovered: slices.Clone(still), size: e.seen, pairs: e.pairs}
	if !e.noPairs && c.pairs == nil {
		c.pairs = []bodyUID{} // cached, and empty
	}
	return c, nil
}

// mergePairs merges two sorted lists into a new one.
func mergePairs(a, b []bodyUID) []bodyUID {
	out := make([]bodyUID, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if compareBodyUID(a[0], b[0]) <= 0 {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// entry returns the entry of a mailbox, registering an empty one if
// needed; above the bound, the least recently used goes.
func (c *textCoverage) entry(k coverageKey) *coverageEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil {
		if len(c.entries) >= maxCoverageEntries {
			c.evictOldest(k)
		}
		e = &coverageEntry{}
		c.entries[k] = e
	}
	e.used = time.Now()
	return e
}

// resize accounts for an entry's pairs having changed, and evicts the
// least recently used other entries while the pairs of all are above the
// bound. e.mu is held (c.mu is never held while taking an entry's lock).
func (c *textCoverage) resize(k coverageKey, e *coverageEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[k] != e {
		return // evicted meanwhile: no longer counted
	}
	c.pairs += len(e.pairs) - e.counted
	e.counted = len(e.pairs)
	for c.pairs > c.maxPairs && len(c.entries) > 1 {
		c.evictOldest(k)
	}
}

// forgetStale drops a mailbox's entry, whose pairs hold too many expunged
// messages; the next search reads the mailbox afresh.
func (c *textCoverage) forgetStale(k coverageKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[k]; e != nil {
		c.pairs -= e.counted
		delete(c.entries, k)
	}
}

// evictOldest drops the least recently used entry but keep. c.mu is held.
func (c *textCoverage) evictOldest(keep coverageKey) {
	var oldest coverageKey
	var at time.Time
	found := false
	for k, o := range c.entries {
		if k != keep && (!found || o.used.Before(at)) {
			oldest, at, found = k, o.used, true
		}
	}
	if found {
		c.pairs -= c.entries[oldest].counted
		delete(c.entries, oldest)
	}
}
