// Consistency check: recomputes what the store keeps incrementally (usage,
// message counts, each mailbox's STATUS counts, UIDNEXT, HIGHESTMODSEQ) and holds the database against
// the body files: every message has its file, with the recorded size and
// SHA-256, and every file belongs to a message. `loft check` and the crash
// tests use it; Repair (repair.go) fixes what it finds.
//
// It runs beside a live server. It reads the metadata in one read-only
// snapshot (which holds up no writer), then looks at the files, and checks
// again against the current state whatever a delivery or an expunge in the
// meantime could explain: a file that vanished with its row was expunged,
// a file whose row appeared was delivered.
package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sort"
	"time"

	"loft/internal/blob"
)

// orphanGrace is how old a body file without a message must be before a
// check beside a running server calls it an orphan. A delivery writes its
// file first, streaming from the client (SMTP waits up to 10 minutes for
// each read), and commits its message after; a younger file may be such a
// delivery in flight. An hour leaves a wide margin.
const orphanGrace = time.Hour

// LostFound is the mailbox into which Repair puts bodies that belong to no
// message, so that they are never deleted unseen.
const LostFound = "lost+found"

// newBodyHash returns the hash whose sum is recorded for every body
// (bodies.sha256) and verified by Check: feed it the body's bytes exactly
// as stored.
func newBodyHash() hash.Hash { return sha256.New() }

// Report is what Check or Repair found.
type Report struct {
	// Problems are inconsistencies, one line each: each one a bug or
	// damage.
	Problems []string
	// Unreferenced counts body files that no message refers to and that
	// are younger than an hour on a store a server may be writing to:
	// deliveries in flight, or leftovers of an interrupted one (the server
	// frees those at its next start). Not problems.
	Unreferenced int
	// Repairs says what Repair did, one line each; empty for Check.
	Repairs []string
}

// CheckOptions tune Check and Repair.
type CheckOptions struct {
	// Stopped says that no server is writing to the store (the caller
	// holds the data directory's lock): no delivery is in flight, so
	// every body file without a message is an orphan, however new.
	Stopped bool
	// LostFound is the address of the account whose "lost+found" mailbox
	// receives orphaned bodies (Repair only). Without it, Repair leaves
	// orphans alone and says so.
	LostFound string
}

// Check verifies the store (see the file comment) and changes nothing.
// It assumes a server may be running: body files younger than an hour
// without a message are counted as Unreferenced, not as problems.
func (s *Store) Check(ctx context.Context) (*Report, error) {
	return s.CheckWith(ctx, CheckOptions{})
}

// CheckWith is Check with options.
func (s *Store) CheckWith(ctx context.Context, opts CheckOptions) (*Report, error) {
	f, err := s.scan(ctx, opts, false)
	if err != nil {
		return nil, fmt.Errorf("store: check: %w", err)
	}
	return &Report{Problems: f.problems, Unreferenced: f.unreferenced}, nil
}

// msgRef names a message, for problem lines and for Repair.
type msgRef struct {
	accountID, mailboxID int64
	address, mailbox     string
	uid                  uint32
}

func (m msgRef) String() string {
	return fmt.Sprintf("account %s, mailbox %q, uid %d", m.address, m.mailbox, m.uid)
}

// orphan is a body that belongs to no message.
type orphan struct {
	id      string
	size    int64
	modTime time.Time
	row     bool // its bodies row exists (else only its file does)
}

// bodyRow is a row of the bodies table as the snapshot had it.
type bodyRow struct {
	size     int64
	sum      []byte // nil: not recorded
	messages int64
}

// findings is what scan found: problem lines for Check, details for Repair.
type findings struct {
	problems     []string
	unreferenced int
	// missing maps a body whose file is gone to the messages that still
	// refer to it (none: only the row is left).
	missing map[string][]msgRef
	orphans []orphan
	// damaged bodies: their file's size or hash differs from the row.
	damaged map[string]bool
	// sums computed for bodies recorded without one (when asked to).
	sums map[string][]byte
}

func (f *findings) problem(format string, args ...any) {
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
}

// scan runs the whole check. With hashUnrecorded, it also computes the
// SHA-256 of bodies recorded without one, for Repair to record.
func (s *Store) scan(ctx context.Context, opts CheckOptions, hashUnrecorded bool) (*findings, error) {
	f := &findings{missing: map[string][]msgRef{}, damaged: map[string]bool{}, sums: map[string][]byte{}}
	// A read-only transaction is a plain BEGIN: a snapshot that holds up no
	// writer (the store's DSN makes other transactions BEGIN IMMEDIATE).
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := checkAccounts(ctx, tx, f); err != nil {
		return nil, err
	}
	if err := checkMailboxes(ctx, tx, f); err != nil {
		return nil, err
	}
	bodies, err := readBodies(ctx, tx, f)
	if err != nil {
		return nil, err
	}
	// Done with the snapshot: reading every file can take long, and an
	// open snapshot keeps the WAL from being checkpointed.
	tx.Rollback()

	onDisk := map[string]bool{}
	if err := s.blobs.IDs(func(id string) error { onDisk[id] = true; return nil }); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(bodies))
	for id := range bodies {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		b := bodies[id]
		if !onDisk[id] {
			if err := s.checkMissing(ctx, f, id); err != nil {
				return nil, err
			}
			continue
		}
		if b.messages == 0 {
			if err := s.checkChildless(ctx, f, id, b); err != nil {
				return nil, err
			}
		}
		if err := s.checkFile(ctx, f, id, b, hashUnrecorded); err != nil {
			return nil, err
		}
	}
	var files []string
	for id := range onDisk {
		if _, ok := bodies[id]; !ok {
			files = append(files, id)
		}
	}
	sort.Strings(files)
	for _, id := range files {
		if err := s.checkOrphanFile(ctx, f, id, opts.Stopped); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func checkAccounts(ctx context.Context, tx *sql.Tx, f *findings) error {
	rows, err := tx.QueryContext(ctx, `SELECT a.address, a.usage, a.messages,
		(SELECT coalesce(sum(m.size), 0) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.account_id = a.id),
		(SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.account_id = a.id)
		FROM accounts a ORDER BY a.address`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var addr string
		var usage, count, sum, n int64
		if err := rows.Scan(&addr, &usage, &count, &sum, &n); err != nil {
			return err
		}
		if usage != sum {
			f.problem("account %s: usage %d, but its messages add up to %d", addr, usage, sum)
		}
		if count != n {
			f.problem("account %s: message count %d, but it has %d", addr, count, n)
		}
	}
	return rows.Err()
}

// mailboxCounts computes, for the mailbox b of the query, what its row's
// messages, size, unseen and deleted columns must be.
const mailboxCounts = `(SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id),
	(SELECT coalesce(sum(m.size), 0) FROM messages m WHERE m.mailbox_id = b.id),
	(SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id AND m.flags & 1 = 0),
	(SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id AND m.flags & 8 != 0)`

// messageBodyMismatch selects (after the columns) the messages whose
// body_id and sent differ from what their body's body_index row says.
const messageBodyMismatch = `FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id JOIN accounts a ON a.id = b.account_id
	LEFT JOIN body_index i ON i.blob = m.blob
	WHERE m.body_id IS NOT i.id OR m.sent IS NOT CASE WHEN i.id IS NULL THEN NULL ELSE coalesce(i.sent, m.internal_date) END`

// checkMailboxes checks UIDs and modseqs against each mailbox's UIDNEXT
// and HIGHESTMODSEQ (RFC 9051 §2.3.1.1: UIDs strictly ascend and are never
// reused; RFC 7162 §3.1.1: no modseq above HIGHESTMODSEQ), also for the
// remembered expunges, and the UIDVALIDITY counter.
func checkMailboxes(ctx context.Context, tx *sql.Tx, f *findings) error {
	for _, q := range []struct{ table, what string }{{"messages", "uid"}, {"expunged", "expunged uid"}} {
		rows, err := tx.QueryContext(ctx, `SELECT a.address, b.name, m.uid, m.modseq, b.uidnext, b.highestmodseq
			FROM `+q.table+` m JOIN mailboxes b ON b.id = m.mailbox_id JOIN accounts a ON a.id = b.account_id
			WHERE m.uid >= b.uidnext OR m.uid < 1 OR m.modseq > b.highestmodseq
			ORDER BY a.address, b.name, m.uid`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var addr, name string
			var uid, modseq, uidnext, highest int64
			if err := rows.Scan(&addr, &name, &uid, &modseq, &uidnext, &highest); err != nil {
				rows.Close()
				return err
			}
			switch {
			case uid < 1:
				f.problem("account %s, mailbox %q: %s %d is not a valid UID", addr, name, q.what, uid)
			case uid >= uidnext:
				f.problem("account %s, mailbox %q: %s %d is not below UIDNEXT %d: a new message would reuse it", addr, name, q.what, uid, uidnext)
			}
			if modseq > highest {
				f.problem("account %s, mailbox %q: %s %d has modseq %d, above HIGHESTMODSEQ %d", addr, name, q.what, uid, modseq, highest)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	// UNIQUE (mailbox_id, uid) forbids this; a damaged index would not.
	rows, err := tx.QueryContext(ctx, `SELECT a.address, b.name, m.uid, count(*)
		FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id JOIN accounts a ON a.id = b.account_id
		GROUP BY m.mailbox_id, m.uid HAVING count(*) > 1`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var addr, name string
		var uid, n int64
		if err := rows.Scan(&addr, &name, &uid, &n); err != nil {
			rows.Close()
			return err
		}
		f.problem("account %s, mailbox %q: uid %d is used by %d messages (not repairable: rebuild the index with sqlite3 REINDEX)", addr, name, uid, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// The counts STATUS reads from the mailbox's row (migration 7's
	// triggers keep them).
	rows, err = tx.QueryContext(ctx, `SELECT a.address, b.name, b.messages, b.size, b.unseen, b.deleted, `+
		mailboxCounts+` FROM mailboxes b JOIN accounts a ON a.id = b.account_id ORDER BY a.address, b.name`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var addr, name string
		var kept, real [4]int64
		if err := rows.Scan(&addr, &name, &kept[0], &kept[1], &kept[2], &kept[3], &real[0], &real[1], &real[2], &real[3]); err != nil {
			rows.Close()
			return err
		}
		if kept != real {
			f.problem("account %s, mailbox %q: counts (messages, size, unseen, deleted) are %v, but its messages give %v", addr, name, kept, real)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// Each message's body row and sent date (migration 8's triggers).
	rows, err = tx.QueryContext(ctx, `SELECT a.address, b.name, m.uid `+messageBodyMismatch+` ORDER BY a.address, b.name, m.uid`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var addr, name string
		var uid int64
		if err := rows.Scan(&addr, &name, &uid); err != nil {
			rows.Close()
			return err
		}
		f.problem("account %s, mailbox %q, uid %d: its body index row or sent date differs from its body's", addr, name, uid)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// A mailbox created next gets the counter + 1 (nextUIDValidity): it
	// must be above every UIDVALIDITY in use.
	var counter, highest int64
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT coalesce(max(value), 0) FROM meta WHERE key = 'uidvalidity'),
		(SELECT coalesce(max(uidvalidity), 0) FROM mailboxes)`).Scan(&counter, &highest); err != nil {
		return err
	}
	if counter < highest {
		f.problem("UIDVALIDITY counter %d is below the highest UIDVALIDITY in use, %d: a new mailbox could reuse one", counter, highest)
	}
	return nil
}

// readBodies reads the bodies table, and checks that messages agree with
// their bodies.
func readBodies(ctx context.Context, tx *sql.Tx, f *findings) (map[string]*bodyRow, error) {
	var unrecorded int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM messages m WHERE NOT EXISTS
		(SELECT 1 FROM bodies b WHERE b.blob = m.blob)`).Scan(&unrecorded); err != nil {
		return nil, err
	}
	if unrecorded > 0 {
		f.problem("%d messages refer to a body that is not recorded", unrecorded)
	}
	rows, err := tx.QueryContext(ctx, `SELECT a.address, b.name, m.uid, m.size, o.size
		FROM messages m JOIN bodies o ON o.blob = m.blob JOIN mailboxes b ON b.id = m.mailbox_id
		JOIN accounts a ON a.id = b.account_id WHERE m.size != o.size ORDER BY a.address, b.name, m.uid`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var addr, name string
		var uid, size, bodySize int64
		if err := rows.Scan(&addr, &name, &uid, &size, &bodySize); err != nil {
			rows.Close()
			return nil, err
		}
		f.problem("account %s, mailbox %q, uid %d: size %d, but its body has %d bytes", addr, name, uid, size, bodySize)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	bodies := map[string]*bodyRow{}
	rows, err = tx.QueryContext(ctx, `SELECT o.blob, o.size, o.sha256,
		(SELECT count(*) FROM messages m WHERE m.blob = o.blob) FROM bodies o`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		b := &bodyRow{}
		if err := rows.Scan(&id, &b.size, &b.sum, &b.messages); err != nil {
			return nil, err
		}
		if !blob.ValidID(id) {
			// It could never name a file; nothing to compare.
			f.problem("body row %q does not have the form of a body id (not repairable)", id)
			continue
		}
		bodies[id] = b
	}
	return bodies, rows.Err()
}

// bodyNow reads a body's row as it is now (not in the snapshot): whether it
// exists and how many messages refer to it.
func (s *Store) bodyNow(ctx context.Context, id string) (exists bool, messages int64, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM messages WHERE blob = ?) FROM bodies WHERE blob = ?`,
		id, id).Scan(&messages)
	if errors.Is(err, sql.ErrNoRows) {
		return false, 0, nil
	}
	return err == nil, messages, err
}

// checkMissing handles a body row whose file was not found.
func (s *Store) checkMissing(ctx context.Context, f *findings, id string) error {
	// Expunged since the snapshot (rows first, file after the commit)?
	exists, _, err := s.bodyNow(ctx, id)
	if err != nil || !exists {
		return err
	}
	if _, err := os.Stat(s.blobs.Path(id)); err == nil {
		return nil
	}
	refs, err := s.messagesOf(ctx, id)
	if err != nil {
		return err
	}
	f.missing[id] = refs
	if len(refs) == 0 {
		f.problem("body %s is recorded but its file is missing; no message refers to it", id)
	}
	for _, m := range refs {
		f.problem("%s: its body file %s is missing: the message's content is lost", m, id)
	}
	return nil
}

// messagesOf lists the messages that refer to a body now.
func (s *Store) messagesOf(ctx context.Context, id string) ([]msgRef, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT a.id, b.id, a.address, b.name, m.uid
		FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id JOIN accounts a ON a.id = b.account_id
		WHERE m.blob = ? ORDER BY a.address, b.name, m.uid`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var refs []msgRef
	for rows.Next() {
		var m msgRef
		if err := rows.Scan(&m.accountID, &m.mailboxID, &m.address, &m.mailbox, &m.uid); err != nil {
			return nil, err
		}
		refs = append(refs, m)
	}
	return refs, rows.Err()
}

// checkChildless handles a body row that no message referred to in the
// snapshot. Rows and their messages are committed and removed together,
// so this is damage, whatever its age.
func (s *Store) checkChildless(ctx context.Context, f *findings, id string, b *bodyRow) error {
	exists, n, err := s.bodyNow(ctx, id)
	if err != nil || !exists || n > 0 {
		return err
	}
	fi, err := os.Stat(s.blobs.Path(id))
	if err != nil {
		return nil // gone meanwhile; checkFile reports it if it matters
	}
	f.orphans = append(f.orphans, orphan{id: id, size: b.size, modTime: fi.ModTime(), row: true})
	f.problem("body %s (%d bytes) is recorded but belongs to no message (repair: moved to %s)", id, b.size, LostFound)
	return nil
}

// checkFile compares a body's file with its row: size, and content against
// the recorded SHA-256.
func (s *Store) checkFile(ctx context.Context, f *findings, id string, b *bodyRow, hashUnrecorded bool) error {
	file, err := s.blobs.Open(id)
	if errors.Is(err, fs.ErrNotExist) {
		// Expunged after the listing, or missing: ask again.
		return s.checkMissing(ctx, f, id)
	}
	if err != nil {
		return err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != b.size {
		f.damaged[id] = true
		f.problem("body %s: recorded size %d, file has %d bytes: damaged or truncated (not repairable)", id, b.size, fi.Size())
		return nil
	}
	if b.sum == nil && !hashUnrecorded {
		return nil
	}
	h := newBodyHash()
	if _, err := io.Copy(h, file); err != nil {
		return fmt.Errorf("read body %s: %w", id, err)
	}
	sum := h.Sum(nil)
	switch {
	case b.sum == nil:
		f.sums[id] = sum
	case !bytes.Equal(sum, b.sum):
		f.damaged[id] = true
		f.problem("body %s: content differs from its recorded SHA-256: damaged (not repairable)", id)
	}
	return nil
}

// checkOrphanFile handles a file that had no row in the snapshot.
func (s *Store) checkOrphanFile(ctx context.Context, f *findings, id string, stopped bool) error {
	exists, _, err := s.bodyNow(ctx, id)
	if err != nil || exists {
		return err // delivered since the snapshot
	}
	fi, err := os.Stat(s.blobs.Path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // an aborted delivery cleaned up after itself
	}
	if err != nil {
		return err
	}
	age := time.Since(fi.ModTime())
	if !stopped && age < orphanGrace {
		f.unreferenced++
		return nil
	}
	f.orphans = append(f.orphans, orphan{id: id, size: fi.Size(), modTime: fi.ModTime()})
	f.problem("body file %s (%d bytes, written %s ago) belongs to no message (repair: moved to %s)",
		id, fi.Size(), age.Round(time.Second), LostFound)
	return nil
}
