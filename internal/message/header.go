// This file reads a part's header (RFC 5322 §2.2): fields, folding, garbage
// lines; and turns the Content-* fields into the Part's fields (RFC 2045,
// RFC 2183, RFC 3282).

package message

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// The header fields the parser keeps; all others are skipped as read.
const (
	fContentType = iota
	fContentTransferEncoding
	fContentID
	fContentDescription
	fContentDisposition
	fContentLanguage
	fContentLocation
	fContentMD5
	fDate // the envelope's fields from here on
	fSubject
	fFrom
	fSender
	fReplyTo
	fTo
	fCc
	fBcc
	fInReplyTo
	fMessageID
	numFields
)

// firstEnvelopeField is the first of the fields only messages need.
const firstEnvelopeField = fDate

// fieldIndex maps a lower-case field name to its index. Read only.
var fieldIndex = map[string]int{
	"content-type":              fContentType,
	"content-transfer-encoding": fContentTransferEncoding,
	"content-id":                fContentID,
	"content-description":       fContentDescription,
	"content-disposition":       fContentDisposition,
	"content-language":          fContentLanguage,
	"content-location":          fContentLocation,
	"content-md5":               fContentMD5,
	"date":                      fDate,
	"subject":                   fSubject,
	"from":                      fFrom,
	"sender":                    fSender,
	"reply-to":                  fReplyTo,
	"to":                        fTo,
	"cc":                        fCc,
	"bcc":                       fBcc,
	"in-reply-to":               fInReplyTo,
	"message-id":                fMessageID,
}

// maxFieldName is the length of the longest name in fieldIndex.
const maxFieldName = len("content-transfer-encoding")

// header holds the kept fields of one part's header: the first occurrence of
// each, unfolded, trimmed, valid UTF-8.
type header struct {
	buf   []byte // the kept fields' bytes, one after the other; reused
	spans [numFields][2]int
	seen  [numFields]bool
	val   [numFields]string
}

// readHeader reads a header up to and including its blank line, keeping the
// fields in p.hdr: the Content-* fields, and the envelope's if envelope. It
// returns blank == false if the header ended otherwise,
// at a boundary delimiter line of an enclosing multipart or at the end of
// the input; e then says which.
func (p *parser) readHeader(top, envelope bool) (e end, blank bool) {
	s := &p.s
	h := &p.hdr
	h.reset()
	s.keep = true
	defer func() { s.keep = false; h.finish() }()

	cur := -1 // the kept field that continuation lines extend
	for s.next() {
		line := s.line
		if len(line) == 0 {
			return end{}, true
		}
		if line[0] == ' ' || line[0] == '\t' {
			// Folding (RFC 5322 §2.2.3): unfolding removes only the CRLF.
			if cur >= 0 && len(h.buf)+len(line) <= maxHeaderKeep {
				h.buf = append(h.buf, line...)
				h.spans[cur][1] = len(h.buf)
			}
			continue
		}
		cur = -1
		if len(line) >= 2 && line[0] == '-' && line[1] == '-' && len(p.bounds) > 0 {
			if level, close, ok := p.matchBoundary(line); ok {
				return p.delimiterEnd(level, close), false
			}
		}
		if top && s.start == 0 && bytes.HasPrefix(line, []byte("From ")) {
			continue // an mbox separator line
		}
		name, value, ok := splitField(line)
		if !ok {
			continue // garbage: tolerated, skipped
		}
		f := lookupField(name)
		if f < 0 || (f >= firstEnvelopeField && !envelope) || h.seen[f] || len(h.buf)+len(value) > maxHeaderKeep {
			continue
		}
		h.seen[f] = true
		h.spans[f][0] = len(h.buf)
		h.buf = append(h.buf, value...)
		h.spans[f][1] = len(h.buf)
		cur = f
	}
	return p.inputEnd(), false
}

// splitField splits a header line "name: value". The name is printable
// US-ASCII but colon (RFC 5322 §2.2); whitespace before the colon is
// tolerated (obs-optional, RFC 5322 §4.5).
func splitField(line []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, false
	}
	name = line[:colon]
	for len(name) > 0 && (name[len(name)-1] == ' ' || name[len(name)-1] == '\t') {
		name = name[:len(name)-1]
	}
	if len(name) == 0 {
		return nil, nil, false
	}
	for _, c := range name {
		if c <= ' ' || c > '~' {
			return nil, nil, false
		}
	}
	return name, line[colon+1:], true
}

// lookupField returns the index of a field name, or -1 for a field the
// parser does not keep.
func lookupField(name []byte) int {
	if len(name) > maxFieldName {
		return -1
	}
	var lower [maxFieldName]byte
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	if f, ok := fieldIndex[string(lower[:len(name)])]; ok {
		return f
	}
	return -1
}

func (h *header) reset() {
	h.buf = h.buf[:0]
	h.seen = [numFields]bool{}
	h.val = [numFields]string{}
}

// finish turns the kept bytes into strings, with one allocation.
func (h *header) finish() {
	if len(h.buf) == 0 {
		return
	}
	all := string(h.buf)
	for f := range numFields {
		if h.seen[f] {
			h.val[f] = validUTF8(strings.Trim(all[h.spans[f][0]:h.spans[f][1]], " \t\r\n"))
		}
	}
}

// apply sets the Content-* fields of part from the header.
func (h *header) apply(part *Part, digest bool) {
	part.MediaType, part.MediaSubtype = "text", "plain"
	if digest {
		// RFC 2046 §5.1.5.
		part.MediaType, part.MediaSubtype = "message", "rfc822"
	}
	if h.seen[fContentType] {
		typ, sub, rest := parseMediaType(h.val[fContentType])
		if typ != "" {
			// A syntactically invalid type keeps the default (RFC 2045 §5.2).
			part.MediaType, part.MediaSubtype = typ, sub
		}
		part.Params = parseParams(rest)
	}
	part.Encoding = strings.ToLower(firstToken(h.val[fContentTransferEncoding]))
	part.ID = h.val[fContentID]
	part.Description = h.val[fContentDescription]
	if v := h.val[fContentDisposition]; v != "" {
		disp, rest, _ := strings.Cut(v, ";")
		part.Disposition = strings.ToLower(firstToken(disp))
		part.DispositionParams = parseParams(rest)
	}
	for lang := range strings.SplitSeq(h.val[fContentLanguage], ",") {
		if lang = strings.TrimSpace(lang); lang != "" {
			part.Language = append(part.Language, lang)
		}
	}
	part.Location = h.val[fContentLocation]
	part.MD5 = h.val[fContentMD5]
}

// parseMediaType splits a Content-Type value into lower-case type and
// subtype and the parameter text after them. It is lenient: each of type
// and subtype is the run of token characters at its start (so a trailing
// comment is ignored); if either is empty, type is "" (use the default).
func parseMediaType(v string) (typ, sub, params string) {
	mt, params, _ := strings.Cut(v, ";")
	t, s, ok := strings.Cut(mt, "/")
	typ = strings.ToLower(leadingToken(strings.TrimSpace(t)))
	sub = strings.ToLower(leadingToken(strings.TrimSpace(s)))
	if !ok || typ == "" || sub == "" {
		return "", "", params
	}
	return typ, sub, params
}

// firstToken returns the first token of a structured field value such as
// "base64" or "attachment", ignoring surrounding whitespace and a comment.
func firstToken(v string) string {
	return leadingToken(strings.TrimSpace(v))
}

// leadingToken returns the run of RFC 2045 token characters that starts s.
func leadingToken(s string) string {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return s[:i]
		}
	}
	return s
}

// isTokenChar reports whether c may appear in an RFC 2045 token: any
// printable US-ASCII character but tspecials.
func isTokenChar(c byte) bool {
	if c <= ' ' || c > '~' {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}

// validUTF8 returns s with every byte that is not part of valid UTF-8 read
// as ISO-8859-1. Raw 8-bit header bytes are usually in a legacy charset; this
// keeps the likeliest one readable and loses nothing, where the JSON cache
// would otherwise turn each into U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/2)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(rune(s[i]))
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
