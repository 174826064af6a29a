// This file holds FETCH and UID FETCH (RFC 9051 §6.4.5): parsing the data
// items, setting \Seen for non-PEEK body fetches, and writing the FETCH
// responses. Bodies and parts stream from the message file with the byte
// offsets of the structure cached at delivery (body.go).

package imap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"loft/internal/message"
	"loft/internal/store"
)

// Kinds of fetch items.
const (
	fetchUID = iota + 1
	fetchFlags
	fetchInternalDate
	fetchSize
	fetchEnvelope
	fetchBodyStructure // BODYSTRUCTURE
	fetchBody          // BODY without section: the non-extensible structure
	fetchSection       // BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER, RFC822.TEXT
	fetchBinary        // BINARY[...], BINARY.PEEK[...]
	fetchBinarySize    // BINARY.SIZE[...]
	fetchModSeq        // MODSEQ (RFC 7162 §3.1.4.2)
	fetchSaveDate      // SAVEDATE (RFC 8514)
	fetchPreview       // PREVIEW (RFC 8970; preview.go)
)

// fetchItem is one requested data item.
type fetchItem struct {
	kind int
	peek bool  // does not set \Seen
	path []int // part numbers, e.g. 1.2 → [1 2]
	// spec is "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" or "MIME".
	spec    string
	fields  []string
	partial bool
	start   int64
	count   int64
	// label is the item's name in the response when it is not derived
	// from the section: "RFC822", "RFC822.HEADER", "RFC822.TEXT".
	label string
}

// needsBody reports whether the item reads the message file.
func (it *fetchItem) needsBody() bool {
	return it.kind == fetchSection || it.kind == fetchBinary || it.kind == fetchBinarySize
}

// needsStructure reports whether the item needs the cached structure.
func (it *fetchItem) needsStructure() bool {
	switch it.kind {
	case fetchEnvelope, fetchBodyStructure, fetchBody, fetchBinary, fetchBinarySize:
		return true
	case fetchSection:
		return len(it.path) > 0 || it.spec != ""
	}
	return false
}

func (s *session) cmdFetch(c *cmd) error {
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
	items, err := s.fetchItems()
	if err != nil {
		return err
	}
	var mods fetchModifiers
	if p.take(' ') {
		if mods, err = s.fetchModifiersArg(c); err != nil {
			return err
		}
	}
	if err := p.end(); err != nil {
		return err
	}
	if c.uid && !slices.ContainsFunc(items, func(it fetchItem) bool { return it.kind == fetchUID }) {
		items = append([]fetchItem{{kind: fetchUID}}, items...)
	}
	hasItem := func(kind int) bool {
		return slices.ContainsFunc(items, func(it fetchItem) bool { return it.kind == kind })
	}
	if hasItem(fetchModSeq) || mods.changedSince > 0 {
		s.enableCondstore() // RFC 7162 §3.1: CONDSTORE enabling
	}
	// CHANGEDSINCE implies MODSEQ (RFC 7162 §3.1.4.1); so does any UID
	// FETCH once QRESYNC is on (§3.2.4), so that the client can keep its
	// cache's modseq. It goes right after UID, as in the RFC's examples.
	if !hasItem(fetchModSeq) && (mods.changedSince > 0 || c.uid && s.qresync) {
		at := 0
		if len(items) > 0 && items[0].kind == fetchUID {
			at = 1
		}
		items = slices.Insert(items, at, fetchItem{kind: fetchModSeq})
	}
	seqs, err := s.resolve(set, c.uid)
	if err != nil {
		return err
	}
	if mods.vanished {
		if err := s.writeFetchVanished(set, mods.changedSince); err != nil {
			return err
		}
	}
	infos, err := s.messages(seqs)
	if err != nil {
		return err
	}
	if mods.changedSince > 0 {
		for i, m := range infos {
			if m != nil && m.ModSeq <= mods.changedSince {
				seqs[i] = 0 // not asked for: not reported as missing either
				infos[i] = nil
			}
		}
	}
	if hasItem(fetchSaveDate) {
		if err := s.loadSaveDates(seqs); err != nil {
			return err
		}
	}
	// Non-PEEK body fetches set \Seen (RFC 9051 §6.4.5), and the new flags
	// are returned with the data (and with CONDSTORE their modseq, RFC
	// 7162 §3.1: every FETCH that reports a flag change has it).
	setsSeen := !s.sel.readOnly && slices.ContainsFunc(items, func(it fetchItem) bool {
		return it.needsBody() && it.kind != fetchBinarySize && !it.peek
	})
	if setsSeen && s.condstore && !hasItem(fetchModSeq) {
		items = append(items, fetchItem{kind: fetchModSeq})
	}
	seen := map[uint32]bool{}
	if setsSeen {
		var unseen []uint32
		for _, m := range infos {
			if m != nil && !m.HasFlag(`\Seen`) {
				unseen = append(unseen, m.UID)
			}
		}
		if len(unseen) > 0 {
			upd, err := s.srv.st.StoreFlags(context.Background(), s.account.ID, s.sel.id, unseen, store.FlagsAdd, []string{`\Seen`})
			if err != nil {
				return storeError(err)
			}
			s.dropOwn(func(c *store.Change) bool { return ownFlagChange(c, s.sel.id, upd) })
			for _, u := range upd {
				seen[u.UID] = true
				for _, m := range infos {
					if m != nil && m.UID == u.UID {
						m.Flags = u.Flags
						m.ModSeq = u.ModSeq
					}
				}
			}
		}
	}
	hasFlags := slices.ContainsFunc(items, func(it fetchItem) bool { return it.kind == fetchFlags })
	missing := false
	for i, seq := range seqs {
		m := infos[i]
		if m == nil {
			missing = missing || seq != 0
			continue
		}
		err := s.fetchMessage(seq, m, items, seen[m.UID] && !hasFlags)
		if errors.Is(err, store.ErrNoMessage) {
			missing = true
			continue
		}
		if err != nil {
			return err
		}
	}
	if missing && !c.uid {
		// RFC 9051 §7.1: another session expunged some of them; the
		// client learns which at its next command.
		return no("EXPUNGEISSUED", "Some messages were expunged meanwhile")
	}
	return nil
}

func ownFlagChange(c *store.Change, mailboxID int64, upd []store.FlagUpdate) bool {
	if c.Kind != store.ChangeFlags || c.MailboxID != mailboxID {
		return false
	}
	return slices.ContainsFunc(upd, func(u store.FlagUpdate) bool { return u.UID == c.UID && u.ModSeq == c.ModSeq })
}

// fetchItems reads a fetch item, a macro, or a parenthesized list.
func (s *session) fetchItems() ([]fetchItem, error) {
	p := s.p
	if p.take('(') {
		var items []fetchItem
		for !p.take(')') {
			if len(items) > 0 {
				if err := p.sp(); err != nil {
					return nil, err
				}
			}
			it, err := s.fetchItem()
			if err != nil {
				return nil, err
			}
			items = append(items, it)
		}
		if len(items) == 0 {
			return nil, bad("", "Empty list of fetch items")
		}
		return items, nil
	}
	switch {
	case p.takeWord("ALL"):
		return []fetchItem{{kind: fetchFlags}, {kind: fetchInternalDate}, {kind: fetchSize}, {kind: fetchEnvelope}}, nil
	case p.takeWord("FAST"):
		return []fetchItem{{kind: fetchFlags}, {kind: fetchInternalDate}, {kind: fetchSize}}, nil
	case p.takeWord("FULL"):
		return []fetchItem{{kind: fetchFlags}, {kind: fetchInternalDate}, {kind: fetchSize}, {kind: fetchEnvelope}, {kind: fetchBody}}, nil
	}
	it, err := s.fetchItem()
	return []fetchItem{it}, err
}

func (s *session) fetchItem() (fetchItem, error) {
	p := s.p
	name := strings.ToUpper(p.span(func(c byte) bool {
		return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.'
	}))
	var it fetchItem
	switch name {
	case "UID":
		it.kind = fetchUID
	case "MODSEQ":
		it.kind = fetchModSeq
	case "SAVEDATE":
		it.kind = fetchSaveDate
	case "FLAGS":
		it.kind = fetchFlags
	case "INTERNALDATE":
		it.kind = fetchInternalDate
	case "RFC822.SIZE":
		it.kind = fetchSize
	case "ENVELOPE":
		it.kind = fetchEnvelope
	case "BODYSTRUCTURE":
		it.kind = fetchBodyStructure
	case "RFC822":
		it = fetchItem{kind: fetchSection, label: "RFC822"}
	case "RFC822.HEADER":
		it = fetchItem{kind: fetchSection, spec: "HEADER", peek: true, label: "RFC822.HEADER"}
	case "RFC822.TEXT":
		it = fetchItem{kind: fetchSection, spec: "TEXT", label: "RFC822.TEXT"}
	case "BODY", "BODY.PEEK":
		if p.peek() != '[' {
			if name == "BODY.PEEK" {
				return it, bad("", "BODY.PEEK needs a section")
			}
			it.kind = fetchBody
			break
		}
		it.kind = fetchSection
		it.peek = name == "BODY.PEEK"
		if err := s.section(&it, false); err != nil {
			return it, err
		}
		if err := s.partial(&it); err != nil {
			return it, err
		}
	case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		it.kind = fetchBinary
		it.peek = name == "BINARY.PEEK"
		if name == "BINARY.SIZE" {
			it.kind = fetchBinarySize
		}
		if err := s.section(&it, true); err != nil {
			return it, err
		}
		if it.kind == fetchBinary {
			if err := s.partial(&it); err != nil {
				return it, err
			}
		}
	case "PREVIEW":
		it.kind = fetchPreview
		if err := s.previewMods(); err != nil {
			return it, err
		}
	case "":
		return it, p.unexpected("fetch item")
	default:
		return it, bad("", "Unknown fetch item %s", clip([]byte(name)))
	}
	return it, nil
}

// section reads "[" section-spec "]" (RFC 9051 section; binary: only part
// numbers, RFC 3516 section-binary).
func (s *session) section(it *fetchItem, binary bool) error {
	p := s.p
	if err := p.expect('['); err != nil {
		return err
	}
	for p.peek() >= '0' && p.peek() <= '9' {
		n, err := p.number()
		if err != nil {
			return err
		}
		if n == 0 || len(it.path) >= 100 {
			return bad("", "Invalid section part number")
		}
		it.path = append(it.path, int(n))
		if !p.take('.') {
			break
		}
	}
	if !binary && p.peek() != ']' {
		spec := strings.ToUpper(p.span(func(c byte) bool {
			return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '.'
		}))
		switch spec {
		case "HEADER", "TEXT":
		case "MIME":
			if len(it.path) == 0 {
				return bad("", "MIME needs a part number")
			}
		case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
			if err := p.sp(); err != nil {
				return err
			}
			if err := p.expect('('); err != nil {
				return err
			}
			for !p.take(')') {
				if len(it.fields) > 0 {
					if err := p.sp(); err != nil {
						return err
					}
				}
				f, err := p.astring()
				if err != nil {
					return err
				}
				it.fields = append(it.fields, f)
			}
			if len(it.fields) == 0 {
				return bad("", "Empty header field list")
			}
		default:
			return bad("", "Invalid section %s", clip([]byte(spec)))
		}
		it.spec = spec
	}
	return p.expect(']')
}

// partial reads an optional "<start.count>".
func (s *session) partial(it *fetchItem) error {
	p := s.p
	if !p.take('<') {
		return nil
	}
	start, err := p.number64()
	if err != nil {
		return err
	}
	if err := p.expect('.'); err != nil {
		return err
	}
	count, err := p.number64()
	if err != nil {
		return err
	}
	if count == 0 {
		return bad("", "Partial count must not be 0")
	}
	it.partial, it.start, it.count = true, start, count
	return p.expect('>')
}

// sectionName writes the item's name as the response shows it.
func (s *session) sectionName(it *fetchItem) {
	w := s.w
	if it.label != "" {
		w.WriteString(it.label)
		return
	}
	switch it.kind {
	case fetchBinary:
		w.WriteString("BINARY[")
	case fetchBinarySize:
		w.WriteString("BINARY.SIZE[")
	default:
		w.WriteString("BODY[")
	}
	for i, n := range it.path {
		if i > 0 {
			w.WriteByte('.')
		}
		w.num(int64(n))
	}
	if it.spec != "" {
		if len(it.path) > 0 {
			w.WriteByte('.')
		}
		w.WriteString(it.spec)
	}
	if len(it.fields) > 0 {
		w.WriteString(" (")
		for i, f := range it.fields {
			if i > 0 {
				w.WriteByte(' ')
			}
			w.astr(f)
		}
		w.WriteByte(')')
	}
	w.WriteByte(']')
	if it.partial {
		fmt.Fprintf(w, "<%d>", it.start)
	}
}

// fetchMessage writes one FETCH response. addFlags appends FLAGS (set
// \Seen implicitly, not asked for).
func (s *session) fetchMessage(seq int, m *store.MessageInfo, items []fetchItem, addFlags bool) error {
	var msg *message.Message
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for i := range items {
		it := &items[i]
		var err error
		if it.needsStructure() && msg == nil {
			if msg, err = s.srv.st.Structure(context.Background(), m.Blob); err != nil {
				return err
			}
		}
		if it.needsBody() && f == nil {
			if f, err = s.srv.st.OpenBody(m.Blob); err != nil {
				return err
			}
		}
	}
	w := s.w
	w.WriteString("* ")
	w.num(int64(seq))
	w.WriteString(" FETCH (")
	for i := range items {
		it := &items[i]
		if i > 0 {
			w.WriteByte(' ')
		}
		switch it.kind {
		case fetchUID:
			w.WriteString("UID ")
			w.num(int64(m.UID))
		case fetchFlags:
			w.WriteString("FLAGS ")
			s.writeMessageFlags(m.UID, m.Flags)
		case fetchInternalDate:
			w.WriteString(`INTERNALDATE "` + m.InternalDate.Format("_2-Jan-2006 15:04:05 -0700") + `"`)
		case fetchSize:
			w.WriteString("RFC822.SIZE ")
			w.num(m.Size)
		case fetchModSeq:
			w.WriteString("MODSEQ (")
			w.num(m.ModSeq)
			w.WriteByte(')')
		case fetchSaveDate:
			s.writeSaveDate(m.UID)
		case fetchEnvelope:
			w.WriteString("ENVELOPE ")
			s.writeEnvelope(&msg.Envelope)
		case fetchBodyStructure:
			w.WriteString("BODYSTRUCTURE ")
			s.writeStructure(&msg.Part, true)
		case fetchBody:
			w.WriteString("BODY ")
			s.writeStructure(&msg.Part, false)
		case fetchSection, fetchBinary, fetchBinarySize:
			if err := s.writeSection(it, m, msg, f); err != nil {
				return err
			}
		case fetchPreview:
			if err := s.writePreview(m); err != nil {
				return err
			}
		}
	}
	if addFlags {
		w.WriteString(" FLAGS ")
		s.writeMessageFlags(m.UID, m.Flags)
	}
	w.WriteString(")\r\n")
	return nil
}

// writeSection writes a body section, a binary section or its size.
func (s *session) writeSection(it *fetchItem, m *store.MessageInfo, msg *message.Message, f *os.File) error {
	w := s.w
	s.sectionName(it)
	w.WriteByte(' ')
	data, err := extractSection(it, m, msg, f)
	if err != nil {
		return err
	}
	if data == nil {
		if it.kind == fetchBinarySize {
			w.WriteString("0") // RFC 3516: a size, never NIL
		} else {
			w.WriteString("NIL")
		}
		return nil
	}
	if it.kind == fetchBinary || it.kind == fetchBinarySize {
		if err := data.decode(); err != nil {
			return err
		}
	}
	if it.kind == fetchBinarySize {
		w.num(data.size())
		return nil
	}
	r, n := data.reader()
	if it.partial {
		if it.start >= n {
			r, n = strings.NewReader(""), 0
		} else {
			if _, err := io.CopyN(io.Discard, r, it.start); err != nil {
				return err
			}
			n = min(n-it.start, it.count)
		}
	}
	binary := it.kind == fetchBinary && data.hasNUL()
	return w.literalFrom(r, n, binary)
}

// errUnknownCTE is a part whose transfer encoding BINARY cannot decode.
var errUnknownCTE = &respError{kind: "NO", code: "UNKNOWN-CTE", msg: "Unknown Content-Transfer-Encoding"}
