// This file holds the selected state: SELECT and EXAMINE, CLOSE and
// UNSELECT (RFC 3691), the session's own map of sequence numbers to UIDs,
// and the resolution of sequence sets against it.

package imap

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"loft/internal/store"
)

// selection is the selected mailbox as this session knows it. Its UID list
// changes only when the session announces a change (EXISTS, EXPUNGE), so
// that sequence numbers mean what the client was last told.
type selection struct {
	id          int64
	name        string
	uidValidity uint32
	readOnly    bool
	// uids maps sequence number n to uids[n-1]; strictly increasing. Its
	// array starts shared with the store's index (store.Selection.UIDs)
	// and is copied before the first change in place: ownUIDs.
	uids    []uint32
	ownUIDs bool
	// recent are the UIDs that are \Recent in this session (RFC 3501
	// §2.3.2): it claimed them from the store, at SELECT or when it
	// announced them. Ascending; expunged ones may linger; never changed
	// in place (it may share uids' array).
	recent []uint32
	// uidNext is the UIDNEXT the client was told, raised as new messages
	// are announced: "*" in a UID set the client sends is below it.
	uidNext uint32
	// modseq is the highest modseq of the changes the session has told
	// the client about (or its own): everything up to it is announced.
	modseq int64
}

// seqOf returns the sequence number of uid, 0 if it is not in the map.
func (sel *selection) seqOf(uid uint32) int {
	i, ok := slices.BinarySearch(sel.uids, uid)
	if !ok {
		return 0
	}
	return i + 1
}

// isRecent reports whether the message is \Recent in this session.
func (sel *selection) isRecent(uid uint32) bool {
	_, ok := slices.BinarySearch(sel.recent, uid)
	return ok
}

// recentCount is the number of messages in the map that are \Recent.
func (sel *selection) recentCount() int {
	n := 0
	for _, u := range sel.recent {
		if sel.seqOf(u) > 0 {
			n++
		}
	}
	return n
}

// remove drops sequence number seq.
func (sel *selection) remove(seq int) {
	if !sel.ownUIDs {
		sel.uids = slices.Clone(sel.uids)
		sel.ownUIDs = true
	}
	sel.uids = slices.Delete(sel.uids, seq-1, seq)
}

// systemFlags are the flags of RFC 9051 §2.3.2 that Loft stores.
var systemFlags = []string{`\Answered`, `\Flagged`, `\Deleted`, `\Seen`, `\Draft`}

func (s *session) cmdSelect(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	name, err := s.mailboxArg()
	if err != nil {
		return err
	}
	var qr *qresyncParams
	if p.take(' ') {
		// RFC 7162 §3.1.8, §3.2.5: (CONDSTORE) and (QRESYNC (...)).
		condstore, q, err := s.selectParams()
		if err != nil {
			return err
		}
		if condstore || q != nil {
			// No untagged HIGHESTMODSEQ of the mailbox being left: this
			// SELECT reports the new one's.
			s.condstore = true
		}
		qr = q
	}
	if err := p.end(); err != nil {
		return err
	}
	if s.sel != nil {
		// RFC 9051 §6.3.2: the previous mailbox is closed first, even if
		// the new one cannot be selected.
		s.sel = nil
		s.state = stateAuth
		s.w.WriteString("* OK [CLOSED] Previous mailbox is now closed\r\n")
	}
	// Changes committed before the snapshot below are in it; those after
	// it are announced later, and applying one twice is harmless.
	s.absorb()
	s.pending = s.pending[:0]
	var snap *store.Selection
	var resync *store.Resync
	if qr != nil {
		snap, resync, err = s.srv.st.SelectChangedSince(context.Background(), s.account.ID, name, qr.modseq)
	} else {
		snap, err = s.srv.st.Select(context.Background(), s.account.ID, name)
	}
	if err != nil {
		return storeError(err)
	}
	mb, uids, stats := snap.Mailbox, snap.UIDs, &snap.Stats
	sel := &selection{id: mb.ID, name: mb.Name, uidValidity: mb.UIDValidity, readOnly: c.name == "EXAMINE", uids: uids,
		uidNext: mb.UIDNext, modseq: mb.HighestModSeq}
	if n := len(uids); n > 0 {
		// EXAMINE shows which messages are recent but must not claim
		// them (RFC 3501 §6.3.2).
		var after uint32
		if sel.readOnly {
			after = s.srv.st.RecentAfter(mb.ID)
		} else {
			after = s.srv.st.ClaimRecent(mb.ID, uids[n-1])
		}
		i := sort.Search(n, func(i int) bool { return uids[i] > after })
		sel.recent = uids[i:n:n]
	}
	flags := append(slices.Clone(systemFlags), stats.Keywords...)
	w := s.w
	w.WriteString("* FLAGS ")
	s.writeFlags(flags)
	w.WriteString("\r\n")
	if sel.readOnly {
		w.WriteString("* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n")
	} else {
		w.WriteString("* OK [PERMANENTFLAGS ")
		s.writeFlags(append(flags, `\*`))
		w.WriteString("] Flags permitted\r\n")
	}
	fmt.Fprintf(w, "* %d EXISTS\r\n", len(uids))
	if !s.rev2 {
		// RFC 9051 dropped \Recent: only IMAP4rev1 sessions hear of it.
		fmt.Fprintf(w, "* %d RECENT\r\n", len(sel.recent))
		if stats.FirstUnseen != 0 {
			fmt.Fprintf(w, "* OK [UNSEEN %d] First unseen message\r\n", sel.seqOf(stats.FirstUnseen))
		}
	}
	fmt.Fprintf(w, "* OK [UIDVALIDITY %d] UIDs valid\r\n", mb.UIDValidity)
	fmt.Fprintf(w, "* OK [UIDNEXT %d] Predicted next UID\r\n", mb.UIDNext)
	// RFC 7162 §3.1.2.1: with every SELECT of a mailbox that keeps
	// modseqs, which every Loft mailbox does (so NOMODSEQ never applies).
	fmt.Fprintf(w, "* OK [HIGHESTMODSEQ %d] Highest\r\n", mb.HighestModSeq)
	if s.rev2 {
		// RFC 9051 §6.3.2: the mailbox's name as the server knows it.
		w.WriteString(`* LIST () "/" `)
		w.mailbox(mb.Name)
		w.WriteString("\r\n")
	}
	s.sel = sel
	s.saved = nil
	s.state = stateSelected
	if qr != nil && qr.uidValidity == mb.UIDValidity {
		// A client whose UIDVALIDITY is stale gets a plain SELECT: its
		// cache is void anyway (RFC 7162 §3.2.5.1).
		s.writeResync(qr, resync)
	}
	if sel.readOnly {
		c.ok = "[READ-ONLY] EXAMINE completed"
	} else {
		c.ok = "[READ-WRITE] SELECT completed"
	}
	return nil
}

// announceNew adds a new message, just learned from the feed, to the
// map; the session claims it as \Recent unless another session was told
// of it first (RFC 3501 §2.3.2) or the mailbox is read-only.
func (s *session) announceNew(uid uint32) {
	sel := s.sel
	sel.uids = append(sel.uids, uid)
	sel.uidNext = max(sel.uidNext, uid+1)
	if !sel.readOnly && s.srv.st.ClaimRecent(sel.id, uid) < uid {
		sel.recent = append(sel.recent, uid)
	}
}

// writeExists writes EXISTS and, to an IMAP4rev1 session, RECENT: "if
// the size of the mailbox changes" (RFC 3501 §7.3.2).
func (s *session) writeExists() {
	fmt.Fprintf(s.w, "* %d EXISTS\r\n", len(s.sel.uids))
	if !s.rev2 {
		fmt.Fprintf(s.w, "* %d RECENT\r\n", s.sel.recentCount())
	}
}

// writeMessageFlags writes a message's flags, with \Recent for an
// IMAP4rev1 session in which it is recent.
func (s *session) writeMessageFlags(uid uint32, flags []string) {
	if !s.rev2 && s.sel != nil && s.sel.isRecent(uid) {
		flags = append(slices.Clip(flags), `\Recent`)
	}
	s.writeFlags(flags)
}

func (s *session) cmdClose(c *cmd) error {
	if err := s.p.end(); err != nil {
		return err
	}
	if !s.sel.readOnly {
		// RFC 9051 §6.4.1: expunge silently; no EXPUNGE responses.
		if _, err := s.expungeDeleted(nil); err != nil {
			return err
		}
	}
	s.unselect()
	return nil
}

func (s *session) cmdUnselect(c *cmd) error {
	if err := s.p.end(); err != nil {
		return err
	}
	s.unselect()
	return nil
}

func (s *session) unselect() {
	s.sel = nil
	s.saved = nil
	s.state = stateAuth
}

// resolve turns a sequence set of message numbers, or of UIDs with uid,
// into sequence numbers: ascending, unique, all in the map. Message numbers
// beyond the mailbox are an error; UIDs that do not exist are skipped
// (RFC 9051 §6.4.9).
func (s *session) resolve(set numSet, uid bool) ([]int, error) {
	sel := s.sel
	n := len(sel.uids)
	var seqs []int
	if set.saved {
		for _, u := range s.saved {
			if seq := sel.seqOf(u); seq > 0 {
				seqs = append(seqs, seq)
			}
		}
		return seqs, nil
	}
	for _, r := range set.ranges {
		lo, hi := r.first, r.last
		if uid {
			if n == 0 {
				continue
			}
			star := sel.uids[n-1]
			if lo == 0 {
				lo = star
			}
			if hi == 0 {
				hi = star
			}
			if lo > hi {
				lo, hi = hi, lo
			}
			i := sort.Search(n, func(i int) bool { return sel.uids[i] >= lo })
			for ; i < n && sel.uids[i] <= hi; i++ {
				seqs = append(seqs, i+1)
			}
			continue
		}
		if lo == 0 {
			lo = uint32(n)
		}
		if hi == 0 {
			hi = uint32(n)
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		if lo == 0 || int64(hi) > int64(n) {
			return nil, bad("", "Invalid message sequence number (mailbox has %d messages)", n)
		}
		for q := lo; q <= hi; q++ {
			seqs = append(seqs, int(q))
		}
	}
	if len(set.ranges) > 1 {
		slices.Sort(seqs)
		seqs = slices.Compact(seqs)
	}
	return seqs, nil
}

// uidRanges turns ascending sequence numbers into UID ranges for the
// store: consecutive numbers make one range.
func (sel *selection) uidRanges(seqs []int) []store.UIDRange {
	var out []store.UIDRange
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		out = append(out, store.UIDRange{First: sel.uids[seqs[i]-1], Last: sel.uids[seqs[j]-1]})
		i = j + 1
	}
	return out
}

// uidsOf returns the UIDs of sequence numbers.
func (sel *selection) uidsOf(seqs []int) []uint32 {
	out := make([]uint32, len(seqs))
	for i, q := range seqs {
		out[i] = sel.uids[q-1]
	}
	return out
}

// messages returns the store's metadata of the given sequence numbers,
// indexed like seqs; nil where the message is gone (expunged by another
// session, not yet announced).
func (s *session) messages(seqs []int) ([]*store.MessageInfo, error) {
	sel := s.sel
	infos, err := s.srv.st.MessagesInRanges(context.Background(), s.account.ID, sel.id, sel.uidRanges(seqs))
	if err != nil {
		return nil, storeError(err)
	}
	out := make([]*store.MessageInfo, len(seqs))
	j := 0
	for i, q := range seqs {
		u := sel.uids[q-1]
		for j < len(infos) && infos[j].UID < u {
			j++
		}
		if j < len(infos) && infos[j].UID == u {
			out[i] = &infos[j]
		}
	}
	return out, nil
}

// uidSet formats UIDs (ascending) in the compact form "1:3,7".
func uidSet(uids []uint32) string {
	var b strings.Builder
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(uids[i]), 10))
		if j > i {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(uids[j]), 10))
		}
		i = j + 1
	}
	return b.String()
}
