// This file holds SEARCH and UID SEARCH (RFC 9051 §6.4.4) with every
// search key of RFC 9051 (and IMAP4rev1's NEW, OLD, RECENT, UNRECENT),
// CHARSET UTF-8, ESEARCH results (RFC 4731; always for IMAP4rev2 clients)
// and SEARCHRES's SAVE and "$" (RFC 5182).

package imap

import (
	"context"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	"loft/internal/message"
	"loft/internal/store"
)

// maxSearchDepth bounds the nesting of search keys (NOT, OR, parentheses).
const maxSearchDepth = 50

// searchKey is one node of a search program.
type searchKey struct {
	op    string // ALL, NONE, RECENT, FLAG, NOFLAG, SEQ, UID, LARGER, SMALLER, BEFORE, ON, SINCE, SENTBEFORE, SENTON, SENTSINCE, HEADER, BODY, TEXT, NOT, OR, AND
	flag  string
	field string // HEADER: the field name
	text  string
	num   int64
	date  time.Time
	set   numSet
	kids  []*searchKey
	idx   *textHits // HEADER, BODY, TEXT: the text index's answer (textindex.go)
}

// searchReturn are the ESEARCH return options.
type searchReturn struct {
	esearch                    bool
	min, max, all, count, save bool
}

func (s *session) cmdSearch(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	var ret searchReturn
	if p.takeWord("RETURN") {
		ret.esearch = true
		if err := p.sp(); err != nil {
			return err
		}
		if err := p.expect('('); err != nil {
			return err
		}
		for first := true; !p.take(')'); first = false {
			if !first {
				if err := p.sp(); err != nil {
					return err
				}
			}
			opt, err := p.atom()
			if err != nil {
				return err
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
				return bad("", "Unknown search return option %s", opt)
			}
		}
		if !ret.min && !ret.max && !ret.count && !ret.save {
			ret.all = true // RFC 4731 §3.1: RETURN () means ALL
		}
		if err := p.sp(); err != nil {
			return err
		}
	} else if s.rev2 {
		ret = searchReturn{esearch: true, all: true}
	}
	if p.takeWord("CHARSET") {
		if err := p.sp(); err != nil {
			return err
		}
		cs, err := p.astring()
		if err != nil {
			return err
		}
		if !strings.EqualFold(cs, "UTF-8") && !strings.EqualFold(cs, "US-ASCII") {
			return no("BADCHARSET (UTF-8 US-ASCII)", "Unsupported charset")
		}
		if err := p.sp(); err != nil {
			return err
		}
	}
	root := &searchKey{op: "AND"}
	for {
		k, err := s.searchKey(0)
		if err != nil {
			return err
		}
		root.kids = append(root.kids, k)
		if !p.take(' ') {
			break
		}
	}
	if err := p.end(); err != nil {
		return err
	}

	sel := s.sel
	seqs := make([]int, len(sel.uids))
	for i := range seqs {
		seqs[i] = i + 1
	}
	infos, err := s.messages(seqs)
	if err != nil {
		return err
	}
	if err := s.searchPrepare(root, seqs); err != nil { // searchext.go
		return err
	}
	matches, err := s.matchAll(root, infos) // sequence numbers; textindex.go
	if err != nil {
		return err
	}
	uids := sel.uidsOf(matches)
	results := make([]uint32, len(matches))
	for i := range matches {
		if c.uid {
			results[i] = uids[i]
		} else {
			results[i] = uint32(matches[i])
		}
	}
	if ret.save {
		// RFC 5182 §2.1: with only MIN and/or MAX, those are saved.
		switch {
		case len(uids) == 0:
			s.saved = nil
		case !ret.all && !ret.count && (ret.min || ret.max):
			s.saved = nil
			if ret.min {
				s.saved = append(s.saved, uids[0])
			}
			if ret.max && (len(uids) > 1 || !ret.min) {
				s.saved = append(s.saved, uids[len(uids)-1])
			}
		default:
			s.saved = uids
		}
		if !ret.min && !ret.max && !ret.all && !ret.count {
			return nil // SAVE alone: no ESEARCH response
		}
	}
	w := s.w
	modseq := searchModSeq(root, infos, matches) // searchext.go
	if !ret.esearch {
		w.WriteString("* SEARCH")
		for _, r := range results {
			fmt.Fprintf(w, " %d", r)
		}
		if modseq > 0 {
			fmt.Fprintf(w, " (MODSEQ %d)", modseq)
		}
		w.WriteString("\r\n")
		return nil
	}
	w.WriteString("* ESEARCH (TAG ")
	w.quoted(c.tag)
	w.WriteString(")")
	if c.uid {
		w.WriteString(" UID")
	}
	if len(results) > 0 {
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
		w.WriteString(" ALL " + uidSet(results))
	}
	if modseq > 0 {
		fmt.Fprintf(w, " MODSEQ %d", modseq)
	}
	w.WriteString("\r\n")
	return nil
}

// searchKey reads one search key.
func (s *session) searchKey(depth int) (*searchKey, error) {
	p := s.p
	if depth > maxSearchDepth {
		return nil, bad("", "Search program nested too deeply")
	}
	if p.take('(') {
		k := &searchKey{op: "AND"}
		for {
			kid, err := s.searchKey(depth + 1)
			if err != nil {
				return nil, err
			}
			k.kids = append(k.kids, kid)
			if p.take(')') {
				return k, nil
			}
			if err := p.sp(); err != nil {
				return nil, err
			}
		}
	}
	if c := p.peek(); c >= '0' && c <= '9' || c == '*' || c == '$' {
		set, err := p.seqSet()
		return &searchKey{op: "SEQ", set: set}, err
	}
	word, err := p.atom()
	if err != nil {
		return nil, err
	}
	word = strings.ToUpper(word)
	arg := func() (string, error) {
		if err := p.sp(); err != nil {
			return "", err
		}
		return p.astring()
	}
	date := func(op string) (*searchKey, error) {
		if err := p.sp(); err != nil {
			return nil, err
		}
		d, err := p.date()
		return &searchKey{op: op, date: d}, err
	}
	switch word {
	case "ALL":
		return &searchKey{op: "ALL"}, nil
	case "RECENT":
		return &searchKey{op: "RECENT"}, nil
	case "OLD", "UNRECENT":
		return &searchKey{op: "NOT", kids: []*searchKey{{op: "RECENT"}}}, nil
	case "NEW": // RFC 3501 §6.4.4: RECENT UNSEEN
		return &searchKey{op: "AND", kids: []*searchKey{{op: "RECENT"}, {op: "NOFLAG", flag: `\Seen`}}}, nil
	case "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN":
		return &searchKey{op: "FLAG", flag: `\` + word}, nil
	case "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN":
		return &searchKey{op: "NOFLAG", flag: `\` + word[2:]}, nil
	case "KEYWORD", "UNKEYWORD":
		if err := p.sp(); err != nil {
			return nil, err
		}
		f, err := p.atom()
		op := "FLAG"
		if word == "UNKEYWORD" {
			op = "NOFLAG"
		}
		return &searchKey{op: op, flag: f}, err
	case "BCC", "CC", "FROM", "SUBJECT", "TO":
		t, err := arg()
		return &searchKey{op: "HEADER", field: word, text: t}, err
	case "HEADER":
		f, err := arg()
		if err != nil {
			return nil, err
		}
		t, err := arg()
		return &searchKey{op: "HEADER", field: f, text: t}, err
	case "BODY", "TEXT":
		t, err := arg()
		return &searchKey{op: word, text: t}, err
	case "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE":
		return date(word)
	case "LARGER", "SMALLER":
		if err := p.sp(); err != nil {
			return nil, err
		}
		n, err := p.number64()
		return &searchKey{op: word, num: n}, err
	case "UID":
		if err := p.sp(); err != nil {
			return nil, err
		}
		set, err := p.seqSet()
		return &searchKey{op: "UID", set: set}, err
	case "NOT":
		if err := p.sp(); err != nil {
			return nil, err
		}
		k, err := s.searchKey(depth + 1)
		return &searchKey{op: "NOT", kids: []*searchKey{k}}, err
	case "OR":
		if err := p.sp(); err != nil {
			return nil, err
		}
		a, err := s.searchKey(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
		b, err := s.searchKey(depth + 1)
		return &searchKey{op: "OR", kids: []*searchKey{a, b}}, err
	}
	if k, ok, err := s.searchKeyExt(word); ok { // searchext.go
		return k, err
	}
	return nil, bad("", "Unknown search key %s", clip([]byte(word)))
}

// matchCtx evaluates keys against one message, loading its structure,
// header and text only when a key needs them.
type matchCtx struct {
	s      *session
	seq    int
	n      int
	maxUID uint32
	info   *store.MessageInfo
	msg    *message.Message
	header string // decoded, unfolded, lower-case lines "name: value"
	text   string // decoded body text, lower-case
	loaded bool
	body   bool
}

func (mc *matchCtx) structure() error {
	if mc.msg != nil {
		return nil
	}
	var err error
	mc.msg, err = mc.s.srv.st.Structure(context.Background(), mc.info.Blob)
	return err
}

func (mc *matchCtx) match(k *searchKey) (bool, error) {
	m := mc.info
	switch k.op {
	case "ALL":
		return true, nil
	case "NONE":
		return false, nil
	case "AND":
		for _, kid := range k.kids {
			ok, err := mc.match(kid)
			if !ok || err != nil {
				return false, err
			}
		}
		return true, nil
	case "OR":
		for _, kid := range k.kids {
			ok, err := mc.match(kid)
			if ok || err != nil {
				return ok, err
			}
		}
		return false, nil
	case "NOT":
		ok, err := mc.match(k.kids[0])
		return !ok, err
	case "RECENT":
		return mc.s.sel.isRecent(m.UID), nil
	case "FLAG":
		return m.HasFlag(k.flag), nil
	case "NOFLAG":
		return !m.HasFlag(k.flag), nil
	case "SEQ":
		if k.set.saved {
			return mc.inSaved(), nil
		}
		return inSet(k.set, uint32(mc.seq), uint32(mc.n)), nil
	case "UID":
		if k.set.saved {
			return mc.inSaved(), nil
		}
		return inSet(k.set, m.UID, mc.maxUID), nil
	case "LARGER":
		return m.Size > k.num, nil
	case "SMALLER":
		return m.Size < k.num, nil
	case "BEFORE", "ON", "SINCE":
		return compareDate(k.op, m.InternalDate.In(time.Local), k.date), nil
	case "SENTBEFORE", "SENTON", "SENTSINCE":
		if err := mc.structure(); err != nil {
			return false, err
		}
		t, err := mail.ParseDate(mc.msg.Envelope.Date)
		if err != nil {
			return false, nil
		}
		return compareDate(k.op[4:], t, k.date), nil
	case "HEADER":
		if ok, known := k.idx.answer(m.UID); known {
			return ok, nil
		}
		if err := mc.load(false); err != nil {
			return false, err
		}
		return headerContains(mc.header, strings.ToLower(k.field), strings.ToLower(k.text)), nil
	case "BODY", "TEXT":
		if ok, known := k.idx.answer(m.UID); known {
			return ok, nil
		}
		if err := mc.load(true); err != nil {
			return false, err
		}
		t := strings.ToLower(k.text)
		if k.op == "TEXT" && strings.Contains(mc.header, t) {
			return true, nil
		}
		return strings.Contains(mc.text, t), nil
	}
	if ok, handled, err := mc.matchExt(k); handled { // searchext.go
		return ok, err
	}
	return false, fmt.Errorf("search: unknown key %s", k.op)
}

func (mc *matchCtx) inSaved() bool {
	for _, u := range mc.s.saved {
		if u == mc.info.UID {
			return true
		}
	}
	return false
}

// inSet reports whether n is in a sequence set whose "*" is star.
func inSet(set numSet, n, star uint32) bool {
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

// compareDate compares the calendar dates of t and d, disregarding time
// and time zone (RFC 9051 §6.4.4).
func compareDate(op string, t, d time.Time) bool {
	a := t.Year()*10000 + int(t.Month())*100 + t.Day()
	b := d.Year()*10000 + int(d.Month())*100 + d.Day()
	switch op {
	case "BEFORE":
		return a < b
	case "ON":
		return a == b
	}
	return a >= b
}

// headerContains reports whether the header has field with value
// containing text (an empty text matches any message with the field).
func headerContains(header, field, text string) bool {
	prefix := field + ":"
	for _, line := range strings.Split(header, "\n") {
		if strings.HasPrefix(line, prefix) && strings.Contains(line[len(prefix):], text) {
			return true
		}
	}
	return false
}

// load reads the header (and with body, the text) of the message, decoded
// as the text index has it (message.ExtractText).
func (mc *matchCtx) load(body bool) error {
	if mc.loaded && (mc.body || !body) {
		return nil
	}
	if err := mc.structure(); err != nil {
		return err
	}
	f, err := mc.s.srv.st.OpenBody(mc.info.Blob)
	if err != nil {
		return err
	}
	defer f.Close()
	if body {
		txt, err := message.ExtractText(f, mc.msg)
		if err != nil {
			return err
		}
		mc.header, mc.text = txt.Header, txt.Body
		mc.loaded, mc.body = true, true
		return nil
	}
	root := &mc.msg.Part
	hdr := make([]byte, min(root.BodyOffset-root.HeaderOffset, message.MaxText))
	if _, err := f.ReadAt(hdr, root.HeaderOffset); err != nil && err != io.EOF {
		return err
	}
	mc.header = message.DecodeHeader(hdr)
	mc.loaded = true
	return nil
}
