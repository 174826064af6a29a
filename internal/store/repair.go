// Repair: fixing what the consistency check finds, without losing mail.
// Every fix runs in the writer's transactions (s.write), so it is exact and
// atomic beside a running server's deliveries; each re-reads what it
// changes inside its transaction rather than trusting the earlier scan.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"loft/internal/message"
)

// adoptBatch bounds how many orphaned bodies share one commit, so that a
// repair of a badly damaged store does not hold the writer for long.
const adoptBatch = 64

// Repair checks the store like CheckWith and fixes what can be fixed
// without losing mail, saying what it did in Report.Repairs:
//
//   - UIDNEXT is raised above every UID of the mailbox (also expunged
//     ones), HIGHESTMODSEQ to every modseq, the UIDVALIDITY counter to
//     every UIDVALIDITY;
//   - bodies recorded without a SHA-256 get one;
//   - messages whose body file is missing are expunged and listed by UID
//     (their content is lost already; they are reported, never dropped
//     silently, and only Repair removes them);
//   - bodies that belong to no message (a file without a row, or a row
//     without messages) become messages in the "lost+found" mailbox of
//     opts.LostFound, never deleted. Beside a running server (not
//     opts.Stopped) only files older than an hour count: younger ones may
//     be deliveries in flight;
//   - a message size that differs from its intact body's takes the body's;
//   - usage and message counts, and each mailbox's STATUS counts, are
//     recomputed.
//
// Damaged bodies (file size or SHA-256 differs from the record) and
// duplicate UIDs are reported only. Report.Problems are what the check
// found before repairing; check again to see what is left.
func (s *Store) Repair(ctx context.Context, opts CheckOptions) (*Report, error) {
	f, err := s.scan(ctx, opts, true)
	if err != nil {
		return nil, fmt.Errorf("store: repair: %w", err)
	}
	rep := &Report{Problems: f.problems, Unreferenced: f.unreferenced}
	steps := []func(context.Context, *findings, CheckOptions, *Report) error{
		s.repairMailboxes, // first: what follows adds messages and needs fresh UIDs
		s.recordSums,
		s.expungeMissing,
		s.adoptOrphans,
		s.repairSizes,
		s.repairCounters, // last: after the expunges and adoptions
	}
	for _, step := range steps {
		if err := step(ctx, f, opts, rep); err != nil {
			return rep, fmt.Errorf("store: repair: %w", err)
		}
	}
	return rep, nil
}

func (rep *Report) did(format string, args ...any) {
	rep.Repairs = append(rep.Repairs, fmt.Sprintf(format, args...))
}

// repairMailboxes raises UIDNEXT, HIGHESTMODSEQ and the UIDVALIDITY
// counter to what the mailboxes' messages and expunges need. Raising never
// invalidates a client's cache; lowering would.
func (s *Store) repairMailboxes(ctx context.Context, _ *findings, _ CheckOptions, rep *Report) error {
	type fix struct {
		id                       int64
		addr, name               string
		uidnext, highest         int64
		needUIDNext, needHighest int64
	}
	var lines []string
	err := s.write(ctx, func(t *txn) error {
		lines = lines[:0]
		rows, err := t.query(`SELECT b.id, a.address, b.name, b.uidnext, b.highestmodseq,
			max(coalesce((SELECT max(uid) FROM messages WHERE mailbox_id = b.id), 0),
			    coalesce((SELECT max(uid) FROM expunged WHERE mailbox_id = b.id), 0)) + 1,
			max(coalesce((SELECT max(modseq) FROM messages WHERE mailbox_id = b.id), 0),
			    coalesce((SELECT max(modseq) FROM expunged WHERE mailbox_id = b.id), 0))
			FROM mailboxes b JOIN accounts a ON a.id = b.account_id ORDER BY a.address, b.name`)
		if err != nil {
			return err
		}
		var fixes []fix
		for rows.Next() {
			var x fix
			if err := rows.Scan(&x.id, &x.addr, &x.name, &x.uidnext, &x.highest, &x.needUIDNext, &x.needHighest); err != nil {
				rows.Close()
				return err
			}
			if x.needUIDNext > x.uidnext || x.needHighest > x.highest {
				fixes = append(fixes, x)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, x := range fixes {
			if _, err := t.exec(`UPDATE mailboxes SET uidnext = max(uidnext, ?), highestmodseq = max(highestmodseq, ?) WHERE id = ?`,
				x.needUIDNext, x.needHighest, x.id); err != nil {
				return err
			}
			if x.needUIDNext > x.uidnext {
				lines = append(lines, fmt.Sprintf("account %s, mailbox %q: raised UIDNEXT from %d to %d, above its highest UID",
					x.addr, x.name, x.uidnext, x.needUIDNext))
			}
			if x.needHighest > x.highest {
				lines = append(lines, fmt.Sprintf("account %s, mailbox %q: raised HIGHESTMODSEQ from %d to %d, its highest modseq",
					x.addr, x.name, x.highest, x.needHighest))
			}
		}
		var counter, highest int64
		if err := t.queryRow(`SELECT (SELECT coalesce(max(value), 0) FROM meta WHERE key = 'uidvalidity'),
			(SELECT coalesce(max(uidvalidity), 0) FROM mailboxes)`).Scan(&counter, &highest); err != nil {
			return err
		}
		if counter < highest {
			if _, err := t.exec(`INSERT INTO meta(key, value) VALUES ('uidvalidity', ?)
				ON CONFLICT(key) DO UPDATE SET value = excluded.value`, highest); err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("raised the UIDVALIDITY counter from %d to %d, the highest in use", counter, highest))
		}
		return nil
	})
	rep.Repairs = append(rep.Repairs, lines...)
	return err
}

// recordSums records the SHA-256 that the scan computed for bodies stored
// before hashes were kept, so that later checks can verify them.
func (s *Store) recordSums(ctx context.Context, f *findings, _ CheckOptions, rep *Report) error {
	ids := make([]string, 0, len(f.sums))
	for id := range f.sums {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	recorded := 0
	for chunk := range slices.Chunk(ids, 512) {
		n := 0
		err := s.write(ctx, func(t *txn) error {
			n = 0
			for _, id := range chunk {
				res, err := t.exec(`UPDATE bodies SET sha256 = ? WHERE blob = ? AND sha256 IS NULL`, f.sums[id], id)
				if err != nil {
					return err
				}
				k, _ := res.RowsAffected()
				n += int(k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		recorded += n
	}
	if recorded > 0 {
		rep.did("recorded the SHA-256 of %d bodies stored before hashes were kept", recorded)
	}
	return nil
}

// expungeMissing expunges the messages whose body file is missing, with
// the ordinary Expunge (modseq, QRESYNC memory, usage), mailbox by mailbox.
func (s *Store) expungeMissing(ctx context.Context, f *findings, _ CheckOptions, rep *Report) error {
	ids := make([]string, 0, len(f.missing))
	for id := range f.missing {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		// Put back by hand meanwhile? Then there is nothing to repair.
		if _, err := os.Stat(s.blobs.Path(id)); err == nil {
			continue
		}
		refs := f.missing[id]
		if len(refs) == 0 {
			var n int64
			err := s.write(ctx, func(t *txn) error {
				res, err := t.exec(`DELETE FROM bodies WHERE blob = ? AND NOT EXISTS (SELECT 1 FROM messages WHERE blob = ?)`, id, id)
				if err == nil {
					n, err = res.RowsAffected()
				}
				return err
			})
			if err != nil {
				return err
			}
			if n > 0 {
				rep.did("removed the record of body %s: neither its file nor any message was left", id)
			}
			continue
		}
		type box struct{ accountID, mailboxID int64 }
		byBox := map[box][]uint32{}
		names := map[box]string{}
		var order []box
		for _, m := range refs {
			b := box{m.accountID, m.mailboxID}
			if _, ok := byBox[b]; !ok {
				order = append(order, b)
				names[b] = fmt.Sprintf("account %s, mailbox %q", m.address, m.mailbox)
			}
			byBox[b] = append(byBox[b], m.uid)
		}
		for _, b := range order {
			gone, err := s.Expunge(ctx, b.accountID, b.mailboxID, byBox[b])
			if errors.Is(err, ErrNoMailbox) {
				continue // deleted meanwhile, with its messages
			}
			if err != nil {
				return err
			}
			if len(gone) > 0 {
				rep.did("%s: expunged uid %s, whose body file %s is missing: their content was lost already",
					names[b], joinUIDs(gone), id)
			}
		}
	}
	return nil
}

func joinUIDs(uids []uint32) string {
	s := make([]string, len(uids))
	for i, u := range uids {
		s[i] = fmt.Sprint(u)
	}
	return strings.Join(s, ", ")
}

// adopted is an orphaned body made ready to become a message.
type adopted struct {
	orphan
	structure []byte
	sum       []byte
}

// adoptOrphans makes every body that belongs to no message a message in
// the lost+found mailbox of opts.LostFound.
func (s *Store) adoptOrphans(ctx context.Context, f *findings, opts CheckOptions, rep *Report) error {
	if len(f.orphans) == 0 {
		return nil
	}
	if opts.LostFound == "" {
		rep.did("left %d bodies that belong to no message: no account named to receive them in %s", len(f.orphans), LostFound)
		return nil
	}
	acct, err := s.Account(ctx, opts.LostFound)
	if errors.Is(err, ErrNoAccount) {
		rep.did("left %d bodies that belong to no message: no account %s to receive them in %s",
			len(f.orphans), normAddress(opts.LostFound), LostFound)
		return nil
	}
	if err != nil {
		return err
	}
	for chunk := range slices.Chunk(f.orphans, adoptBatch) {
		var ready []adopted
		for _, o := range chunk {
			a, err := s.prepareOrphan(o)
			if errors.Is(err, os.ErrNotExist) {
				continue // delivered and expunged, or cleaned up, meanwhile
			}
			if err != nil {
				return err
			}
			ready = append(ready, a)
		}
		var lines []string
		err := s.write(ctx, func(t *txn) error {
			lines = lines[:0]
			mailboxID, err := lostFoundMailbox(t, acct.ID)
			if err != nil {
				return err
			}
			for _, a := range ready {
				ok, err := stillOrphaned(t, a)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				if !a.row {
					if _, err := t.exec(`INSERT INTO bodies(blob, size, structure, sha256) VALUES (?, ?, ?, ?)`,
						a.id, a.size, a.structure, a.sum); err != nil {
						return err
					}
				}
				uid, err := adoptMessage(t, acct.ID, mailboxID, a.id, a.size, a.modTime.Unix())
				if err != nil {
					return err
				}
				what := "body file"
				if a.row {
					what = "body"
				}
				lines = append(lines, fmt.Sprintf("moved %s %s (%d bytes) that belonged to no message to account %s, mailbox %q, uid %d",
					what, a.id, a.size, acct.Address, LostFound, uid))
			}
			return nil
		})
		if err != nil {
			return err
		}
		rep.Repairs = append(rep.Repairs, lines...)
	}
	return nil
}

// prepareOrphan reads an orphaned body: its size, SHA-256 and MIME
// structure (the file may be anything, even a partial write: the parser is
// tolerant), and makes its directory entry durable before a row refers to
// it, as a delivery does.
func (s *Store) prepareOrphan(o orphan) (adopted, error) {
	a := adopted{orphan: o}
	if o.row {
		if _, err := os.Stat(s.blobs.Path(o.id)); err != nil {
			return a, err
		}
		return a, nil
	}
	f, err := s.blobs.Open(o.id)
	if err != nil {
		return a, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return a, err
	}
	a.size = fi.Size()
	h := newBodyHash()
	if _, err := io.Copy(h, f); err != nil {
		return a, fmt.Errorf("read body %s: %w", o.id, err)
	}
	a.sum = h.Sum(nil)
	msg, err := message.Parse(f, a.size)
	if err != nil {
		return a, fmt.Errorf("parse body %s: %w", o.id, err)
	}
	if a.structure, err = json.Marshal(msg); err != nil {
		return a, fmt.Errorf("encode structure of %s: %w", o.id, err)
	}
	if err := s.blobs.SyncDirs([]string{o.id}); err != nil {
		return a, err
	}
	return a, nil
}

// stillOrphaned re-reads, inside the writer's transaction, whether a body
// still belongs to no message: a delivery may have committed it since.
func stillOrphaned(t *txn, a adopted) (bool, error) {
	var messages int64
	err := t.queryRow(`SELECT (SELECT count(*) FROM messages WHERE blob = ?) FROM bodies WHERE blob = ?`,
		a.id, a.id).Scan(&messages)
	if errors.Is(err, sql.ErrNoRows) {
		return !a.row, nil // a file still without a row; a row gone
	}
	if err != nil {
		return false, err
	}
	return a.row && messages == 0, nil
}

// lostFoundMailbox returns the account's lost+found mailbox, creating it.
func lostFoundMailbox(t *txn, accountID int64) (int64, error) {
	var id int64
	err := t.queryRow(`SELECT id FROM mailboxes WHERE account_id = ? AND name = ?`, accountID, LostFound).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return createMailbox(t, accountID, LostFound, "")
	}
	return id, err
}

// adoptMessage adds a message for an existing body, like insertMessage but
// over quota too: mail is never refused back into existence.
func adoptMessage(t *txn, accountID, mailboxID int64, blobID string, size, date int64) (uint32, error) {
	var uid uint32
	var modseq int64
	err := t.queryRow(`UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
		WHERE id = ? RETURNING uidnext - 1, highestmodseq`, mailboxID).Scan(&uid, &modseq)
	if err != nil {
		return 0, noRows(err, ErrNoMailbox)
	}
	if _, err := t.exec(`INSERT INTO messages(mailbox_id, uid, modseq, internal_date, size, flags, keywords, blob)
		VALUES (?, ?, ?, ?, ?, 0, '', ?)`, mailboxID, uid, modseq, date, size, blobID); err != nil {
		return 0, err
	}
	if _, err := t.exec(`UPDATE accounts SET usage = usage + ?, messages = messages + 1 WHERE id = ?`,
		size, accountID); err != nil {
		return 0, err
	}
	t.changes = append(t.changes, Change{Kind: ChangeNew, MailboxID: mailboxID, UID: uid, ModSeq: modseq,
		Flags: []string{}, Size: size, accountID: accountID})
	return uid, nil
}

// repairSizes gives a message whose size differs from its body's the
// body's, when the body's file is intact (it has the recorded size and,
// if recorded, hash): IMAP and POP3 announce the message size, and must
// announce what they then send.
func (s *Store) repairSizes(ctx context.Context, f *findings, _ CheckOptions, rep *Report) error {
	var lines []string
	err := s.write(ctx, func(t *txn) error {
		lines = lines[:0]
		rows, err := t.query(`SELECT m.id, a.address, b.name, m.uid, m.size, o.size, o.blob
			FROM messages m JOIN bodies o ON o.blob = m.blob JOIN mailboxes b ON b.id = m.mailbox_id
			JOIN accounts a ON a.id = b.account_id WHERE m.size != o.size ORDER BY a.address, b.name, m.uid`)
		if err != nil {
			return err
		}
		type fix struct {
			id, size int64
			line     string
		}
		var fixes []fix
		for rows.Next() {
			var id, uid, size, bodySize int64
			var addr, name, blobID string
			if err := rows.Scan(&id, &addr, &name, &uid, &size, &bodySize, &blobID); err != nil {
				rows.Close()
				return err
			}
			if f.damaged[blobID] {
				continue
			}
			fixes = append(fixes, fix{id, bodySize, fmt.Sprintf("account %s, mailbox %q, uid %d: size %d set to its body's, %d",
				addr, name, uid, size, bodySize)})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, x := range fixes {
			if _, err := t.exec(`UPDATE messages SET size = ? WHERE id = ?`, x.size, x.id); err != nil {
				return err
			}
			lines = append(lines, x.line)
		}
		return nil
	})
	rep.Repairs = append(rep.Repairs, lines...)
	return err
}

// repairCounters recomputes every account's usage and message count from
// its messages, inside one write transaction, so that no concurrent
// delivery can slip between the sum and the update.
func (s *Store) repairCounters(ctx context.Context, _ *findings, _ CheckOptions, rep *Report) error {
	var lines []string
	err := s.write(ctx, func(t *txn) error {
		lines = lines[:0]
		rows, err := t.query(`SELECT a.id, a.address, a.usage, a.messages,
			(SELECT coalesce(sum(m.size), 0) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.account_id = a.id),
			(SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.account_id = a.id)
			FROM accounts a ORDER BY a.address`)
		if err != nil {
			return err
		}
		type fix struct {
			id, usage, count int64
			line             string
		}
		var fixes []fix
		for rows.Next() {
			var id, usage, count, sum, n int64
			var addr string
			if err := rows.Scan(&id, &addr, &usage, &count, &sum, &n); err != nil {
				rows.Close()
				return err
			}
			if usage != sum || count != n {
				fixes = append(fixes, fix{id, sum, n, fmt.Sprintf(
					"account %s: usage %d set to %d and message count %d to %d, recomputed from its messages",
					addr, usage, sum, count, n)})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, x := range fixes {
			if _, err := t.exec(`UPDATE accounts SET usage = ?, messages = ? WHERE id = ?`, x.usage, x.count, x.id); err != nil {
				return err
			}
			lines = append(lines, x.line)
		}
		if err := repairMailboxCounts(t, &lines); err != nil {
			return err
		}
		return repairMessageBodies(t, &lines)
	})
	rep.Repairs = append(rep.Repairs, lines...)
	return err
}

// repairMailboxCounts recomputes the counts of each mailbox whose row's
// differ from its messages', in repairCounters' transaction.
func repairMailboxCounts(t *txn, lines *[]string) error {
	rows, err := t.query(`SELECT b.id, a.address, b.name, b.messages, b.size, b.unseen, b.deleted, ` +
		mailboxCounts + ` FROM mailboxes b JOIN accounts a ON a.id = b.account_id ORDER BY a.address, b.name`)
	if err != nil {
		return err
	}
	type fix struct {
		id   int64
		real [4]int64
		line string
	}
	var fixes []fix
	for rows.Next() {
		var id int64
		var addr, name string
		var kept, real [4]int64
		if err := rows.Scan(&id, &addr, &name, &kept[0], &kept[1], &kept[2], &kept[3], &real[0], &real[1], &real[2], &real[3]); err != nil {
			rows.Close()
			return err
		}
		if kept != real {
			fixes = append(fixes, fix{id, real, fmt.Sprintf(
				"account %s, mailbox %q: counts (messages, size, unseen, deleted) %v set to %v, recomputed from its messages",
				addr, name, kept, real)})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, x := range fixes {
		if _, err := t.exec(`UPDATE mailboxes SET messages = ?, size = ?, unseen = ?, deleted = ? WHERE id = ?`,
			x.real[0], x.real[1], x.real[2], x.real[3], x.id); err != nil {
			return err
		}
		*lines = append(*lines, x.line)
	}
	return nil
}

// repairMessageBodies sets the body_id and sent of messages whose columns
// differ from their body's index row, in repairCounters' transaction.
func repairMessageBodies(t *txn, lines *[]string) error {
	rows, err := t.query(`SELECT m.id, a.address, b.name, m.uid ` + messageBodyMismatch)
	if err != nil {
		return err
	}
	type fix struct {
		id   int64
		line string
	}
	var fixes []fix
	for rows.Next() {
		var id, uid int64
		var addr, name string
		if err := rows.Scan(&id, &addr, &name, &uid); err != nil {
			rows.Close()
			return err
		}
		fixes = append(fixes, fix{id, fmt.Sprintf("account %s, mailbox %q, uid %d: body index row and sent date set from its body's", addr, name, uid)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, x := range fixes {
		if _, err := t.exec(`UPDATE messages SET (body_id, sent) =
			(SELECT i.id, coalesce(i.sent, messages.internal_date) FROM body_index i WHERE i.blob = messages.blob)
			WHERE id = ?`, x.id); err != nil {
			return err
		}
		*lines = append(*lines, x.line)
	}
	return nil
}
