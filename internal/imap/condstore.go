// This file holds CONDSTORE and QRESYNC (RFC 7162): enabling them, the
// SELECT/EXAMINE parameters (CONDSTORE, QRESYNC with its resync of flag
// changes and VANISHED (EARLIER)), the FETCH modifiers CHANGEDSINCE and
// VANISHED, the STORE modifier UNCHANGEDSINCE, and the HIGHESTMODSEQ
// bookkeeping that keeps a client's idea of "everything up to modseq N"
// true even while expunges are held back.

package imap

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"loft/internal/store"
)

// enableCondstore turns CONDSTORE on for the session, as any CONDSTORE
// enabling command does (RFC 7162 §3.1). In the selected state, the client
// learns the mailbox's HIGHESTMODSEQ at once (§3.1.2.1): it may not have
// been told at SELECT, when CONDSTORE was off.
func (s *session) enableCondstore() {
	if s.condstore {
		return
	}
	s.condstore = true
	if s.sel != nil {
		fmt.Fprintf(s.w, "* OK [HIGHESTMODSEQ %d] Highest\r\n", s.sel.modseq)
	}
}

// enable turns on one extension named in ENABLE (RFC 5161) and returns its
// name for the ENABLED response, or "" if it is unknown or already on.
func (s *session) enable(capa string) string {
	switch strings.ToUpper(capa) {
	case "IMAP4REV2":
		if s.rev2 {
			return ""
		}
		s.rev2 = true
		s.w.utf8 = true
		return "IMAP4rev2"
	case "CONDSTORE":
		if s.condstore {
			return ""
		}
		s.enableCondstore()
		return "CONDSTORE"
	case "QRESYNC":
		// RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
		if s.qresync {
			return ""
		}
		s.enableCondstore()
		s.qresync = true
		return "QRESYNC"
	case "UTF8=ACCEPT":
		// RFC 6855 §3: UTF-8 in quoted strings and mailbox names.
		if s.utf8Accept {
			return ""
		}
		s.utf8Accept = true
		s.w.utf8 = true
		return "UTF8=ACCEPT"
	}
	return ""
}

// qresyncParams are the arguments of SELECT's QRESYNC parameter (RFC 7162
// §3.2.5). Loft keeps the whole expunge history, so the sequence match
// data, which helps servers that do not, is checked but not needed.
type qresyncParams struct {
	uidValidity uint32
	modseq      int64
	knownUIDs   *numSet // nil: all UIDs
}

// selectParams reads SELECT/EXAMINE parameters after the mailbox name:
// "(CONDSTORE)" or "(QRESYNC (...))" (RFC 7162 §3.1.8, §3.2.5; RFC 4466
// select-params).
func (s *session) selectParams() (condstore bool, qr *qresyncParams, err error) {
	p := s.p
	if err := p.expect('('); err != nil {
		return false, nil, err
	}
	for first := true; !p.take(')'); first = false {
		if !first {
			if err := p.sp(); err != nil {
				return false, nil, err
			}
		}
		name, err := p.atom()
		if err != nil {
			return false, nil, err
		}
		switch strings.ToUpper(name) {
		case "CONDSTORE":
			condstore = true
		case "QRESYNC":
			if !s.qresync {
				// RFC 7162 §3.2.5: BAD unless ENABLE QRESYNC came first.
				return false, nil, bad("", "QRESYNC is not enabled")
			}
			if err := p.sp(); err != nil {
				return false, nil, err
			}
			if qr, err = s.qresyncParam(); err != nil {
				return false, nil, err
			}
		default:
			return false, nil, bad("", "Unknown SELECT parameter %s", clip([]byte(name)))
		}
	}
	return condstore, qr, nil
}

// qresyncParam reads "(" uidvalidity SP mod-sequence-value [SP known-uids]
// [SP seq-match-data] ")".
func (s *session) qresyncParam() (*qresyncParams, error) {
	p := s.p
	var qr qresyncParams
	if err := p.expect('('); err != nil {
		return nil, err
	}
	var err error
	if qr.uidValidity, err = p.number(); err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	if qr.modseq, err = p.number64(); err != nil {
		return nil, err
	}
	if qr.uidValidity == 0 || qr.modseq == 0 {
		return nil, bad("", "UIDVALIDITY and modseq must not be 0")
	}
	if p.take(' ') {
		if p.peek() != '(' {
			set, err := p.seqSet()
			if err != nil {
				return nil, err
			}
			if set.saved {
				return nil, bad("", "$ is not a UID set")
			}
			qr.knownUIDs = &set
			if !p.take(' ') {
				return &qr, p.expect(')')
			}
		}
		// seq-match-data = "(" known-sequence-set SP known-uid-set ")"
		if err := p.expect('('); err != nil {
			return nil, err
		}
		for i := range 2 {
			if i > 0 {
				if err := p.sp(); err != nil {
					return nil, err
				}
			}
			if set, err := p.seqSet(); err != nil {
				return nil, err
			} else if set.saved {
				return nil, bad("", "$ is not a sequence set")
			}
		}
		if err := p.expect(')'); err != nil {
			return nil, err
		}
	}
	return &qr, p.expect(')')
}

// writeResync answers SELECT's QRESYNC parameter: the UIDs expunged since
// the client's modseq, then the messages changed since, both limited to the
// UIDs the client knows (RFC 7162 §3.2.5.1).
func (s *session) writeResync(qr *qresyncParams, res *store.Resync) {
	sel := s.sel
	known := func(uid uint32) bool {
		return qr.knownUIDs == nil || qr.knownUIDs.contains(uid, sel.uidNext-1)
	}
	var gone []uint32
	for _, u := range res.Vanished {
		if known(u) {
			gone = append(gone, u)
		}
	}
	s.writeVanished(gone, true)
	for i := range res.Changed {
		m := &res.Changed[i]
		if seq := sel.seqOf(m.UID); seq > 0 && known(m.UID) {
			fmt.Fprintf(s.w, "* %d FETCH (UID %d FLAGS ", seq, m.UID)
			s.writeMessageFlags(m.UID, m.Flags)
			fmt.Fprintf(s.w, " MODSEQ (%d))\r\n", m.ModSeq)
		}
	}
}

// maxVanishedLine bounds one VANISHED response line; RFC 7162 §3.2.10
// lets a server split a long set over several responses, and RFC 7162
// §4 asks clients to take lines of 8,192 octets.
const maxVanishedLine = 4000

// writeVanished writes VANISHED responses for UIDs (ascending), with
// (EARLIER) for UIDs the client may not know of (RFC 7162 §3.2.10).
func (s *session) writeVanished(uids []uint32, earlier bool) {
	prefix := "* VANISHED "
	if earlier {
		prefix = "* VANISHED (EARLIER) "
	}
	for _, set := range splitUIDSet(uidSet(uids), maxVanishedLine) {
		s.w.WriteString(prefix + set + "\r\n")
	}
}

// splitUIDSet cuts a compact UID set at commas into pieces of at most max
// bytes (a piece is longer only if one element is).
func splitUIDSet(set string, max int) []string {
	var out []string
	for len(set) > max {
		i := strings.LastIndexByte(set[:max], ',')
		if i <= 0 {
			break
		}
		out = append(out, set[:i])
		set = set[i+1:]
	}
	if set != "" {
		out = append(out, set)
	}
	return out
}

// contains reports whether n is in the set, "*" being star. It does not
// know the saved search result: callers handle "$".
func (set *numSet) contains(n, star uint32) bool {
	for _, r := range set.ranges {
		lo, hi := r.first, r.last
		if lo == 0 {
			lo = star
		}
		if hi == 0 {
			hi = star
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		if n >= lo && n <= hi {
			return true
		}
	}
	return false
}

// fetchModifiers are FETCH's modifiers (RFC 7162 §3.1.4.1, §3.2.6).
type fetchModifiers struct {
	changedSince int64 // 0: none
	vanished     bool
}

// fetchModifiersArg reads "(" fetch-modifier *(SP fetch-modifier) ")".
func (s *session) fetchModifiersArg(c *cmd) (fetchModifiers, error) {
	p := s.p
	var m fetchModifiers
	if err := p.expect('('); err != nil {
		return m, err
	}
	for first := true; !p.take(')'); first = false {
		if !first {
			if err := p.sp(); err != nil {
				return m, err
			}
		}
		name, err := p.atom()
		if err != nil {
			return m, err
		}
		switch strings.ToUpper(name) {
		case "CHANGEDSINCE":
			if err := p.sp(); err != nil {
				return m, err
			}
			if m.changedSince, err = p.number64(); err != nil {
				return m, err
			}
			if m.changedSince == 0 {
				return m, bad("", "CHANGEDSINCE must not be 0")
			}
		case "VANISHED":
			// RFC 7162 §3.2.6: UID FETCH only, with QRESYNC enabled.
			if !c.uid || !s.qresync {
				return m, bad("", "VANISHED needs UID FETCH and QRESYNC enabled")
			}
			m.vanished = true
		default:
			return m, bad("", "Unknown FETCH modifier %s", clip([]byte(name)))
		}
	}
	if m.vanished && m.changedSince == 0 {
		return m, bad("", "VANISHED needs CHANGEDSINCE")
	}
	return m, nil
}

// writeFetchVanished answers UID FETCH's VANISHED modifier: the UIDs of
// the set expunged since the modseq, as VANISHED (EARLIER). UIDs still in
// the session's map are left out: their expunge has not been announced
// yet, and will be as an ordinary VANISHED.
func (s *session) writeFetchVanished(set numSet, since int64) error {
	sel := s.sel
	uids, err := s.srv.st.ExpungedSince(context.Background(), s.account.ID, sel.id, since, 0)
	if err != nil {
		return storeError(err)
	}
	var star uint32
	if n := len(sel.uids); n > 0 {
		star = sel.uids[n-1]
	}
	star = max(star, sel.uidNext-1)
	var gone []uint32
	for _, u := range uids {
		in := set.contains(u, star)
		if set.saved {
			in = slices.Contains(s.saved, u)
		}
		if in && sel.seqOf(u) == 0 {
			gone = append(gone, u)
		}
	}
	s.writeVanished(gone, true)
	return nil
}

// storeModifiers reads STORE's "(UNCHANGEDSINCE n)" (RFC 7162 §3.1.3).
func (s *session) storeModifiers() (opts store.StoreFlagsOptions, err error) {
	p := s.p
	if err := p.expect('('); err != nil {
		return opts, err
	}
	for first := true; !p.take(')'); first = false {
		if !first {
			if err := p.sp(); err != nil {
				return opts, err
			}
		}
		name, err := p.atom()
		if err != nil {
			return opts, err
		}
		if !strings.EqualFold(name, "UNCHANGEDSINCE") {
			return opts, bad("", "Unknown STORE modifier %s", clip([]byte(name)))
		}
		if err := p.sp(); err != nil {
			return opts, err
		}
		// mod-sequence-valzer: 0 is allowed, and fails for every message.
		if opts.UnchangedSince, err = p.number64(); err != nil {
			return opts, err
		}
		opts.Conditional = true
	}
	if err := p.sp(); err != nil {
		return opts, err
	}
	return opts, nil
}
