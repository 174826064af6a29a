// This file holds COPY and MOVE (RFC 6851) and their UID forms, with the
// COPYUID response code of UIDPLUS (RFC 4315).

package imap

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"loft/internal/store"
)

func (s *session) cmdCopy(c *cmd) error { return s.transfer(c, false) }
func (s *session) cmdMove(c *cmd) error { return s.transfer(c, true) }

func (s *session) transfer(c *cmd, move bool) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	set, err := p.seqSet()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	dst, err := s.mailboxArg()
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	if move && s.sel.readOnly {
		return no("READ-ONLY", "Mailbox is read-only")
	}
	seqs, err := s.resolve(set, c.uid)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if len(seqs) == 0 {
		// Nothing to do, but the destination must exist all the same.
		if _, err := s.srv.st.Mailbox(ctx, s.account.ID, dst); err != nil {
			return transferError(err)
		}
		return nil
	}
	uids := s.sel.uidsOf(seqs)
	var res *store.CopyResult
	if move {
		res, err = s.srv.st.MoveMessages(ctx, s.account.ID, s.sel.id, uids, dst)
	} else {
		res, err = s.srv.st.CopyMessages(ctx, s.account.ID, s.sel.id, uids, dst)
	}
	if err != nil {
		return transferError(err)
	}
	if len(res.SrcUIDs) == 0 {
		return nil
	}
	code := s.copyUID(res)
	if !move {
		c.ok = "[" + code + "] COPY completed"
		return nil
	}
	// RFC 6851 §4.3: COPYUID comes in an untagged OK before the EXPUNGEs.
	s.w.WriteString("* OK [" + code + "] Moved\r\n")
	s.dropOwn(func(ch *store.Change) bool {
		return ch.Kind == store.ChangeExpunge && ch.MailboxID == s.sel.id && slices.Equal(ch.UIDs, res.SrcUIDs)
	})
	s.writeExpunges(res.SrcUIDs)
	return nil
}

func transferError(err error) error {
	if errors.Is(err, store.ErrNoMailbox) {
		return no("TRYCREATE", "No such mailbox") // RFC 9051 §6.4.7
	}
	return storeError(err)
}

func (s *session) copyUID(res *store.CopyResult) string {
	return fmt.Sprintf("COPYUID %d %s %s", res.UIDValidity, uidSet(res.SrcUIDs), uidSet(res.DstUIDs))
}

// writeExpunges announces the expunge of UIDs (ascending) and takes them
// out of the map: EXPUNGE responses, or once QRESYNC is enabled, one
// VANISHED (RFC 7162 §3.2.10). UIDs not in the map are skipped.
func (s *session) writeExpunges(uids []uint32) {
	var gone []uint32
	for _, uid := range uids {
		if seq := s.sel.seqOf(uid); seq > 0 {
			s.sel.remove(seq)
			if s.qresync {
				gone = append(gone, uid)
			} else {
				fmt.Fprintf(s.w, "* %d EXPUNGE\r\n", seq)
			}
		}
	}
	s.writeVanished(gone, false)
}
