// Appends that must be atomic: several messages at once (IMAP MULTIAPPEND,
// RFC 3502: all or none), and a message that replaces another (IMAP
// REPLACE, RFC 8508: the new one stored and the old one expunged in one
// commit, so that no client ever sees both or neither).
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// maxAppendMany bounds the messages of one AppendMany: each body is a
// file held until the commit.
const maxAppendMany = 1000

// ErrTooMany is returned when an AppendMany has more than maxAppendMany
// messages.
var ErrTooMany = errors.New("too many messages in one append")

// AppendManyResult says where the messages of an AppendMany went.
type AppendManyResult struct {
	MailboxID   int64
	UIDValidity uint32
	UIDs        []uint32 // in the order of the messages
}

// AppendMany stores messages into one mailbox of an account in one commit:
// all of them or, on any error (over quota included), none. next returns
// the next message's body and options, or ok false after the last; each
// body is read to its end before next is called again, so the bodies may
// stream from one connection.
func (s *Store) AppendMany(ctx context.Context, accountID int64, mailbox string, next func() (r io.Reader, opts AppendOptions, ok bool, err error)) (*AppendManyResult, error) {
	mailbox = CanonicalName(mailbox)
	type pending struct {
		body *newBody
		opts AppendOptions
	}
	var msgs []pending
	defer func() {
		for _, m := range msgs {
			if m.body != nil {
				s.blobs.Remove(m.body.id)
			}
		}
	}()
	for {
		r, opts, ok, err := next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if len(msgs) >= maxAppendMany {
			return nil, fmt.Errorf("store: append to %q: %w", mailbox, ErrTooMany)
		}
		body, err := s.writeBody(r)
		if err != nil {
			return nil, fmt.Errorf("store: append to %q: %w", mailbox, err)
		}
		msgs = append(msgs, pending{body, opts})
	}
	res := &AppendManyResult{}
	err := s.write(ctx, func(t *txn) error {
		res.UIDs = res.UIDs[:0]
		err := t.queryRow(`SELECT id, uidvalidity FROM mailboxes WHERE account_id = ? AND name = ?`,
			accountID, mailbox).Scan(&res.MailboxID, &res.UIDValidity)
		if err != nil {
			return noRows(err, ErrNoMailbox)
		}
		for _, m := range msgs {
			if err := insertBody(t, m.body); err != nil {
				return err
			}
			bits, keywords := encodeFlags(m.opts.Flags)
			uid, err := s.insertMessage(t, accountID, res.MailboxID, m.body, unixTime(m.opts.InternalDate), bits, keywords)
			if err != nil {
				return err
			}
			res.UIDs = append(res.UIDs, uid)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: append to %q: %w", mailbox, err)
	}
	msgs = nil // committed: the bodies stay
	return res, nil
}

// ReplaceResult is the outcome of a Replace.
type ReplaceResult struct {
	AppendResult
	// Expunged tells whether the old message was still there to expunge.
	Expunged bool
}

// Replace stores a message into the mailbox named mailbox and expunges
// message uid of mailbox oldMailboxID, in one commit (RFC 8508). The old
// message goes first, so a replacement of about its size fits the quota.
// If the old message is gone already, the new one is stored all the same.
func (s *Store) Replace(ctx context.Context, accountID, oldMailboxID int64, uid uint32, mailbox string, r io.Reader, opts AppendOptions) (*ReplaceResult, error) {
	mailbox = CanonicalName(mailbox)
	body, err := s.writeBody(r)
	if err != nil {
		return nil, fmt.Errorf("store: replace into %q: %w", mailbox, err)
	}
	bits, keywords := encodeFlags(opts.Flags)
	var res ReplaceResult
	err = s.write(ctx, func(t *txn) error {
		err := t.queryRow(`SELECT id, uidvalidity FROM mailboxes WHERE account_id = ? AND name = ?`,
			accountID, mailbox).Scan(&res.MailboxID, &res.UIDValidity)
		if err != nil {
			return noRows(err, ErrNoMailbox)
		}
		gone, err := expungeUIDs(t, accountID, oldMailboxID, []uint32{uid})
		if err != nil {
			return err
		}
		res.Expunged = len(gone) == 1
		if err := insertBody(t, body); err != nil {
			return err
		}
		res.UID, err = s.insertMessage(t, accountID, res.MailboxID, body, unixTime(opts.InternalDate), bits, keywords)
		return err
	})
	if err != nil {
		s.blobs.Remove(body.id)
		return nil, fmt.Errorf("store: replace into %q: %w", mailbox, err)
	}
	return &res, nil
}
