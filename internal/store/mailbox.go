// Mailboxes: names, UIDVALIDITY/UIDNEXT/HIGHESTMODSEQ, special-use and
// subscription state.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Separator is the hierarchy separator of mailbox names.
const Separator = "/"

// Mailbox is a mailbox's state at the moment it was read.
type Mailbox struct {
	ID            int64
	AccountID     int64
	Name          string // "INBOX" always in that case
	UIDValidity   uint32
	UIDNext       uint32 // the UID the next message will get
	HighestModSeq int64
	SpecialUse    string // e.g. `\Sent`, or ""
	Subscribed    bool
	Messages      int64 // number of messages
	Size          int64 // sum of their sizes (STATUS SIZE)
	Unseen        int64 // messages without \Seen
	Deleted       int64 // messages with \Deleted
}

// CanonicalName returns the stored form of a mailbox name: "INBOX" is
// case-insensitive (RFC 9051 §5.1), also as the first level of a hierarchy.
func CanonicalName(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	if len(name) > 6 && strings.EqualFold(name[:6], "INBOX/") {
		return "INBOX" + name[5:]
	}
	return name
}

// mailboxColumns are what scanMailbox reads; the counts are the row's own,
// kept by triggers (schema.go, migration 7).
const mailboxColumns = `b.id, b.account_id, b.name, b.uidvalidity, b.uidnext, b.highestmodseq,
	b.special_use, b.subscribed, b.messages, b.size, b.unseen, b.deleted`

func scanMailbox(row interface{ Scan(...any) error }) (*Mailbox, error) {
	var m Mailbox
	err := row.Scan(&m.ID, &m.AccountID, &m.Name, &m.UIDValidity, &m.UIDNext, &m.HighestModSeq,
		&m.SpecialUse, &m.Subscribed, &m.Messages, &m.Size, &m.Unseen, &m.Deleted)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// Mailbox returns an account's mailbox by name.
func (s *Store) Mailbox(ctx context.Context, accountID int64, name string) (*Mailbox, error) {
	name = CanonicalName(name)
	m, err := scanMailbox(s.queryRow(ctx,
		`SELECT `+mailboxColumns+` FROM mailboxes b WHERE b.account_id = ? AND b.name = ?`, accountID, name))
	if err != nil {
		return nil, fmt.Errorf("store: mailbox %q: %w", name, noRows(err, ErrNoMailbox))
	}
	return m, nil
}

// Mailboxes lists an account's mailboxes by name.
func (s *Store) Mailboxes(ctx context.Context, accountID int64) ([]*Mailbox, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+mailboxColumns+` FROM mailboxes b WHERE b.account_id = ? ORDER BY b.name`, accountID)
	if err != nil {
		return nil, fmt.Errorf("store: list mailboxes: %w", err)
	}
	defer rows.Close()
	var out []*Mailbox
	for rows.Next() {
		m, err := scanMailbox(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list mailboxes: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list mailboxes: %w", err)
	}
	return out, nil
}

// CreateMailbox adds a mailbox to an account. specialUse may be "".
func (s *Store) CreateMailbox(ctx context.Context, accountID int64, name, specialUse string) (*Mailbox, error) {
	name = CanonicalName(name)
	if err := validName(name); err != nil {
		return nil, fmt.Errorf("store: create mailbox %q: %w", name, err)
	}
	err := s.write(ctx, func(t *txn) error {
		_, err := createMailbox(t, accountID, name, specialUse)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: create mailbox %q: %w", name, err)
	}
	return s.Mailbox(ctx, accountID, name)
}

func validName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case strings.HasPrefix(name, Separator) || strings.HasSuffix(name, Separator):
		return errors.New("name starts or ends with the separator")
	case strings.Contains(name, Separator+Separator):
		return errors.New("empty hierarchy level")
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errors.New("control character in name")
	case !utf8.ValidString(name):
		// Names are stored as UTF-8 (IMAP decodes modified UTF-7 first);
		// bytes that are not would compare and display unpredictably.
		return errors.New("name is not valid UTF-8")
	}
	return nil
}

func createMailbox(t *txn, accountID int64, name, specialUse string) (int64, error) {
	uidvalidity, err := nextUIDValidity(t)
	if err != nil {
		return 0, err
	}
	res, err := t.exec(`INSERT INTO mailboxes(account_id, name, uidvalidity, special_use) VALUES (?, ?, ?, ?)
		ON CONFLICT(account_id, name) DO NOTHING`, accountID, name, uidvalidity, specialUse)
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, ErrMailboxExists
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	t.changes = append(t.changes, Change{Kind: ChangeMailboxCreate, MailboxID: id, Name: name, accountID: accountID})
	return id, nil
}

// nextUIDValidity hands out UIDVALIDITY values that never repeat in this
// store, so a mailbox deleted and recreated under the same name always gets
// a new one (RFC 9051 §2.3.1.1).
func nextUIDValidity(t *txn) (uint32, error) {
	var v int64
	err := t.queryRow(`UPDATE meta SET value = value + 1 WHERE key = 'uidvalidity' RETURNING value`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("uidvalidity: %w", err)
	}
	return uint32(v), nil
}
