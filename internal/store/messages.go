// Messages: listing a mailbox, reading bodies and their cached structure,
// changing flags, and expunging (which remembers the UIDs for QRESYNC and
// frees bodies no other message shares).
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"loft/internal/message"
)

// The system flags (RFC 9051 §2.3.2), stored as bits.
var flagBits = []struct {
	name string
	bit  int64
}{
	{`\Seen`, 1},
	{`\Answered`, 2},
	{`\Flagged`, 4},
	{`\Deleted`, 8},
	{`\Draft`, 16},
}

// encodeFlags splits flags into system-flag bits and the keyword column.
// Flags are case-insensitive; the first spelling of a keyword is kept.
func encodeFlags(flags []string) (bits int64, keywords string) {
	var kw []string
next:
	for _, f := range flags {
		for _, sf := range flagBits {
			if strings.EqualFold(f, sf.name) {
				bits |= sf.bit
				continue next
			}
		}
		if f == "" || strings.HasPrefix(f, `\`) {
			continue // \Recent and unknown system flags are not stored
		}
		if !slices.ContainsFunc(kw, func(k string) bool { return strings.EqualFold(k, f) }) {
			kw = append(kw, f)
		}
	}
	sort.Strings(kw)
	return bits, strings.Join(kw, " ")
}

func decodeFlags(bits int64, keywords string) []string {
	if bits == 0 && keywords == "" {
		return nil // no allocation for the many messages without flags
	}
	out := make([]string, 0, 4)
	for _, sf := range flagBits {
		if bits&sf.bit != 0 {
			out = append(out, sf.name)
		}
	}
	if keywords != "" {
		out = append(out, strings.Fields(keywords)...)
	}
	return out
}

// MessageInfo is a message's metadata.
type MessageInfo struct {
	UID          uint32
	ModSeq       int64
	InternalDate time.Time
	Size         int64 // octets as served (CRLF line endings)
	Flags        []string
	Blob         string // body id: OpenBody, Structure
}

// HasFlag reports whether the message has flag (case-insensitive).
func (m *MessageInfo) HasFlag(flag string) bool {
	return slices.ContainsFunc(m.Flags, func(f string) bool { return strings.EqualFold(f, flag) })
}

// Messages lists a mailbox's messages in UID order: a snapshot.
func (s *Store) Messages(ctx context.Context, accountID, mailboxID int64) ([]MessageInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT m.uid, m.modseq, m.internal_date, m.size, m.flags, m.keywords, m.blob
		FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
		WHERE m.mailbox_id = ? AND b.account_id = ? ORDER BY m.uid`, mailboxID, accountID)
	if err != nil {
		return nil, fmt.Errorf("store: list messages: %w", err)
	}
	defer rows.Close()
	var out []MessageInfo
	for rows.Next() {
		var m MessageInfo
		var date, bits int64
		var kw string
		if err := rows.Scan(&m.UID, &m.ModSeq, &date, &m.Size, &bits, &kw, &m.Blob); err != nil {
			return nil, fmt.Errorf("store: list messages: %w", err)
		}
		m.InternalDate = time.Unix(date, 0)
		m.Flags = decodeFlags(bits, kw)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list messages: %w", err)
	}
	return out, nil
}

// OpenBody opens a message body for reading. Bodies are immutable and stay
// readable through an open file even if the message is expunged meanwhile.
func (s *Store) OpenBody(blobID string) (*os.File, error) {
	f, err := s.blobs.Open(blobID)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store: %w", ErrNoMessage)
	}
	return f, err
}

// Structure returns a body's envelope and MIME structure, parsed at
// delivery. The Message may be shared with other callers (it comes from a
// cache): it must not be modified.
func (s *Store) Structure(ctx context.Context, blobID string) (*message.Message, error) {
	if m := s.structs.get(blobID); m != nil {
		return m, nil
	}
	var raw []byte
	err := s.queryRow(ctx, `SELECT structure FROM bodies WHERE blob = ?`, blobID).Scan(&raw)
	if err != nil {
		return nil, fmt.Errorf("store: structure of %s: %w", blobID, noRows(err, ErrNoMessage))
	}
	var m message.Message
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("store: structure of %s: %w", blobID, err)
	}
	s.structs.put(blobID, &m, len(raw))
	return &m, nil
}

// FlagOp says how StoreFlags combines the given flags with the current ones.
type FlagOp int

// Flag operations (IMAP STORE FLAGS, +FLAGS, -FLAGS).
const (
	FlagsReplace FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// FlagUpdate is the new state of one message whose flags changed.
type FlagUpdate struct {
	UID    uint32
	ModSeq int64
	Flags  []string
}

// StoreFlags changes the flags of the messages with the given UIDs. UIDs
// that do not exist (any more) are skipped. Messages whose flags end up
// unchanged keep their modseq and are not reported.
func (s *Store) StoreFlags(ctx context.Context, accountID, mailboxID int64, uids []uint32, op FlagOp, flags []string) ([]FlagUpdate, error) {
	updated, _, err := s.StoreFlagsWith(ctx, accountID, mailboxID, uids, op, flags, StoreFlagsOptions{})
	return updated, err
}

func applyFlags(bits int64, kw string, op FlagOp, setBits int64, setKw string) (int64, string) {
	switch op {
	case FlagsReplace:
		return setBits, setKw
	case FlagsAdd:
		_, merged := encodeFlags(append(strings.Fields(kw), strings.Fields(setKw)...))
		return bits | setBits, merged
	default:
		var keep []string
		for _, k := range strings.Fields(kw) {
			if !slices.ContainsFunc(strings.Fields(setKw), func(r string) bool { return strings.EqualFold(r, k) }) {
				keep = append(keep, k)
			}
		}
		return bits &^ setBits, strings.Join(keep, " ")
	}
}

// Expunge removes the messages with the given UIDs from a mailbox (UIDs
// already gone are skipped) and returns the UIDs removed, ascending. The
// removal is remembered with its modseq for QRESYNC, the account's usage
// drops at once, and bodies that no other message shares are deleted.
func (s *Store) Expunge(ctx context.Context, accountID, mailboxID int64, uids []uint32) ([]uint32, error) {
	var gone []uint32
	err := s.write(ctx, func(t *txn) error {
		var err error
		gone, err = expungeUIDs(t, accountID, mailboxID, uids)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: expunge: %w", err)
	}
	return gone, nil
}

// expungeUIDs is Expunge inside a write transaction.
func expungeUIDs(t *txn, accountID, mailboxID int64, uids []uint32) ([]uint32, error) {
	if err := ownMailbox(t, accountID, mailboxID); err != nil {
		return nil, err
	}
	var gone []uint32
	var freed int64
	var blobs []string
	for _, uid := range uids {
		var size int64
		var blobID string
		err := t.queryRow(`DELETE FROM messages WHERE mailbox_id = ? AND uid = ? RETURNING size, blob`,
			mailboxID, uid).Scan(&size, &blobID)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		gone = append(gone, uid)
		freed += size
		blobs = append(blobs, blobID)
	}
	if len(gone) == 0 {
		return nil, nil
	}
	slices.Sort(gone)
	modseq, err := bumpModSeq(t, mailboxID)
	if err != nil {
		return nil, err
	}
	for _, uid := range gone {
		if _, err := t.exec(`INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES (?, ?, ?)`,
			mailboxID, uid, modseq); err != nil {
			return nil, err
		}
	}
	if _, err := t.exec(`UPDATE accounts SET usage = usage - ?, messages = messages - ? WHERE id = ?`,
		freed, len(gone), accountID); err != nil {
		return nil, err
	}
	removed, err := dropUnreferenced(t, blobs)
	if err != nil {
		return nil, err
	}
	t.removes = append(t.removes, removed...)
	t.changes = append(t.changes, Change{Kind: ChangeExpunge, MailboxID: mailboxID,
		UIDs: slices.Clone(gone), ModSeq: modseq, accountID: accountID})
	return gone, nil
}

func ownMailbox(t *txn, accountID, mailboxID int64) error {
	var one int
	err := t.queryRow(`SELECT 1 FROM mailboxes WHERE id = ? AND account_id = ?`, mailboxID, accountID).Scan(&one)
	return noRows(err, ErrNoMailbox)
}

func bumpModSeq(t *txn, mailboxID int64) (int64, error) {
	var modseq int64
	err := t.queryRow(`UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq`,
		mailboxID).Scan(&modseq)
	return modseq, noRows(err, ErrNoMailbox)
}

// dropUnreferenced deletes the body rows of blobs no message refers to any
// more and returns their ids, whose files go after the commit.
func dropUnreferenced(t *txn, blobs []string) ([]string, error) {
	var removed []string
	for _, id := range blobs {
		if slices.Contains(removed, id) {
			continue
		}
		res, err := t.exec(`DELETE FROM bodies WHERE blob = ? AND NOT EXISTS (SELECT 1 FROM messages WHERE blob = ?)`, id, id)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			removed = append(removed, id)
		}
	}
	return removed, nil
}

func distinctBlobs(t *txn, query string, args ...any) ([]string, error) {
	rows, err := t.query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func noRows(err error, notFound error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return notFound
	}
	return err
}
