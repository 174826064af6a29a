// This file holds STORE and UID STORE (RFC 9051 §6.4.6): +FLAGS, -FLAGS
// and FLAGS, with .SILENT, system flags and keywords.

package imap

import (
	"context"
	"fmt"
	"strings"

	"loft/internal/store"
)

func (s *session) cmdStore(c *cmd) error {
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
	if p.peek() == '(' {
		return bad("", "STORE modifiers (CONDSTORE) are not supported")
	}
	op := store.FlagsReplace
	switch {
	case p.take('+'):
		op = store.FlagsAdd
	case p.take('-'):
		op = store.FlagsRemove
	}
	item, err := p.atom()
	if err != nil {
		return err
	}
	silent := false
	switch strings.ToUpper(item) {
	case "FLAGS":
	case "FLAGS.SILENT":
		silent = true
	default:
		return bad("", "Expected FLAGS, +FLAGS or -FLAGS")
	}
	if err := p.sp(); err != nil {
		return err
	}
	flags, err := p.flagsArg()
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	var keep []string
	for _, f := range flags {
		switch {
		case strings.EqualFold(f, `\Recent`):
			// Session-only and never stored (RFC 3501 §2.3.2).
		case f == `\*`:
			return bad("", `\* is not a flag`)
		default:
			keep = append(keep, f)
		}
	}
	if s.sel.readOnly {
		return no("READ-ONLY", "Mailbox is read-only")
	}
	seqs, err := s.resolve(set, c.uid)
	if err != nil {
		return err
	}
	if len(seqs) == 0 {
		return nil
	}
	upd, err := s.srv.st.StoreFlags(context.Background(), s.account.ID, s.sel.id, s.sel.uidsOf(seqs), op, keep)
	if err != nil {
		return storeError(err)
	}
	s.dropOwn(func(ch *store.Change) bool { return ownFlagChange(ch, s.sel.id, upd) })
	if silent {
		return nil
	}
	// RFC 9051 §6.4.6: the flags of every message named, changed or not.
	infos, err := s.messages(seqs)
	if err != nil {
		return err
	}
	for i, seq := range seqs {
		m := infos[i]
		if m == nil {
			continue
		}
		fmt.Fprintf(s.w, "* %d FETCH (", seq)
		if c.uid {
			fmt.Fprintf(s.w, "UID %d ", m.UID)
		}
		s.w.WriteString("FLAGS ")
		s.writeFlags(m.Flags)
		s.w.WriteString(")\r\n")
	}
	return nil
}
