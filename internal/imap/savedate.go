// This file holds SAVEDATE (RFC 8514): the FETCH item, and the SAVEDBEFORE,
// SAVEDON, SAVEDSINCE and SAVEDATESUPPORTED search keys' data. Save dates
// live in the database only, so a command that needs them loads those of
// its messages once.

package imap

import (
	"context"
	"slices"
	"time"
)

// loadSaveDates reads the save dates of the given sequence numbers
// (ascending; 0s are skipped) into s.saveDates.
func (s *session) loadSaveDates(seqs []int) error {
	seqs = slices.DeleteFunc(slices.Clone(seqs), func(q int) bool { return q == 0 })
	s.saveDates = nil
	if len(seqs) == 0 {
		return nil
	}
	d, err := s.srv.st.SaveDates(context.Background(), s.account.ID, s.sel.id, s.sel.uidRanges(seqs))
	if err != nil {
		return storeError(err)
	}
	s.saveDates = d
	return nil
}

// writeSaveDate writes the SAVEDATE item of a message: NIL for one stored
// before Loft kept save dates (RFC 8514 §4.2 allows NIL where unknown).
func (s *session) writeSaveDate(uid uint32) {
	t, ok := s.saveDates[uid]
	if !ok {
		s.w.WriteString("SAVEDATE NIL")
		return
	}
	s.w.WriteString(`SAVEDATE "` + t.Format("_2-Jan-2006 15:04:05 -0700") + `"`)
}

// saveDateOf returns a message's save date for searching: its internal
// date when it has none, as RFC 8514 §4.3 asks.
func (s *session) saveDateOf(uid uint32, internal time.Time) time.Time {
	if t, ok := s.saveDates[uid]; ok {
		return t
	}
	return internal
}
