// This file holds STORE and UID STORE (RFC 9051 §6.4.6): +FLAGS, -FLAGS
// and FLAGS, with .SILENT, system flags and keywords, and CONDSTORE's
// UNCHANGEDSINCE modifier with its MODIFIED response code (RFC 7162 §3.1.3).

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
	var opts store.StoreFlagsOptions
	if p.peek() == '(' {
		if opts, err = s.storeModifiers(); err != nil {
			return err
		}
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
	if opts.Conditional {
		s.enableCondstore() // RFC 7162 §3.1: CONDSTORE enabling
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
	upd, failed, err := s.srv.st.StoreFlagsWith(context.Background(), s.account.ID, s.sel.id, s.sel.uidsOf(seqs), op, keep, opts)
	if err != nil {
		return storeError(err)
	}
	s.dropOwn(func(ch *store.Change) bool { return ownFlagChange(ch, s.sel.id, upd) })
	// RFC 9051 §6.4.6: the flags of every message named, changed or not;
	// with .SILENT none, except that with CONDSTORE the modseq of those
	// that passed an UNCHANGEDSINCE test or changed is still sent (RFC
	// 7162 §3.1.3), for the client's cache.
	if silent && !s.condstore {
		return nil
	}
	changed := make(map[uint32]bool, len(upd))
	for _, u := range upd {
		changed[u.UID] = true
	}
	isFailed := make(map[uint32]bool, len(failed))
	for _, u := range failed {
		isFailed[u] = true
	}
	infos, err := s.messages(seqs)
	if err != nil {
		return err
	}
	var modified []uint32 // sequence numbers, or UIDs for UID STORE
	for i, seq := range seqs {
		m := infos[i]
		if m == nil {
			continue
		}
		if isFailed[m.UID] {
			if c.uid {
				modified = append(modified, m.UID)
			} else {
				modified = append(modified, uint32(seq))
			}
			continue
		}
		if silent && !opts.Conditional && !changed[m.UID] {
			continue
		}
		fmt.Fprintf(s.w, "* %d FETCH (", seq)
		sep := ""
		if c.uid {
			fmt.Fprintf(s.w, "UID %d", m.UID)
			sep = " "
		}
		if !silent {
			s.w.WriteString(sep + "FLAGS ")
			s.writeMessageFlags(m.UID, m.Flags)
			sep = " "
		}
		if s.condstore {
			fmt.Fprintf(s.w, "%sMODSEQ (%d)", sep, m.ModSeq)
		}
		s.w.WriteString(")\r\n")
	}
	if len(modified) > 0 {
		c.ok = "[MODIFIED " + uidSet(modified) + "] Conditional STORE failed"
	}
	return nil
}
