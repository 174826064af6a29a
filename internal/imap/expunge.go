// This file holds EXPUNGE and UID EXPUNGE (RFC 9051 §6.4.3, §6.4.9).

package imap

import (
	"context"
	"fmt"
	"slices"

	"loft/internal/store"
)

func (s *session) cmdExpunge(c *cmd) error {
	p := s.p
	var set *numSet
	if c.uid {
		if err := p.sp(); err != nil {
			return err
		}
		ns, err := p.seqSet()
		if err != nil {
			return err
		}
		set = &ns
	}
	if err := p.end(); err != nil {
		return err
	}
	if s.sel.readOnly {
		return no("READ-ONLY", "Mailbox is read-only")
	}
	gone, err := s.expungeDeleted(set)
	if err != nil {
		return err
	}
	s.writeExpunges(gone)
	if s.condstore && len(gone) > 0 {
		// RFC 7162 §3.2.7 (and §3.1 for CONDSTORE alone): the modseq
		// of the expunge, which the client has now seen.
		c.ok = fmt.Sprintf("[HIGHESTMODSEQ %d] EXPUNGE completed", s.sel.modseq)
	}
	return nil
}

// expungeDeleted expunges the messages with \Deleted, all of them or those
// of set (UIDs), and returns the UIDs removed. It does not announce them.
func (s *session) expungeDeleted(set *numSet) ([]uint32, error) {
	sel := s.sel
	var only []uint32 // with a set: its UIDs, ascending
	if set != nil {
		seqs, err := s.resolve(*set, true)
		if err != nil {
			return nil, err
		}
		if len(seqs) == 0 {
			return nil, nil
		}
		only = sel.uidsOf(seqs)
	}
	deleted, err := s.srv.st.DeletedUIDs(context.Background(), s.account.ID, sel.id)
	if err != nil {
		return nil, storeError(err)
	}
	// Only messages in this session's map: one that arrived meanwhile and
	// is not announced yet has no number to report its expunge with; it
	// waits for a later EXPUNGE.
	var del []uint32
	for _, u := range deleted {
		if sel.seqOf(u) == 0 {
			continue
		}
		if _, ok := slices.BinarySearch(only, u); set != nil && !ok {
			continue
		}
		del = append(del, u)
	}
	if len(del) == 0 {
		return nil, nil
	}
	gone, err := s.srv.st.Expunge(context.Background(), s.account.ID, sel.id, del)
	if err != nil {
		return nil, storeError(err)
	}
	s.dropOwn(func(c *store.Change) bool {
		return c.Kind == store.ChangeExpunge && c.MailboxID == sel.id && slices.Equal(c.UIDs, gone)
	})
	return gone, nil
}
