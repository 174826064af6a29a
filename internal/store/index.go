// The mailbox index: an in-memory copy of the per-message metadata of the
// mailboxes sessions are using (UID, modseq, flags, size, date, body id),
// so that SELECT of a 100,000-message mailbox and FETCH 1:* (FLAGS) read
// memory rather than the database — what Dovecot's mmap'd index gives it.
//
// The database stays the truth. An entry is loaded from it on first use and
// then kept current by the writer, which applies every committed change to
// the entries, in commit order, right after the commit. Loading and
// applying can overlap: an entry is registered (loading) before its
// snapshot is read, changes arriving meanwhile are queued on it, and the
// loader replays those newer than its snapshot's modseq. Entries are
// evicted, least recently used first, above a bound on cached messages.
package store

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// maxIndexedMessages bounds the index's memory: about 80 bytes a message,
// so 2 million messages is some 160 MB at most.
const maxIndexedMessages = 2_000_000

// indexEntry is one mailbox's messages, sorted by UID.
type indexEntry struct {
	mu      sync.RWMutex
	ready   chan struct{} // closed when loaded (or failed: err set)
	err     error
	msgs    []indexMsg
	modseq  int64    // mailbox modseq the entry reflects
	pending []Change // changes that arrived while loading
	used    time.Time
}

type indexMsg struct {
	uid      uint32
	modseq   int64
	date     int64
	size     int64
	flags    int64
	keywords string
	blob     string
}

type index struct {
	mu      sync.Mutex
	entries map[int64]*indexEntry // by mailbox id
	total   int                   // messages in all loaded entries
}

func newIndex() *index { return &index{entries: make(map[int64]*indexEntry)} }

// indexEntry returns the loaded index of a mailbox, loading it if needed.
// dbModSeq is the mailbox's modseq as just read from the database: an entry
// behind it missed a change made by another process (the CLI) and is
// reloaded. The caller reads the entry under e.mu.RLock.
func (s *Store) indexEntry(ctx context.Context, mailboxID, dbModSeq int64) (*indexEntry, error) {
	ix := s.index
	ix.mu.Lock()
	e, ok := ix.entries[mailboxID]
	if ok {
		e.used = time.Now()
		ix.mu.Unlock()
		<-e.ready
		if e.err != nil {
			return nil, e.err
		}
		e.mu.RLock()
		behind := e.modseq < dbModSeq
		e.mu.RUnlock()
		if !behind {
			return e, nil
		}
		ix.mu.Lock()
		if ix.entries[mailboxID] == e {
			ix.drop(mailboxID)
		}
		ix.mu.Unlock()
		return s.indexEntry(ctx, mailboxID, 0)
	}
	e = &indexEntry{ready: make(chan struct{}), used: time.Now()}
	ix.entries[mailboxID] = e
	ix.mu.Unlock()

	err := s.loadIndex(ctx, mailboxID, e)
	e.mu.Lock()
	e.err = err
	if err == nil {
		for _, c := range e.pending {
			e.apply(c)
		}
	}
	e.pending = nil
	close(e.ready)
	n := len(e.msgs)
	e.mu.Unlock()
	ix.mu.Lock()
	if err != nil {
		if ix.entries[mailboxID] == e {
			delete(ix.entries, mailboxID)
		}
	} else {
		ix.total += n
		ix.evict(mailboxID)
	}
	ix.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("store: index mailbox #%d: %w", mailboxID, err)
	}
	return e, nil
}

// loadIndex reads a mailbox's messages and its modseq in one snapshot.
func (s *Store) loadIndex(ctx context.Context, mailboxID int64, e *indexEntry) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var modseq int64
	if err := tx.QueryRowContext(ctx, `SELECT highestmodseq FROM mailboxes WHERE id = ?`, mailboxID).Scan(&modseq); err != nil {
		return noRows(err, ErrNoMailbox)
	}
	rows, err := tx.QueryContext(ctx, `SELECT uid, modseq, internal_date, size, flags, keywords, blob
		FROM messages WHERE mailbox_id = ? ORDER BY uid`, mailboxID)
	if err != nil {
		return err
	}
	defer rows.Close()
	var msgs []indexMsg
	for rows.Next() {
		var m indexMsg
		if err := rows.Scan(&m.uid, &m.modseq, &m.date, &m.size, &m.flags, &m.keywords, &m.blob); err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	e.msgs, e.modseq = msgs, modseq
	e.mu.Unlock()
	return nil
}

// evict drops least recently used entries (never keep) while the index
// holds more than its bound. ix.mu is held.
func (ix *index) evict(keep int64) {
	for ix.total > maxIndexedMessages {
		var oldest int64
		var at time.Time
		for id, e := range ix.entries {
			if id == keep {
				continue
			}
			if oldest == 0 || e.used.Before(at) {
				oldest, at = id, e.used
			}
		}
		if oldest == 0 {
			return
		}
		ix.drop(oldest)
	}
}

// drop forgets an entry; the next use reloads it. ix.mu is held.
func (ix *index) drop(mailboxID int64) {
	e, ok := ix.entries[mailboxID]
	if !ok {
		return
	}
	delete(ix.entries, mailboxID)
	select {
	case <-e.ready:
		e.mu.RLock()
		ix.total -= len(e.msgs)
		e.mu.RUnlock()
	default:
		// Still loading: it was never counted.
	}
}

// applyChanges brings the entries up to date with committed changes. The
// writer calls it after each commit, in commit order.
func (ix *index) applyChanges(changes []Change) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, c := range changes {
		switch c.Kind {
		case ChangeMailboxRename, ChangeMailboxDelete, ChangeAccountDelete:
			// Rare, and they can move messages between mailboxes: reload.
			for id := range ix.entries {
				ix.drop(id)
			}
			continue
		case ChangeMailboxCreate:
			continue
		}
		e, ok := ix.entries[c.MailboxID]
		if !ok {
			continue
		}
		select {
		case <-e.ready:
		default:
			e.mu.Lock()
			e.pending = append(e.pending, c)
			e.mu.Unlock()
			continue
		}
		e.mu.Lock()
		before := len(e.msgs)
		ok = e.apply(c)
		after := len(e.msgs)
		e.mu.Unlock()
		if !ok {
			ix.drop(c.MailboxID)
			continue
		}
		ix.total += after - before
	}
}

// apply applies one change; false means the entry cannot follow it and
// must be reloaded. Changes the entry's snapshot already holds are skipped.
// e.mu is held.
func (e *indexEntry) apply(c Change) bool {
	if c.ModSeq <= e.modseq {
		return true
	}
	e.modseq = c.ModSeq
	switch c.Kind {
	case ChangeNew:
		if c.blob == "" {
			return false
		}
		bits, kw := encodeFlags(c.Flags)
		m := indexMsg{uid: c.UID, modseq: c.ModSeq, date: c.date, size: c.Size, flags: bits, keywords: kw, blob: c.blob}
		if n := len(e.msgs); n == 0 || e.msgs[n-1].uid < c.UID {
			e.msgs = append(e.msgs, m)
			return true
		}
		i, found := e.find(c.UID)
		if !found {
			e.msgs = slices.Insert(e.msgs, i, m)
		}
	case ChangeFlags:
		if i, found := e.find(c.UID); found {
			e.msgs[i].flags, e.msgs[i].keywords = encodeFlags(c.Flags)
			e.msgs[i].modseq = c.ModSeq
		}
	case ChangeExpunge:
		e.msgs = slices.DeleteFunc(e.msgs, func(m indexMsg) bool {
			_, gone := slices.BinarySearch(c.UIDs, m.uid)
			return gone
		})
	}
	return true
}

func (e *indexEntry) find(uid uint32) (int, bool) {
	i := sort.Search(len(e.msgs), func(i int) bool { return e.msgs[i].uid >= uid })
	return i, i < len(e.msgs) && e.msgs[i].uid == uid
}

func (m *indexMsg) info() MessageInfo {
	return MessageInfo{
		UID:          m.uid,
		ModSeq:       m.modseq,
		InternalDate: time.Unix(m.date, 0),
		Size:         m.size,
		Flags:        decodeFlags(m.flags, m.keywords),
		Blob:         m.blob,
	}
}
