// This file holds SORT and UID SORT (RFC 5256 §3) with the DISPLAYFROM and
// DISPLAYTO keys (RFC 5957, SORT=DISPLAY) and ESEARCH-style results (RFC
// 5267 §3, ESORT), and what SORT and THREAD share: the search they start
// with and the per-message keys, which the store computed at delivery
// (base subject, sent date, addresses as i;unicode-casemap keys).

package imap

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"loft/internal/store"
)

// sortCrit is one sort criterion (RFC 5256 sort-criterion).
type sortCrit struct {
	key     string // ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT, TO, DISPLAYFROM, DISPLAYTO
	reverse bool
}

// sortKeys are the criteria a SORT accepts.
var sortKeys = []string{"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
	"DISPLAYFROM", "DISPLAYTO"} // RFC 5957 §4

// sorted is a message that matched, with its sort data.
type sorted struct {
	seq  int
	uid  uint32
	info *store.SortInfo
}

func (s *session) cmdSort(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	var ret searchReturn
	if p.takeWord("RETURN") { // RFC 5267 §3: ESEARCH return options
		var err error
		if ret, err = s.searchReturnOpts(); err != nil {
			return err
		}
		if err := p.sp(); err != nil {
			return err
		}
	}
	crits, err := s.sortCriteria()
	if err != nil {
		return err
	}
	root, err := s.searchCriteria()
	if err != nil {
		return err
	}
	msgs, infos, matches, err := s.sortData(root, sortKeysFor(crits))
	if err != nil {
		return err
	}
	slices.SortStableFunc(msgs, func(a, b sorted) int {
		for _, cr := range crits {
			r := compareBy(cr.key, a.info, b.info)
			if cr.reverse {
				r = -r
			}
			if r != 0 {
				return r
			}
		}
		return cmp.Compare(a.seq, b.seq) // the implicit last criterion
	})
	results := make([]uint32, len(msgs))
	for i, m := range msgs {
		results[i] = uint32(m.seq)
		if c.uid {
			results[i] = m.uid
		}
	}
	modseq := searchModSeq(root, infos, matches) // RFC 7162 §3.1.5
	w := s.w
	if !ret.esearch {
		w.WriteString("* SORT")
		for _, r := range results {
			w.WriteString(" " + strconv.FormatUint(uint64(r), 10))
		}
		if modseq > 0 {
			fmt.Fprintf(w, " (MODSEQ %d)", modseq)
		}
		w.WriteString("\r\n")
		return nil
	}
	if ret.save {
		// RFC 5182 §2.4: the saved result is the set of matching messages.
		s.saved = s.sel.uidsOf(matches)
		if !ret.min && !ret.max && !ret.all && !ret.count {
			return nil
		}
	}
	w.WriteString("* ESEARCH (TAG ")
	w.quoted(c.tag)
	w.WriteString(")")
	if c.uid {
		w.WriteString(" UID")
	}
	if len(results) > 0 {
		// RFC 5267 §3.1: MIN and MAX are the first and last in sort order.
		if ret.min {
			fmt.Fprintf(w, " MIN %d", results[0])
		}
		if ret.max {
			fmt.Fprintf(w, " MAX %d", results[len(results)-1])
		}
	}
	if ret.count {
		fmt.Fprintf(w, " COUNT %d", len(results))
	}
	if ret.all && len(results) > 0 {
		// RFC 5267 §3.2: in sort order; only ascending runs become ranges.
		w.WriteString(" ALL " + uidSet(results))
	}
	if modseq > 0 {
		fmt.Fprintf(w, " MODSEQ %d", modseq)
	}
	w.WriteString("\r\n")
	return nil
}

// searchReturnOpts reads " (" return options ")" after RETURN.
func (s *session) searchReturnOpts() (searchReturn, error) {
	p := s.p
	ret := searchReturn{esearch: true}
	if err := p.sp(); err != nil {
		return ret, err
	}
	if err := p.expect('('); err != nil {
		return ret, err
	}
	for first := true; !p.take(')'); first = false {
		if !first {
			if err := p.sp(); err != nil {
				return ret, err
			}
		}
		opt, err := p.atom()
		if err != nil {
			return ret, err
		}
		switch strings.ToUpper(opt) {
		case "MIN":
			ret.min = true
		case "MAX":
			ret.max = true
		case "ALL":
			ret.all = true
		case "COUNT":
			ret.count = true
		case "SAVE":
			ret.save = true
		default:
			return ret, bad("", "Unknown return option %s", opt)
		}
	}
	if !ret.min && !ret.max && !ret.count && !ret.save {
		ret.all = true // RFC 4731 §3.1: RETURN () means ALL
	}
	return ret, nil
}

// sortCriteria reads "(" sort-criterion *(SP sort-criterion) ")" SP.
func (s *session) sortCriteria() ([]sortCrit, error) {
	p := s.p
	if err := p.expect('('); err != nil {
		return nil, err
	}
	var crits []sortCrit
	for first := true; !p.take(')'); first = false {
		if !first {
			if err := p.sp(); err != nil {
				return nil, err
			}
		}
		word, err := p.atom()
		if err != nil {
			return nil, err
		}
		cr := sortCrit{key: strings.ToUpper(word)}
		if cr.key == "REVERSE" {
			if err := p.sp(); err != nil {
				return nil, err
			}
			if word, err = p.atom(); err != nil {
				return nil, err
			}
			cr = sortCrit{key: strings.ToUpper(word), reverse: true}
		}
		if !slices.Contains(sortKeys, cr.key) {
			return nil, bad("", "Unknown sort criterion %s", clip([]byte(word)))
		}
		crits = append(crits, cr)
	}
	if len(crits) == 0 {
		return nil, bad("", "Empty sort criteria")
	}
	return crits, p.sp()
}

// searchCriteria reads the charset and search keys SORT and THREAD end
// with (RFC 5256 search-criteria): the charset is mandatory.
func (s *session) searchCriteria() (*searchKey, error) {
	p := s.p
	cs, err := p.astring()
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(cs, "UTF-8") && !strings.EqualFold(cs, "US-ASCII") {
		return nil, no("BADCHARSET (UTF-8 US-ASCII)", "Unsupported charset")
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	root := &searchKey{op: "AND"}
	for {
		k, err := s.searchKey(0)
		if err != nil {
			return nil, err
		}
		root.kids = append(root.kids, k)
		if !p.take(' ') {
			break
		}
	}
	return root, p.end()
}

// sortKeysFor says which sort data the criteria compare.
func sortKeysFor(crits []sortCrit) store.SortKeys {
	for _, c := range crits {
		switch c.key {
		case "ARRIVAL", "DATE", "SIZE":
		default:
			return store.SortAll
		}
	}
	return store.SortDates
}

// sortData runs the search and returns the matching messages with their
// sort data (at least the fields want says), in mailbox order, and the
// search's infos and matches.
func (s *session) sortData(root *searchKey, want store.SortKeys) ([]sorted, []*store.MessageInfo, []int, error) {
	sel := s.sel
	seqs := make([]int, len(sel.uids))
	for i := range seqs {
		seqs[i] = i + 1
	}
	infos, err := s.messages(seqs)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := s.searchPrepare(root, seqs); err != nil { // searchext.go
		return nil, nil, nil, err
	}
	matches, err := s.matchAll(root, infos)
	if err != nil || len(matches) == 0 {
		return nil, infos, matches, err
	}
	all, err := s.srv.st.SortInfo(context.Background(), s.account.ID, sel.id, want)
	if err != nil {
		return nil, nil, nil, storeError(err)
	}
	msgs := make([]sorted, 0, len(matches))
	// Matches ascend by sequence number, so by UID, as all does: one walk
	// finds them all (a binary search each was a tenth of a large THREAD).
	i := 0
	for _, seq := range matches {
		uid := sel.uids[seq-1]
		m := sorted{seq: seq, uid: uid}
		for i < len(all) && all[i].UID < uid {
			i++
		}
		if i < len(all) && all[i].UID == uid {
			m.info = &all[i]
		} else {
			// Expunged meanwhile: it sorts as a message without data.
			m.info = &store.SortInfo{UID: uid, InternalDate: infos[seq-1].InternalDate.Unix(), Sent: infos[seq-1].InternalDate.Unix()}
		}
		msgs = append(msgs, m)
	}
	return msgs, infos, matches, nil
}

// compareBy compares two messages by one sort key (RFC 5256 §3, RFC 5957
// §4). Strings are collation keys: octet order is the collation's order,
// and the empty string comes first.
func compareBy(key string, a, b *store.SortInfo) int {
	switch key {
	case "ARRIVAL":
		return cmp.Compare(a.InternalDate, b.InternalDate)
	case "CC":
		return strings.Compare(a.Cc, b.Cc)
	case "DATE":
		return cmp.Compare(a.Sent, b.Sent)
	case "FROM":
		return strings.Compare(a.From, b.From)
	case "SIZE":
		return cmp.Compare(a.Size, b.Size)
	case "SUBJECT":
		return strings.Compare(a.Subject, b.Subject)
	case "TO":
		return strings.Compare(a.To, b.To)
	case "DISPLAYFROM":
		return strings.Compare(a.DisplayFrom, b.DisplayFrom)
	case "DISPLAYTO":
		return strings.Compare(a.DisplayTo, b.DisplayTo)
	}
	return 0
}
