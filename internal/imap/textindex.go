// This file plugs the store's text index into SEARCH (and so into SORT and
// THREAD): before messages are matched, every HEADER, BODY and TEXT key of
// the program (FROM, TO, CC, BCC and SUBJECT are HEADER keys) is answered
// by the index for all indexed messages at once; the evaluation of the
// program then takes those answers and reads only messages the index does
// not cover. The index narrows with trigrams and confirms on the decoded
// text, so the answers are exactly what reading each message gives
// (RFC 9051 §6.4.4 substring semantics, case-insensitive).

package imap

import (
	"context"
	"strings"

	"loft/internal/store"
)

// textHits is the index's answer for one text key.
type textHits struct {
	match     map[uint32]bool // UIDs of indexed messages that match
	unindexed map[uint32]bool // UIDs the index does not cover: read them
}

// answer returns whether the message matches, if the index knows.
func (h *textHits) answer(uid uint32) (match, known bool) {
	if h == nil || h.unindexed[uid] {
		return false, false
	}
	return h.match[uid], true
}

// matchAll evaluates the program against the messages infos (indexed by
// sequence number - 1; nil for messages gone) and returns the sequence
// numbers that match.
func (s *session) matchAll(root *searchKey, infos []*store.MessageInfo) ([]int, error) {
	sel := s.sel
	if len(infos) == 0 {
		return nil, nil
	}
	if !s.srv.opts.ScanText {
		if err := s.indexText(root); err != nil {
			return nil, err
		}
	}
	var matches []int
	for i, m := range infos {
		if m == nil {
			continue
		}
		mc := &matchCtx{s: s, seq: i + 1, info: m, n: len(sel.uids), maxUID: sel.uids[len(sel.uids)-1]}
		ok, err := mc.match(root)
		if err != nil {
			return nil, err
		}
		if ok {
			matches = append(matches, i+1)
		}
	}
	return matches, nil
}

// indexText asks the index about every text key of the program.
func (s *session) indexText(k *searchKey) error {
	for _, kid := range k.kids {
		if err := s.indexText(kid); err != nil {
			return err
		}
	}
	var field store.TextField
	switch k.op {
	case "HEADER":
		field = store.TextHeader
	case "BODY":
		field = store.TextBody
	case "TEXT":
		field = store.TextAll
	default:
		return nil
	}
	text := strings.ToLower(k.text)
	res, err := s.srv.st.SearchText(context.Background(), s.account.ID, s.sel.id, field, text)
	if err != nil {
		return storeError(err)
	}
	h := &textHits{match: make(map[uint32]bool, len(res.Matches)), unindexed: make(map[uint32]bool, len(res.Unindexed))}
	for _, uid := range res.Matches {
		// The index finds the string anywhere in the header; the key
		// wants it in one field.
		if k.op == "HEADER" && !headerContains(res.Headers[uid], strings.ToLower(k.field), text) {
			continue
		}
		h.match[uid] = true
	}
	for _, uid := range res.Unindexed {
		h.unindexed[uid] = true
	}
	k.idx = h
	return nil
}
