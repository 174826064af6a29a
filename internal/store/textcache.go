// The text coverage cache: for each mailbox searched, which of its
// messages the text index (body_fts) does not cover, so that SEARCH TEXT
// need not join every message of the mailbox with body_index each time
// (300 ms of a 100,000-message mailbox's 380 ms search for one word).
//
// Coverage only grows: a message's body never changes, a body's text once
// in body_fts stays there (a reindex replaces its rows in one commit, in
// the same state), and UIDs only grow. So an entry holds the highest UID
// it has looked at and the UIDs up to it that were not covered; each use
// reads only the messages above that UID and the uncovered ones again
// (the indexer may have added them, or they were expunged). No change
// needs to reach an entry, from this process or another.
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// maxCoverageEntries bounds the cache: an entry is a few words plus the
// UIDs of its mailbox not indexed yet (usually none).
const maxCoverageEntries = 10_000

type coverageKey struct{ account, mailbox int64 }

type textCoverage struct {
	mu      sync.Mutex
	entries map[coverageKey]*coverageEntry
}

type coverageEntry struct {
	mu        sync.Mutex // held across a refresh's queries: one at a time
	checked   uint32     // the highest UID looked at
	uncovered []uint32   // UIDs up to checked whose text body_fts does not hold, ascending
	seen      int        // messages looked at, ever: at least the mailbox's size
	used      time.Time  // under textCoverage.mu
}

func newTextCoverage() *textCoverage {
	return &textCoverage{entries: make(map[coverageKey]*coverageEntry)}
}

// uncoveredUIDs returns the UIDs of a mailbox's messages whose text
// body_fts does not hold (not indexed yet, too large to index, or stored
// without index rows), as of now, and a number at least the mailbox's
// size (for choosing a query plan).
func (s *Store) uncoveredUIDs(ctx context.Context, accountID, mailboxID int64) ([]uint32, int, error) {
	e := s.texts.entry(coverageKey{accountID, mailboxID})
	e.mu.Lock()
	defer e.mu.Unlock()
	var still []uint32
	if len(e.uncovered) > 0 {
		list, err := json.Marshal(e.uncovered)
		if err != nil {
			return nil, 0, err
		}
		still, err = s.uids(ctx, `SELECT m.uid FROM messages m LEFT JOIN body_index i ON i.blob = m.blob
			WHERE m.mailbox_id = ? AND m.uid IN (SELECT value FROM json_each(?)) AND (i.id IS NULL OR i.indexed != 1)
			ORDER BY m.uid`, mailboxID, string(list))
		if err != nil {
			return nil, 0, fmt.Errorf("store: text coverage: %w", err)
		}
	}
	rows, err := s.db.QueryContext(ctx, `SELECT m.uid, i.id IS NOT NULL AND i.indexed = 1
		FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id LEFT JOIN body_index i ON i.blob = m.blob
		WHERE m.mailbox_id = ? AND b.account_id = ? AND m.uid > ? ORDER BY m.uid`, mailboxID, accountID, e.checked)
	if err != nil {
		return nil, 0, fmt.Errorf("store: text coverage: %w", err)
	}
	defer rows.Close()
	checked, seen := e.checked, e.seen
	for rows.Next() {
		var uid uint32
		var covered bool
		if err := rows.Scan(&uid, &covered); err != nil {
			return nil, 0, fmt.Errorf("store: text coverage: %w", err)
		}
		if !covered {
			still = append(still, uid)
		}
		checked = uid
		seen++
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("store: text coverage: %w", err)
	}
	e.checked, e.uncovered, e.seen = checked, still, seen
	return append([]uint32(nil), still...), seen, nil
}

// uids runs a query of one UID column.
func (s *Store) uids(ctx context.Context, q string, args ...any) ([]uint32, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var u uint32
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// entry returns the entry of a mailbox, registering an empty one if
// needed; above the bound, the least recently used goes.
func (c *textCoverage) entry(k coverageKey) *coverageEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil {
		if len(c.entries) >= maxCoverageEntries {
			var oldest coverageKey
			var at time.Time
			for id, o := range c.entries {
				if at.IsZero() || o.used.Before(at) {
					oldest, at = id, o.used
				}
			}
			delete(c.entries, oldest)
		}
		e = &coverageEntry{}
		c.entries[k] = e
	}
	e.used = time.Now()
	return e
}
