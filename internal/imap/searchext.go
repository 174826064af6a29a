// This file holds the search keys of extensions, kept apart from the
// search engine in search.go, which calls in at three points: parsing a
// key it does not know (searchKeyExt), matching one (matchExt), and before
// and after a search (searchPrepare, searchModSeq). The keys are MODSEQ
// (CONDSTORE, RFC 7162 §3.1.5), OLDER and YOUNGER (WITHIN, RFC 5032), and
// SAVEDBEFORE, SAVEDON, SAVEDSINCE and SAVEDATESUPPORTED (RFC 8514 §4.3).

package imap

import (
	"strings"
	"time"

	"loft/internal/store"
)

// searchKeyExt parses the extension key named word (upper-case), whose
// arguments follow; ok is false for a word it does not know either.
func (s *session) searchKeyExt(word string) (k *searchKey, ok bool, err error) {
	p := s.p
	switch word {
	case "MODSEQ":
		// "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer.
		// Loft keeps one modseq per message, not per flag: the entry is
		// checked and then ignored, which is what a server without
		// per-flag modseqs does (RFC 7162 §3.1.5).
		if err := p.sp(); err != nil {
			return nil, true, err
		}
		if p.peek() == '"' {
			entry, err := p.quoted()
			if err != nil {
				return nil, true, err
			}
			if !strings.HasPrefix(strings.ToLower(entry), "/flags/") {
				return nil, true, bad("", "Unknown MODSEQ entry %s", clip([]byte(entry)))
			}
			if err := p.sp(); err != nil {
				return nil, true, err
			}
			typ, err := p.atom()
			if err != nil {
				return nil, true, err
			}
			switch strings.ToLower(typ) {
			case "priv", "shared", "all":
			default:
				return nil, true, bad("", "Unknown MODSEQ entry type %s", clip([]byte(typ)))
			}
			if err := p.sp(); err != nil {
				return nil, true, err
			}
		}
		n, err := p.number64()
		if err == nil {
			s.enableCondstore() // RFC 7162 §3.1: CONDSTORE enabling
		}
		return &searchKey{op: "MODSEQ", num: n}, true, err
	case "OLDER", "YOUNGER":
		if err := p.sp(); err != nil {
			return nil, true, err
		}
		n, err := p.number()
		if err == nil && n == 0 {
			err = bad("", "%s needs an interval of at least 1 second", word) // RFC 5032 §4: nz-number
		}
		return &searchKey{op: word, num: int64(n)}, true, err
	case "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE":
		if err := p.sp(); err != nil {
			return nil, true, err
		}
		d, err := p.date()
		return &searchKey{op: word, date: d}, true, err
	case "SAVEDATESUPPORTED":
		// Every Loft mailbox keeps save dates.
		return &searchKey{op: "ALL"}, true, nil
	}
	return nil, false, nil
}

// matchExt matches an extension key; handled is false for other keys.
func (mc *matchCtx) matchExt(k *searchKey) (ok, handled bool, err error) {
	m := mc.info
	switch k.op {
	case "MODSEQ":
		return m.ModSeq >= k.num, true, nil
	case "OLDER":
		return !m.InternalDate.After(time.Now().Add(-time.Duration(k.num) * time.Second)), true, nil
	case "YOUNGER":
		return m.InternalDate.After(time.Now().Add(-time.Duration(k.num) * time.Second)), true, nil
	case "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE":
		t := mc.s.saveDateOf(m.UID, m.InternalDate).In(time.Local)
		a, b := dayNumber(t), dayNumber(k.date)
		switch k.op {
		case "SAVEDBEFORE":
			return a < b, true, nil
		case "SAVEDON":
			return a == b, true, nil
		}
		return a >= b, true, nil
	}
	return false, false, nil
}

// dayNumber is a date's calendar day as yyyymmdd: dates compare by day,
// disregarding time and time zone (RFC 9051 §6.4.4).
func dayNumber(t time.Time) int {
	return t.Year()*10000 + int(t.Month())*100 + t.Day()
}

// searchPrepare loads what the extension keys of a program need for the
// messages of seqs.
func (s *session) searchPrepare(root *searchKey, seqs []int) error {
	s.saveDates = nil
	if usesKey(root, "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE") {
		return s.loadSaveDates(seqs)
	}
	return nil
}

// searchModSeq returns the highest modseq of the matching messages when
// the program uses MODSEQ, for the "(MODSEQ n)" a SEARCH response then
// ends with (RFC 7162 §3.1.5); 0 otherwise or when nothing matched.
func searchModSeq(root *searchKey, infos []*store.MessageInfo, matches []int) int64 {
	if !usesKey(root, "MODSEQ") {
		return 0
	}
	var hi int64
	for _, seq := range matches {
		if m := infos[seq-1]; m != nil {
			hi = max(hi, m.ModSeq)
		}
	}
	return hi
}

func usesKey(k *searchKey, ops ...string) bool {
	for _, op := range ops {
		if k.op == op {
			return true
		}
	}
	for _, kid := range k.kids {
		if usesKey(kid, ops...) {
			return true
		}
	}
	return false
}
