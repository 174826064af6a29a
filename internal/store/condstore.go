// What CONDSTORE and QRESYNC (RFC 7162) need from the store: conditional
// flag changes (STORE UNCHANGEDSINCE), the UIDs expunged since a modseq
// (VANISHED (EARLIER)), and a selection that also lists what changed since
// a modseq, read in the same snapshot as the UIDs so that a resync is exact.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// StoreFlagsOptions modify StoreFlagsWith.
type StoreFlagsOptions struct {
	// Conditional makes the change conditional (RFC 7162 §3.1.3
	// UNCHANGEDSINCE): a message whose modseq is above UnchangedSince is
	// left alone and reported as failed. UnchangedSince 0 fails for every
	// existing message, since modseqs start at 1.
	Conditional    bool
	UnchangedSince int64
}

// StoreFlagsWith is StoreFlags with options. It returns the messages whose
// flags changed and, for a conditional change, the UIDs that failed the
// test (ascending as given). Both the test and the change happen in one
// transaction, so no other change can slip in between.
func (s *Store) StoreFlagsWith(ctx context.Context, accountID, mailboxID int64, uids []uint32, op FlagOp, flags []string, opts StoreFlagsOptions) (updated []FlagUpdate, failed []uint32, err error) {
	setBits, setKw := encodeFlags(flags)
	err = s.write(ctx, func(t *txn) error {
		updated, failed = updated[:0], failed[:0]
		if err := ownMailbox(t, accountID, mailboxID); err != nil {
			return err
		}
		for _, uid := range uids {
			var bits, modseq int64
			var kw string
			err := t.queryRow(`SELECT flags, keywords, modseq FROM messages WHERE mailbox_id = ? AND uid = ?`,
				mailboxID, uid).Scan(&bits, &kw, &modseq)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if opts.Conditional && modseq > opts.UnchangedSince {
				failed = append(failed, uid)
				continue
			}
			nb, nkw := applyFlags(bits, kw, op, setBits, setKw)
			if nb == bits && nkw == kw {
				continue
			}
			modseq, err = bumpModSeq(t, mailboxID)
			if err != nil {
				return err
			}
			if _, err := t.exec(`UPDATE messages SET flags = ?, keywords = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?`,
				nb, nkw, modseq, mailboxID, uid); err != nil {
				return err
			}
			u := FlagUpdate{UID: uid, ModSeq: modseq, Flags: decodeFlags(nb, nkw)}
			updated = append(updated, u)
			t.changes = append(t.changes, Change{Kind: ChangeFlags, MailboxID: mailboxID, UID: uid,
				ModSeq: modseq, Flags: u.Flags, accountID: accountID})
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: store flags: %w", err)
	}
	return updated, failed, nil
}

// ExpungedSince lists the UIDs of a mailbox that were expunged with a
// modseq above since and at most upTo (0: no upper bound), ascending. The
// expunge history is kept for as long as the mailbox exists, so the answer
// is exact for any since.
func (s *Store) ExpungedSince(ctx context.Context, accountID, mailboxID, since, upTo int64) ([]uint32, error) {
	if upTo <= 0 {
		upTo = 1<<63 - 1
	}
	rows, err := s.db.QueryContext(ctx, `SELECT e.uid FROM expunged e JOIN mailboxes b ON b.id = e.mailbox_id
		WHERE e.mailbox_id = ? AND b.account_id = ? AND e.modseq > ? AND e.modseq <= ? ORDER BY e.uid`,
		mailboxID, accountID, since, upTo)
	if err != nil {
		return nil, fmt.Errorf("store: expunged since %d: %w", since, err)
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var u uint32
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("store: expunged since %d: %w", since, err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: expunged since %d: %w", since, err)
	}
	return out, nil
}

// Resync is what changed in a mailbox since a modseq, as of a Selection.
type Resync struct {
	// Changed are the messages (of the selection) whose modseq is above
	// the one asked for, in UID order: new ones and those whose flags
	// changed.
	Changed []MessageInfo
	// Vanished are the UIDs expunged since then, up to the selection's
	// HighestModSeq (later expunges reach the session through the feed).
	Vanished []uint32
}

// SelectChangedSince is Select plus what changed since modseq since (RFC
// 7162 §3.2.5 QRESYNC): the changed messages come from the same snapshot
// as the selection's UIDs, and the vanished UIDs stop at its
// HighestModSeq, so that nothing is reported twice or missed.
func (s *Store) SelectChangedSince(ctx context.Context, accountID int64, name string, since int64) (*Selection, *Resync, error) {
	var res Resync
	sel, err := s.selectMailbox(ctx, accountID, name, func(e *indexEntry) {
		for i := range e.msgs {
			if e.msgs[i].modseq > since {
				res.Changed = append(res.Changed, e.msgs[i].info())
			}
		}
	})
	if err != nil {
		return nil, nil, err
	}
	if since < sel.Mailbox.HighestModSeq {
		if res.Vanished, err = s.ExpungedSince(ctx, accountID, sel.Mailbox.ID, since, sel.Mailbox.HighestModSeq); err != nil {
			return nil, nil, err
		}
	}
	return sel, &res, nil
}
