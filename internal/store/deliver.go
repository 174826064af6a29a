// Delivery and APPEND: a body is written once to the blob store and made
// durable, parsed once for its envelope and MIME structure, and then its
// metadata is committed for each recipient in one group commit. Quota is
// checked inside that commit, so usage never exceeds a limit through a race.
package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"loft/internal/blob"
	"loft/internal/message"
)

// parseInMemory is the size up to which a new body is kept in memory while
// it is written, to parse it without reading the file back. Most mail is
// far smaller; larger bodies are parsed by streaming from the file.
const parseInMemory = 1 << 20

// DeliverOptions describe a delivery.
type DeliverOptions struct {
	// Recipients are account addresses; each gets its own copy in its
	// INBOX. The body is stored once and shared.
	Recipients []string
	// InternalDate is the arrival time; zero means now.
	InternalDate time.Time
	// AllOrNothing stores the message for no one if any recipient refuses
	// it. SMTP needs it: one reply covers all recipients, and without an
	// outbound queue Loft cannot send a bounce for some of them.
	AllOrNothing bool
}

// DeliverResult is the outcome for one recipient.
type DeliverResult struct {
	Err       error // nil, ErrNoAccount or ErrOverQuota (wrapped)
	AccountID int64
	MailboxID int64
	UID       uint32
	// Size and MessageID describe the message stored (the same for every
	// recipient), for the delivery's log line: its size as counted in
	// quota, and its Message-ID header field, "" if it has none.
	Size      int64
	MessageID string
}

// Deliver stores the message read from r into the INBOX of every recipient.
// When it returns, every recipient whose result has no error has the message
// on stable storage. The error is for failures that affect all recipients
// (I/O, database); the message is then stored for none of them.
func (s *Store) Deliver(ctx context.Context, r io.Reader, opts DeliverOptions) ([]DeliverResult, error) {
	body, err := s.writeBody(r)
	if err != nil {
		return nil, fmt.Errorf("store: deliver: %w", err)
	}
	date := unixTime(opts.InternalDate)
	results := make([]DeliverResult, len(opts.Recipients))
	err = s.write(ctx, func(t *txn) error {
		delivered := 0
		for i, rcpt := range opts.Recipients {
			var accountID, mailboxID int64
			err := t.queryRow(`SELECT a.id, b.id FROM accounts a JOIN mailboxes b ON b.account_id = a.id
				WHERE a.address = ? AND b.name = 'INBOX'`, normAddress(rcpt)).Scan(&accountID, &mailboxID)
			if err != nil {
				results[i].Err = noRows(err, ErrNoAccount)
				if errors.Is(results[i].Err, ErrNoAccount) {
					continue
				}
				return err
			}
			if delivered == 0 {
				if err := insertBody(t, body); err != nil {
					return err
				}
			}
			uid, err := s.insertMessage(t, accountID, mailboxID, body, date, 0, "")
			if errors.Is(err, ErrOverQuota) {
				results[i].Err = fmt.Errorf("%s: %w", normAddress(rcpt), err)
				continue
			}
			if err != nil {
				return err
			}
			results[i] = DeliverResult{AccountID: accountID, MailboxID: mailboxID, UID: uid,
				Size: body.size, MessageID: body.messageID}
			delivered++
		}
		if delivered == 0 {
			return errNothingStored
		}
		if opts.AllOrNothing && delivered < len(results) {
			for i := range results {
				if results[i].Err == nil {
					results[i] = DeliverResult{Err: ErrNotStored}
				}
			}
			return errNothingStored
		}
		return nil
	})
	if err != nil {
		s.blobs.Remove(body.id)
		if errors.Is(err, errNothingStored) {
			return results, nil
		}
		return nil, fmt.Errorf("store: deliver: %w", err)
	}
	return results, nil
}

// ErrNotStored is the result of a recipient that accepted the message when
// another refused it in an all-or-nothing delivery.
var ErrNotStored = errors.New("not stored: another recipient refused the message")

// errNothingStored rolls back a delivery that no recipient accepted.
var errNothingStored = errors.New("no recipient accepted the message")

// AppendOptions describe an APPEND.
type AppendOptions struct {
	Flags        []string
	InternalDate time.Time // zero means now
}

// AppendResult says where an appended message went (RFC 4315 APPENDUID).
type AppendResult struct {
	MailboxID   int64
	UIDValidity uint32
	UID         uint32
}

// Append stores a message into one of an account's mailboxes.
func (s *Store) Append(ctx context.Context, accountID int64, mailbox string, r io.Reader, opts AppendOptions) (*AppendResult, error) {
	mailbox = CanonicalName(mailbox)
	body, err := s.writeBody(r)
	if err != nil {
		return nil, fmt.Errorf("store: append to %q: %w", mailbox, err)
	}
	bits, keywords := encodeFlags(opts.Flags)
	var res AppendResult
	err = s.write(ctx, func(t *txn) error {
		err := t.queryRow(`SELECT id, uidvalidity FROM mailboxes WHERE account_id = ? AND name = ?`,
			accountID, mailbox).Scan(&res.MailboxID, &res.UIDValidity)
		if err != nil {
			return noRows(err, ErrNoMailbox)
		}
		if err := insertBody(t, body); err != nil {
			return err
		}
		res.UID, err = s.insertMessage(t, accountID, res.MailboxID, body, unixTime(opts.InternalDate), bits, keywords)
		return err
	})
	if err != nil {
		s.blobs.Remove(body.id)
		return nil, fmt.Errorf("store: append to %q: %w", mailbox, err)
	}
	return &res, nil
}

// newBody is a body on stable storage whose metadata is not committed yet.
type newBody struct {
	id        string
	size      int64
	structure []byte     // JSON of message.Message
	index     *bodyIndex // search, sort and preview data (fts.go)
	sha256    []byte     // of the stored bytes, verified by Check
	messageID string     // the Message-ID header field, for logs
}

// writeBody writes r to a new blob with CRLF line endings, makes it
// durable, and parses it.
func (s *Store) writeBody(r io.Reader) (*newBody, error) {
	w, err := s.blobs.Create()
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	mem := capPool.Get().(*capped)
	defer capPool.Put(mem)
	mem.buf.Reset()
	mem.over = false
	h := newBodyHash()
	size, err := blob.CopyCRLF(io.MultiWriter(w, mem, h), r)
	if err != nil {
		return nil, fmt.Errorf("write body: %w", err)
	}
	if err := w.Commit(); err != nil {
		return nil, err
	}
	var msg *message.Message
	if !mem.over {
		msg = message.ParseBytes(mem.buf.Bytes())
	} else {
		f, err := s.blobs.Open(w.ID)
		if err != nil {
			s.blobs.Remove(w.ID)
			return nil, err
		}
		msg, err = message.Parse(f, size)
		f.Close()
		if err != nil {
			s.blobs.Remove(w.ID)
			return nil, fmt.Errorf("parse body %s: %w", w.ID, err)
		}
	}
	structure, err := json.Marshal(msg)
	if err != nil {
		s.blobs.Remove(w.ID)
		return nil, fmt.Errorf("encode structure of %s: %w", w.ID, err)
	}
	index, err := s.analyzeNew(w.ID, mem, msg)
	if err != nil {
		s.blobs.Remove(w.ID)
		return nil, fmt.Errorf("index body %s: %w", w.ID, err)
	}
	return &newBody{id: w.ID, size: size, structure: structure, index: index, sha256: h.Sum(nil),
		messageID: msg.Envelope.MessageID}, nil
}

// capPool recycles the in-memory copies of new bodies.
var capPool = sync.Pool{New: func() any { return &capped{max: parseInMemory} }}

// capped keeps the first max bytes written to it, and notes if there were more.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if !c.over {
		if c.buf.Len()+len(p) > c.max {
			c.over = true
		} else {
			c.buf.Write(p)
		}
	}
	return len(p), nil
}

func insertBody(t *txn, b *newBody) error {
	_, err := t.exec(`INSERT INTO bodies(blob, size, structure, sha256) VALUES (?, ?, ?, ?) ON CONFLICT(blob) DO NOTHING`,
		b.id, b.size, b.structure, b.sha256)
	t.bodies = append(t.bodies, b.id)
	if err == nil && b.index != nil {
		err = insertBodyIndex(t, b.id, b.index, false) // the indexer adds the text
	}
	return err
}

// insertMessage adds a message with the next UID of the mailbox, bumping
// the mailbox's modseq and the account's usage, if the quota allows it.
func (s *Store) insertMessage(t *txn, accountID, mailboxID int64, b *newBody, date int64, bits int64, keywords string) (uint32, error) {
	var usage int64
	var q sql.NullInt64
	if err := t.queryRow(`SELECT quota, usage FROM accounts WHERE id = ?`, accountID).Scan(&q, &usage); err != nil {
		return 0, noRows(err, ErrNoAccount)
	}
	quota, _ := s.effectiveQuota(q)
	if !fits(quota, usage, b.size) {
		return 0, ErrOverQuota
	}
	var uid uint32
	var modseq int64
	err := t.queryRow(`UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
		WHERE id = ? RETURNING uidnext - 1, highestmodseq`, mailboxID).Scan(&uid, &modseq)
	if err != nil {
		return 0, noRows(err, ErrNoMailbox)
	}
	if _, err := t.exec(`INSERT INTO messages(mailbox_id, uid, modseq, internal_date, size, flags, keywords, blob)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, mailboxID, uid, modseq, date, b.size, bits, keywords, b.id); err != nil {
		return 0, err
	}
	if _, err := t.exec(`UPDATE accounts SET usage = usage + ?, messages = messages + 1 WHERE id = ?`,
		b.size, accountID); err != nil {
		return 0, err
	}
	t.changes = append(t.changes, Change{Kind: ChangeNew, MailboxID: mailboxID, UID: uid, ModSeq: modseq,
		Flags: decodeFlags(bits, keywords), Size: b.size, accountID: accountID, blob: b.id, date: date})
	return uid, nil
}
