// This file holds the PREVIEW fetch item (RFC 8970): the preview is made
// once at delivery and stored (store.Preview), so it is always at hand and
// LAZY, which lets a server answer NIL when a preview would take long,
// never needs to.

package imap

import (
	"bytes"
	"context"
	"strings"

	"loft/internal/store"
)

// previewMods reads the optional " (" preview-mod *(SP preview-mod) ")"
// after PREVIEW (RFC 8970 §6). LAZY is the only modifier.
func (s *session) previewMods() error {
	p := s.p
	if !bytes.HasPrefix(p.line[p.pos:], []byte(" (")) {
		return nil
	}
	p.pos += 2
	for first := true; !p.take(')'); first = false {
		if !first {
			if err := p.sp(); err != nil {
				return err
			}
		}
		mod, err := p.atom()
		if err != nil {
			return err
		}
		if !strings.EqualFold(mod, "LAZY") {
			return bad("", "Unknown preview modifier %s", clip([]byte(mod)))
		}
	}
	return nil
}

// writePreview writes "PREVIEW" SP nstring for a message.
func (s *session) writePreview(m *store.MessageInfo) error {
	text, err := s.srv.st.Preview(context.Background(), m.Blob)
	if err != nil {
		return err
	}
	s.w.WriteString("PREVIEW ")
	s.w.str(text)
	return nil
}
