// The mailbox index: an in-memory copy of the per-message metadata of the
// mailboxes sessions are using (UID, modseq, flags, size, date, body id),
// so that SELECT of a 100,000-message mailbox and FETCH 1:* (FLAGS) read
// memory rather than the database — what Dovecot's mmap'd index gives it.
// Each entry also keeps the counts SELECT reports (unseen, deleted, first
// unseen, keywords) current with every change, and an array of its UIDs
// that selections share, so that a SELECT neither scans nor copies the
// mailbox.
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
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// maxIndexedMessages bounds the index's memory: about 80 bytes a message,
// so 2 million messages is some 160 MB at most.
const maxIndexedMessages = 2_000_000

// indexEntry is one mailbox's messages, sorted by UID.
type indexEntry struct {
	mu    sync.RWMutex
	ready chan struct{} // closed when loaded (or failed: err set)
	err   error
	msgs  []indexMsg
	// uids are the UIDs of msgs, in the same order. Selections share its
	// array (Selection.UIDs, capped at their length), so no element below
	// the length of a slice already handed out is ever written: appends
	// write beyond it, and every other change builds a new array.
	uids    []uint32
	stats   entryStats
	modseq  int64    // mailbox modseq the entry reflects
	pending []Change // changes that arrived while loading
	used    time.Time
}

// entryStats are the counts of an entry's messages, kept current by apply.
type entryStats struct {
	unseen      int64
	deleted     int64
	firstUnseen uint32         // UID of the first message without \Seen; 0 if none
	keywords    map[string]int // messages per keyword
	// sorted are the keys of keywords, sorted; shared read-only with
	// selections, so replaced (never changed) when the set changes.
	sorted []string
}

// Bits of indexMsg.flags that the counts follow (messages.go flagBits).
const (
	bitSeen    = 1
	bitDeleted = 8
)

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
	recent  map[int64]recentMark  // by mailbox id: \Recent watermarks (recent.go)
}

func newIndex() *index {
	return &index{entries: make(map[int64]*indexEntry), recent: make(map[int64]recentMark)}
}

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
	e.recount()
	e.mu.Unlock()
	return nil
}

// recount computes the UIDs and the counts from the messages. e.mu is held.
func (e *indexEntry) recount() {
	e.uids = make([]uint32, len(e.msgs))
	e.stats = entryStats{keywords: map[string]int{}}
	for i := range e.msgs {
		m := &e.msgs[i]
		e.uids[i] = m.uid
		e.count(m, 1)
		if m.flags&bitSeen == 0 && e.stats.firstUnseen == 0 {
			e.stats.firstUnseen = m.uid
		}
	}
}

// count adds a message to the counts (sign 1) or takes it out (-1), all
// but firstUnseen. e.mu is held.
func (e *indexEntry) count(m *indexMsg, sign int) {
	st := &e.stats
	if m.flags&bitSeen == 0 {
		st.unseen += int64(sign)
	}
	if m.flags&bitDeleted != 0 {
		st.deleted += int64(sign)
	}
	if m.keywords == "" {
		return
	}
	changed := false
	for _, k := range strings.Fields(m.keywords) {
		n := st.keywords[k] + sign
		if n <= 0 {
			delete(st.keywords, k)
			changed = true
		} else {
			changed = changed || n == 1 && sign > 0
			st.keywords[k] = n
		}
	}
	if changed {
		st.sorted = slices.Sorted(maps.Keys(st.keywords))
	}
}

// seekUnseen sets firstUnseen to the first message from msgs[i] on that
// lacks \Seen. It runs when the first unseen message is seen or expunged,
// and starts there, so a client reading its mail in order costs a step
// per message, not a scan. e.mu is held.
func (e *indexEntry) seekUnseen(i int) {
	e.stats.firstUnseen = 0
	for ; i < len(e.msgs); i++ {
		if e.msgs[i].flags&bitSeen == 0 {
			e.stats.firstUnseen = e.msgs[i].uid
			return
		}
	}
}

// sawUnseen notes that message uid lacks \Seen. e.mu is held.
func (e *indexEntry) sawUnseen(uid uint32) {
	if fu := e.stats.firstUnseen; fu == 0 || uid < fu {
		e.stats.firstUnseen = uid
	}
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
		case ChangeNew:
			ix.noteNew(c.MailboxID, c.UID)
		case ChangeMailboxDelete:
			delete(ix.recent, c.MailboxID)
		}
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
			e.uids = append(e.uids, c.UID) // beyond every shared slice
		} else {
			i, found := e.find(c.UID)
			if found {
				return true
			}
			e.msgs = slices.Insert(e.msgs, i, m)
			e.uids = slices.Concat(e.uids[:i], []uint32{c.UID}, e.uids[i:]) // a new array
		}
		e.count(&m, 1)
		if bits&bitSeen == 0 {
			e.sawUnseen(c.UID)
		}
	case ChangeFlags:
		i, found := e.find(c.UID)
		if !found {
			return true
		}
		m := &e.msgs[i]
		e.count(m, -1)
		wasUnseen := m.flags&bitSeen == 0
		m.flags, m.keywords = encodeFlags(c.Flags)
		m.modseq = c.ModSeq
		e.count(m, 1)
		switch unseen := m.flags&bitSeen == 0; {
		case unseen && !wasUnseen:
			e.sawUnseen(m.uid)
		case !unseen && wasUnseen && m.uid == e.stats.firstUnseen:
			e.seekUnseen(i + 1)
		}
	case ChangeExpunge:
		fu := e.stats.firstUnseen
		e.msgs = slices.DeleteFunc(e.msgs, func(m indexMsg) bool {
			_, gone := slices.BinarySearch(c.UIDs, m.uid)
			if gone {
				e.count(&m, -1)
			}
			return gone
		})
		e.uids = make([]uint32, len(e.msgs)) // a new array
		for i := range e.msgs {
			e.uids[i] = e.msgs[i].uid
		}
		if _, gone := slices.BinarySearch(c.UIDs, fu); gone {
			i, _ := e.find(fu)
			e.seekUnseen(i)
		}
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
