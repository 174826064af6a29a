// Mailbox operations that IMAP needs beyond creation: rename (children move
// along; INBOX is special), delete, subscription, copying and moving
// messages between mailboxes, and the lookups a session makes when it
// selects a mailbox or fetches part of one.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// ErrBadName is returned for a mailbox name that cannot be used, e.g.
// renaming a mailbox into its own hierarchy.
var ErrBadName = errors.New("invalid mailbox name")

// ErrInboxDelete is returned when deleting INBOX, which always exists
// (RFC 9051 §6.3.4).
var ErrInboxDelete = errors.New("INBOX cannot be deleted")

// RenameMailbox renames a mailbox and every mailbox below it in the
// hierarchy (RFC 9051 §6.3.6). The name may also be that of a mailbox that
// does not exist but has children (a \Noselect parent): its children move.
// Renaming INBOX is special: a new mailbox with the new name gets all of
// INBOX's messages (with new UIDs) and INBOX stays, empty; INBOX's children
// do not move.
func (s *Store) RenameMailbox(ctx context.Context, accountID int64, oldName, newName string) error {
	oldName, newName = CanonicalName(oldName), CanonicalName(newName)
	if err := validName(newName); err != nil {
		return fmt.Errorf("store: rename mailbox %q: %w: %v", oldName, ErrBadName, err)
	}
	if newName == oldName || strings.HasPrefix(newName, oldName+Separator) {
		return fmt.Errorf("store: rename mailbox %q to %q: %w", oldName, newName, ErrBadName)
	}
	err := s.write(ctx, func(t *txn) error {
		if oldName == "INBOX" {
			return renameInbox(t, s, accountID, newName)
		}
		type mbox struct {
			id   int64
			name string
		}
		var moving []mbox
		rows, err := t.query(`SELECT id, name FROM mailboxes WHERE account_id = ? AND (name = ? OR substr(name, 1, ?) = ?)`,
			accountID, oldName, len(oldName)+1, oldName+Separator)
		if err != nil {
			return err
		}
		for rows.Next() {
			var m mbox
			if err := rows.Scan(&m.id, &m.name); err != nil {
				rows.Close()
				return err
			}
			moving = append(moving, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(moving) == 0 {
			return ErrNoMailbox
		}
		for _, m := range moving {
			to := newName + m.name[len(oldName):]
			var one int
			err := t.queryRow(`SELECT 1 FROM mailboxes WHERE account_id = ? AND name = ?`, accountID, to).Scan(&one)
			if err == nil {
				return ErrMailboxExists
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		// Two passes through a temporary name would be needed only if a
		// target could equal another source, which the prefix check rules out.
		for _, m := range moving {
			to := newName + m.name[len(oldName):]
			if _, err := t.exec(`UPDATE mailboxes SET name = ? WHERE id = ?`, to, m.id); err != nil {
				return err
			}
			t.changes = append(t.changes, Change{Kind: ChangeMailboxRename, MailboxID: m.id, Name: to,
				OldName: m.name, accountID: accountID})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: rename mailbox %q to %q: %w", oldName, newName, err)
	}
	return nil
}

// renameInbox moves all of INBOX's messages into a new mailbox newName.
func renameInbox(t *txn, s *Store, accountID int64, newName string) error {
	var inboxID int64
	if err := t.queryRow(`SELECT id FROM mailboxes WHERE account_id = ? AND name = 'INBOX'`, accountID).Scan(&inboxID); err != nil {
		return noRows(err, ErrNoMailbox)
	}
	dstID, err := createMailbox(t, accountID, newName, "")
	if err != nil {
		return err
	}
	uids, err := mailboxUIDs(t.query, inboxID)
	if err != nil {
		return err
	}
	_, err = moveRows(t, accountID, inboxID, dstID, uids)
	return err
}

// DeleteMailbox deletes a mailbox and its messages, freeing their space.
// Mailboxes below it in the hierarchy stay; the deleted name then exists
// only as their \Noselect parent (RFC 9051 §6.3.4).
func (s *Store) DeleteMailbox(ctx context.Context, accountID int64, name string) error {
	name = CanonicalName(name)
	if name == "INBOX" {
		return fmt.Errorf("store: delete mailbox: %w", ErrInboxDelete)
	}
	err := s.write(ctx, func(t *txn) error {
		var id int64
		err := t.queryRow(`SELECT id FROM mailboxes WHERE account_id = ? AND name = ?`, accountID, name).Scan(&id)
		if err != nil {
			return noRows(err, ErrNoMailbox)
		}
		var size, count int64
		if err := t.queryRow(`SELECT coalesce(sum(size), 0), count(*) FROM messages WHERE mailbox_id = ?`, id).Scan(&size, &count); err != nil {
			return err
		}
		blobs, err := distinctBlobs(t, `SELECT DISTINCT blob FROM messages WHERE mailbox_id = ?`, id)
		if err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM messages WHERE mailbox_id = ?`, id); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM expunged WHERE mailbox_id = ?`, id); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM mailboxes WHERE id = ?`, id); err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE accounts SET usage = usage - ?, messages = messages - ? WHERE id = ?`,
			size, count, accountID); err != nil {
			return err
		}
		removed, err := dropUnreferenced(t, blobs)
		if err != nil {
			return err
		}
		t.removes = append(t.removes, removed...)
		t.changes = append(t.changes, Change{Kind: ChangeMailboxDelete, MailboxID: id, Name: name, accountID: accountID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: delete mailbox %q: %w", name, err)
	}
	return nil
}

// SetSubscribed subscribes or unsubscribes an existing mailbox.
func (s *Store) SetSubscribed(ctx context.Context, accountID int64, name string, subscribed bool) error {
	name = CanonicalName(name)
	err := s.write(ctx, func(t *txn) error {
		res, err := t.exec(`UPDATE mailboxes SET subscribed = ? WHERE account_id = ? AND name = ?`,
			subscribed, accountID, name)
		if err := noRowsIs(res, err, ErrNoMailbox); err != nil {
			return err
		}
		t.changes = append(t.changes, Change{Kind: ChangeSubscription, Name: name, Subscribed: subscribed, accountID: accountID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: subscribe %q: %w", name, err)
	}
	return nil
}

// CopyResult says where copied or moved messages went (RFC 4315 COPYUID).
// SrcUIDs[i] became DstUIDs[i]; UIDs that no longer existed are left out.
type CopyResult struct {
	MailboxID   int64
	UIDValidity uint32
	SrcUIDs     []uint32
	DstUIDs     []uint32
}

// CopyMessages copies the messages with the given UIDs from one mailbox
// into the mailbox named dst, keeping flags and internal dates and sharing
// the bodies. Copies count against the quota: if they do not all fit,
// nothing is copied and the error is ErrOverQuota.
func (s *Store) CopyMessages(ctx context.Context, accountID, srcMailboxID int64, uids []uint32, dst string) (*CopyResult, error) {
	return s.transfer(ctx, accountID, srcMailboxID, uids, dst, false)
}

// MoveMessages moves messages like CopyMessages, then expunges them from
// the source in the same commit (RFC 6851). A move does not change usage.
func (s *Store) MoveMessages(ctx context.Context, accountID, srcMailboxID int64, uids []uint32, dst string) (*CopyResult, error) {
	return s.transfer(ctx, accountID, srcMailboxID, uids, dst, true)
}

func (s *Store) transfer(ctx context.Context, accountID, srcID int64, uids []uint32, dst string, move bool) (*CopyResult, error) {
	dst = CanonicalName(dst)
	uids = slices.Clone(uids)
	slices.Sort(uids)
	uids = slices.Compact(uids)
	var res *CopyResult
	err := s.write(ctx, func(t *txn) error {
		res = &CopyResult{}
		if err := ownMailbox(t, accountID, srcID); err != nil {
			return err
		}
		err := t.queryRow(`SELECT id, uidvalidity FROM mailboxes WHERE account_id = ? AND name = ?`,
			accountID, dst).Scan(&res.MailboxID, &res.UIDValidity)
		if err != nil {
			return noRows(err, ErrNoMailbox)
		}
		if move {
			m, err := moveRows(t, accountID, srcID, res.MailboxID, uids)
			if err != nil {
				return err
			}
			res.SrcUIDs, res.DstUIDs = m.src, m.dst
			return nil
		}
		return copyRows(t, s, accountID, srcID, res, uids)
	})
	if err != nil {
		verb := "copy"
		if move {
			verb = "move"
		}
		return nil, fmt.Errorf("store: %s to %q: %w", verb, dst, err)
	}
	return res, nil
}

type msgRow struct {
	uid      uint32
	date     int64
	size     int64
	flags    int64
	keywords string
	blob     string
}

func readRow(t *txn, mailboxID int64, uid uint32) (*msgRow, error) {
	r := msgRow{uid: uid}
	err := t.queryRow(`SELECT internal_date, size, flags, keywords, blob FROM messages WHERE mailbox_id = ? AND uid = ?`,
		mailboxID, uid).Scan(&r.date, &r.size, &r.flags, &r.keywords, &r.blob)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return &r, err
}

// insertRow adds a copy of r to a mailbox with the mailbox's next UID.
func insertRow(t *txn, accountID, mailboxID int64, r *msgRow) (uint32, error) {
	var uid uint32
	var modseq int64
	err := t.queryRow(`UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
		WHERE id = ? RETURNING uidnext - 1, highestmodseq`, mailboxID).Scan(&uid, &modseq)
	if err != nil {
		return 0, noRows(err, ErrNoMailbox)
	}
	if _, err := t.exec(`INSERT INTO messages(mailbox_id, uid, modseq, internal_date, size, flags, keywords, blob)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, mailboxID, uid, modseq, r.date, r.size, r.flags, r.keywords, r.blob); err != nil {
		return 0, err
	}
	t.changes = append(t.changes, Change{Kind: ChangeNew, MailboxID: mailboxID, UID: uid, ModSeq: modseq,
		Flags: decodeFlags(r.flags, r.keywords), Size: r.size, accountID: accountID, blob: r.blob, date: r.date})
	return uid, nil
}

func copyRows(t *txn, s *Store, accountID, srcID int64, res *CopyResult, uids []uint32) error {
	var rows []*msgRow
	var total int64
	for _, uid := range uids {
		r, err := readRow(t, srcID, uid)
		if err != nil {
			return err
		}
		if r != nil {
			rows = append(rows, r)
			total += r.size
		}
	}
	if len(rows) == 0 {
		return nil
	}
	var usage int64
	var q sql.NullInt64
	if err := t.queryRow(`SELECT quota, usage FROM accounts WHERE id = ?`, accountID).Scan(&q, &usage); err != nil {
		return noRows(err, ErrNoAccount)
	}
	if quota, _ := s.effectiveQuota(q); !fits(quota, usage, total) {
		return ErrOverQuota
	}
	for _, r := range rows {
		uid, err := insertRow(t, accountID, res.MailboxID, r)
		if err != nil {
			return err
		}
		res.SrcUIDs = append(res.SrcUIDs, r.uid)
		res.DstUIDs = append(res.DstUIDs, uid)
	}
	if _, err := t.exec(`UPDATE accounts SET usage = usage + ?, messages = messages + ? WHERE id = ?`,
		total, len(rows), accountID); err != nil {
		return err
	}
	return nil
}

type moved struct{ src, dst []uint32 }

// moveRows moves messages (ascending UIDs) from src to dst: new UIDs in
// dst, expunged from src with the expunge remembered for QRESYNC.
func moveRows(t *txn, accountID, srcID, dstID int64, uids []uint32) (moved, error) {
	var m moved
	for _, uid := range uids {
		r, err := readRow(t, srcID, uid)
		if err != nil {
			return m, err
		}
		if r == nil {
			continue
		}
		nuid, err := insertRow(t, accountID, dstID, r)
		if err != nil {
			return m, err
		}
		if _, err := t.exec(`DELETE FROM messages WHERE mailbox_id = ? AND uid = ?`, srcID, uid); err != nil {
			return m, err
		}
		m.src = append(m.src, uid)
		m.dst = append(m.dst, nuid)
	}
	if len(m.src) == 0 {
		return m, nil
	}
	modseq, err := bumpModSeq(t, srcID)
	if err != nil {
		return m, err
	}
	for _, uid := range m.src {
		if _, err := t.exec(`INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES (?, ?, ?)`,
			srcID, uid, modseq); err != nil {
			return m, err
		}
	}
	t.changes = append(t.changes, Change{Kind: ChangeExpunge, MailboxID: srcID, UIDs: slices.Clone(m.src),
		ModSeq: modseq, accountID: accountID})
	return m, nil
}

// MailboxByID returns an account's mailbox by id.
func (s *Store) MailboxByID(ctx context.Context, accountID, mailboxID int64) (*Mailbox, error) {
	m, err := scanMailbox(s.db.QueryRowContext(ctx,
		`SELECT `+mailboxColumns+` FROM mailboxes b WHERE b.account_id = ? AND b.id = ?`, accountID, mailboxID))
	if err != nil {
		return nil, fmt.Errorf("store: mailbox #%d: %w", mailboxID, noRows(err, ErrNoMailbox))
	}
	return m, nil
}

// UIDs lists the UIDs of a mailbox's messages, ascending: what a session
// needs to number messages when it selects a mailbox.
func (s *Store) UIDs(ctx context.Context, accountID, mailboxID int64) ([]uint32, error) {
	uids, err := mailboxUIDs(func(q string, args ...any) (*sql.Rows, error) {
		return s.db.QueryContext(ctx, q, args...)
	}, mailboxID, accountID)
	if err != nil {
		return nil, fmt.Errorf("store: list uids: %w", err)
	}
	return uids, nil
}

// mailboxUIDs lists the UIDs of a mailbox; with an account id, only if the
// mailbox belongs to it.
func mailboxUIDs(query func(string, ...any) (*sql.Rows, error), mailboxID int64, account ...int64) ([]uint32, error) {
	q := `SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid`
	args := []any{mailboxID}
	if len(account) > 0 {
		q = `SELECT m.uid FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
			WHERE m.mailbox_id = ? AND b.account_id = ? ORDER BY m.uid`
		args = append(args, account[0])
	}
	rows, err := query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	uids := make([]uint32, 0, 64)
	for rows.Next() {
		var u uint32
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		uids = append(uids, u)
	}
	return uids, rows.Err()
}

// MailboxStats are counts a session reports on SELECT and STATUS.
type MailboxStats struct {
	Unseen      int64
	Deleted     int64
	FirstUnseen uint32   // UID of the first message without \Seen; 0 if none
	Keywords    []string // the keywords used in the mailbox, sorted
}

// Stats counts a mailbox's unseen and deleted messages and lists its keywords.
func (s *Store) Stats(ctx context.Context, accountID, mailboxID int64) (*MailboxStats, error) {
	var st MailboxStats
	var first sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT
		coalesce(sum(CASE WHEN m.flags & 1 = 0 THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN m.flags & 8 != 0 THEN 1 ELSE 0 END), 0),
		min(CASE WHEN m.flags & 1 = 0 THEN m.uid END)
		FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE m.mailbox_id = ? AND b.account_id = ?`,
		mailboxID, accountID).Scan(&st.Unseen, &st.Deleted, &first)
	if err != nil {
		return nil, fmt.Errorf("store: mailbox stats: %w", err)
	}
	st.FirstUnseen = uint32(first.Int64)
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT keywords FROM messages WHERE mailbox_id = ? AND keywords != ''`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("store: mailbox keywords: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kw string
		if err := rows.Scan(&kw); err != nil {
			return nil, fmt.Errorf("store: mailbox keywords: %w", err)
		}
		for _, k := range strings.Fields(kw) {
			if !slices.Contains(st.Keywords, k) {
				st.Keywords = append(st.Keywords, k)
			}
		}
	}
	slices.Sort(st.Keywords)
	return &st, rows.Err()
}

// UIDRange is an inclusive range of UIDs.
type UIDRange struct{ First, Last uint32 }

// MessagesInRanges lists the messages of a mailbox whose UIDs fall in the
// given ranges, in UID order, each message once. It reads the mailbox
// index, not the database.
func (s *Store) MessagesInRanges(ctx context.Context, accountID, mailboxID int64, ranges []UIDRange) ([]MessageInfo, error) {
	e, err := s.accountEntry(ctx, accountID, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("store: list messages: %w", err)
	}
	ranges = slices.Clone(ranges)
	slices.SortFunc(ranges, func(a, b UIDRange) int { return cmp.Compare(a.First, b.First) })
	e.mu.RLock()
	defer e.mu.RUnlock()
	// The spans of e.msgs the ranges cover, first, so that the result is
	// allocated once (FETCH 1:* of a large mailbox lists every message).
	type span struct{ i, j int }
	var spans []span
	n := 0
	next := uint32(0) // lowest UID not yet listed, so overlapping ranges list a message once
	for _, r := range ranges {
		first := max(r.First, next)
		if first > r.Last {
			continue
		}
		i, _ := e.find(first)
		j := i + sort.Search(len(e.msgs)-i, func(k int) bool { return e.msgs[i+k].uid > r.Last })
		spans = append(spans, span{i, j})
		n += j - i
		if r.Last == math.MaxUint32 {
			break
		}
		next = max(next, r.Last+1)
	}
	out := make([]MessageInfo, 0, n)
	for _, sp := range spans {
		for k := sp.i; k < sp.j; k++ {
			out = append(out, e.msgs[k].info())
		}
	}
	return out, nil
}

// accountEntry returns the current index of an account's mailbox.
func (s *Store) accountEntry(ctx context.Context, accountID, mailboxID int64) (*indexEntry, error) {
	var modseq int64
	err := s.queryRow(ctx, `SELECT highestmodseq FROM mailboxes WHERE id = ? AND account_id = ?`,
		mailboxID, accountID).Scan(&modseq)
	if err != nil {
		return nil, noRows(err, ErrNoMailbox)
	}
	return s.indexEntry(ctx, mailboxID, modseq)
}

// DeletedUIDs lists the UIDs of a mailbox's messages that have \Deleted,
// ascending: what EXPUNGE and CLOSE remove. It reads the mailbox index,
// and returns at once when the index counts none.
func (s *Store) DeletedUIDs(ctx context.Context, accountID, mailboxID int64) ([]uint32, error) {
	e, err := s.accountEntry(ctx, accountID, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("store: deleted messages: %w", err)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.stats.deleted == 0 {
		return nil, nil
	}
	out := make([]uint32, 0, e.stats.deleted)
	for i := range e.msgs {
		if e.msgs[i].flags&bitDeleted != 0 {
			out = append(out, e.msgs[i].uid)
		}
	}
	return out, nil
}

// Selection is what a session needs when it selects a mailbox, read in
// one snapshot, without a pass over the messages.
type Selection struct {
	Mailbox *Mailbox // Messages and Size are not filled in
	// UIDs are ascending. The array is shared with the mailbox index and
	// other sessions: read-only; copy it before changing it (appending to
	// it copies, as its capacity is its length).
	UIDs  []uint32
	Stats MailboxStats // Keywords is shared and read-only too
}

// Select reads a mailbox's state, its UIDs and its counts at once.
func (s *Store) Select(ctx context.Context, accountID int64, name string) (*Selection, error) {
	return s.selectMailbox(ctx, accountID, name, nil)
}

// selectMailbox is Select; also is called with the loaded index entry,
// under its read lock, so that it can read more of the same snapshot.
func (s *Store) selectMailbox(ctx context.Context, accountID int64, name string, also func(e *indexEntry)) (*Selection, error) {
	name = CanonicalName(name)
	mb, err := s.Mailbox(ctx, accountID, name)
	if err != nil {
		return nil, err
	}
	e, err := s.indexEntry(ctx, mb.ID, mb.HighestModSeq)
	if err != nil {
		return nil, fmt.Errorf("store: select %q: %w", name, err)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	// The index may be ahead of the row read above (a commit in between):
	// report the state the UIDs reflect.
	mb.HighestModSeq = max(mb.HighestModSeq, e.modseq)
	n := len(e.uids)
	if n > 0 {
		mb.UIDNext = max(mb.UIDNext, e.uids[n-1]+1)
	}
	st := &e.stats
	sel := &Selection{Mailbox: mb, UIDs: e.uids[:n:n], Stats: MailboxStats{
		Unseen:      st.unseen,
		Deleted:     st.deleted,
		FirstUnseen: st.firstUnseen,
		Keywords:    st.sorted,
	}}
	if also != nil {
		also(e)
	}
	return sel, nil
}
