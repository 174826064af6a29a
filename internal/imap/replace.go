// This file holds REPLACE and UID REPLACE (RFC 8508): a message of the
// selected mailbox is replaced by a new one, stored into any mailbox, in
// one commit: the client sees the new message and the expunge of the old,
// never one without the other.

package imap

import (
	"context"
	"errors"
	"fmt"
	"io"

	"loft/internal/store"
)

func (s *session) cmdReplace(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	num, err := p.number()
	if err != nil {
		return err
	}
	if num == 0 {
		return bad("", "0 is not a valid message number")
	}
	if err := p.sp(); err != nil {
		return err
	}
	name, err := s.mailboxArg()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	sel := s.sel
	var uid uint32
	if c.uid {
		if sel.seqOf(num) == 0 {
			return no("NONEXISTENT", "No message with UID %d", num)
		}
		uid = num
	} else {
		if int(num) > len(sel.uids) {
			return bad("", "Invalid message sequence number (mailbox has %d messages)", len(sel.uids))
		}
		uid = sel.uids[num-1]
	}
	if sel.readOnly {
		return no("READ-ONLY", "Mailbox is read-only") // the old message cannot go
	}
	ctx := context.Background()
	if _, err := s.srv.st.Mailbox(ctx, s.account.ID, name); err != nil {
		if errors.Is(err, store.ErrNoMailbox) {
			return no("TRYCREATE", "No such mailbox")
		}
		return err
	}
	m, err := s.appendMessageArg()
	if err != nil {
		return err
	}
	if err := s.checkAppend(m, m.spec.size); err != nil {
		return err
	}
	if err := p.beginLiteral(m.spec); err != nil {
		return err
	}
	lr := &io.LimitedReader{R: p.r, N: m.spec.size}
	res, err := s.srv.st.Replace(ctx, s.account.ID, sel.id, uid, name, exactReader{lr}, m.opts)
	if isConnError(err) {
		return err
	}
	if ferr := s.endAppendMessage(m, lr); ferr != nil {
		return ferr
	}
	if err != nil {
		if errors.Is(err, store.ErrNoMailbox) {
			return no("TRYCREATE", "No such mailbox")
		}
		return storeError(err)
	}
	if err := p.end(); err != nil {
		return err
	}
	// RFC 8508 §3.3: APPENDUID in an untagged OK, then the new message's
	// EXISTS if it went into this mailbox, then the old one's EXPUNGE
	// (VANISHED with QRESYNC).
	fmt.Fprintf(s.w, "* OK [APPENDUID %d %d] Replacement Message ready\r\n", res.UIDValidity, res.UID)
	s.dropOwn(func(ch *store.Change) bool {
		return ch.Kind == store.ChangeExpunge && ch.MailboxID == sel.id && len(ch.UIDs) == 1 && ch.UIDs[0] == uid
	})
	s.announce(true)
	if res.Expunged {
		s.writeExpunges([]uint32{uid})
	}
	return nil
}
