// \Recent (RFC 3501 §2.3.2): a message is recent in exactly one session,
// the first one told about it — the first SELECT (not EXAMINE) of its
// mailbox after it arrived, or the session that has the mailbox selected
// when it arrives and announces it first. The store keeps, per mailbox, a
// watermark: the UIDs up to it have been claimed by some session. A
// session claims atomically, so two sessions never both see a message as
// recent.
//
// The watermarks live in memory only, beside the mailbox index but not in
// its entries, which are evicted and reloaded. They are not persisted: after
// a restart no message that arrived before it is recent. IMAP4rev2 dropped
// \Recent, and RFC 3501 lets a server be approximate about it; what a
// restart forgets is at most a client's hint that mail is new.
package store

import (
	"context"
	"fmt"
	"math"
)

// recentMark is a mailbox's watermark: UIDs up to claimed are claimed, the
// others up to newest (the highest UID delivered to it since start) are
// recent for the next session to claim them. A mailbox without a mark has
// nothing to claim.
type recentMark struct {
	claimed uint32
	newest  uint32
}

// noteNew records a new message for claiming. ix.mu is held.
func (ix *index) noteNew(mailboxID int64, uid uint32) {
	r, ok := ix.recent[mailboxID]
	if !ok {
		// Without a mark every earlier message was claimed or is older
		// than this process.
		r.claimed = uid - 1
	}
	r.newest = max(r.newest, uid)
	ix.recent[mailboxID] = r
}

// ClaimRecent claims for the calling session the messages of a mailbox up
// to UID upTo that no session has claimed yet, and returns the UID after
// which they start: the session's recent messages are those with UIDs in
// (after, upTo]. SELECT claims up to the last UID of its snapshot; a
// session that announces a new message claims up to its UID.
func (s *Store) ClaimRecent(mailboxID int64, upTo uint32) (after uint32) {
	ix := s.index
	ix.mu.Lock()
	defer ix.mu.Unlock()
	r, ok := ix.recent[mailboxID]
	if !ok || r.claimed >= upTo {
		return math.MaxUint32
	}
	after, r.claimed = r.claimed, upTo
	if r.claimed >= r.newest {
		delete(ix.recent, mailboxID) // all claimed: as if never marked
	} else {
		ix.recent[mailboxID] = r
	}
	return after
}

// RecentAfter returns the UID after which a mailbox's messages are recent
// and not yet claimed (math.MaxUint32 if none is), without claiming them:
// what EXAMINE shows, as RFC 3501 §6.3.2 forbids it to change \Recent.
func (s *Store) RecentAfter(mailboxID int64) uint32 {
	ix := s.index
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if r, ok := ix.recent[mailboxID]; ok {
		return r.claimed
	}
	return math.MaxUint32
}

// CountRecent counts a mailbox's messages that are recent and not yet
// claimed by any session (STATUS RECENT).
func (s *Store) CountRecent(ctx context.Context, accountID, mailboxID int64) (int64, error) {
	after := s.RecentAfter(mailboxID)
	if after == math.MaxUint32 {
		return 0, nil
	}
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
		WHERE m.mailbox_id = ? AND b.account_id = ? AND m.uid > ?`, mailboxID, accountID, after).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count recent: %w", err)
	}
	return n, nil
}
