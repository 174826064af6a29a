// Package message parses a stored message once, at delivery, into the MIME
// tree that IMAP (ENVELOPE, BODYSTRUCTURE, BODY[section]) and POP3 serve from
// the cache afterwards: byte offsets of every part into the stored file, the
// header fields BODYSTRUCTURE needs, and the envelopes.
//
// The parser is tolerant: any byte sequence parses, and malformed mail still
// yields a usable tree (worst case a single text/plain part spanning the whole
// body). It streams: memory does not grow with the size of the message.
//
// Files: message.go holds the types, Parse and the walk over the MIME tree;
// scan.go reads lines, header.go reads header fields, params.go parses
// Content-Type parameters, envelope.go builds envelopes and parses addresses.
package message

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

const (
	// maxDepth bounds the nesting of multiparts and embedded messages; deeper
	// content is opaque text/plain. It keeps recursion, the boundary stack
	// and BODYSTRUCTURE responses bounded on hostile input.
	maxDepth = 100
	// maxParts bounds the parts of one message, for the same reason; parts
	// past it are left out of the tree (their bytes stay in their parent).
	maxParts = 10000
)

// Message is the parse of one stored message.
type Message struct {
	Part              // the root part: HeaderOffset 0, EndOffset = size
	Envelope Envelope `json:"env"`
}

// Part is one node of the MIME tree, with byte offsets into the stored
// message. For every part HeaderOffset <= BodyOffset <= EndOffset <= the
// parent's EndOffset, and the children of a part are in order and do not
// overlap. Every string is valid UTF-8 (see Envelope).
type Part struct {
	// HeaderOffset is the first byte of this part's header.
	HeaderOffset int64 `json:"h"`
	// BodyOffset is the first byte of the body, just after the blank line
	// ending the header (== EndOffset if there is no body); if the header has
	// no blank line, the whole part is header and BodyOffset == EndOffset.
	BodyOffset int64 `json:"b"`
	// EndOffset is one past the body's last byte. For a child of a multipart,
	// the CRLF that precedes the next boundary delimiter line belongs to the
	// delimiter, not to the part (RFC 2046 §5.1.1).
	EndOffset int64 `json:"e"`
	// Lines is the number of lines of the body (IMAP BODYSTRUCTURE
	// body-fld-lines); a final line without CRLF counts as a line.
	Lines int64 `json:"l"`
	// MediaType is lower-case, e.g. "text"; by default "text" (or "message"
	// inside multipart/digest, RFC 2046 §5.1.5).
	MediaType string `json:"t"`
	// MediaSubtype is lower-case, e.g. "plain"; by default "plain" ("rfc822"
	// inside multipart/digest). A multipart without a usable boundary or
	// without any part is reported as text/plain.
	MediaSubtype string `json:"s"`
	// Params are the Content-Type parameters in header order, keys
	// lower-case, RFC 2231 continuations and charsets decoded.
	Params []Param `json:"p,omitempty"`
	// ID is the Content-ID, raw.
	ID string `json:"id,omitempty"`
	// Description is the Content-Description, raw.
	Description string `json:"d,omitempty"`
	// Encoding is the Content-Transfer-Encoding, lower-case; "" means 7bit.
	Encoding string `json:"enc,omitempty"`
	// Disposition is the Content-Disposition value, lower-case, e.g.
	// "attachment"; "" if absent.
	Disposition string `json:"disp,omitempty"`
	// DispositionParams are the Content-Disposition parameters, like Params.
	DispositionParams []Param `json:"dp,omitempty"`
	// Language is the Content-Language list.
	Language []string `json:"lang,omitempty"`
	// Location is the Content-Location, raw.
	Location string `json:"loc,omitempty"`
	// MD5 is the Content-MD5, raw.
	MD5 string `json:"md5,omitempty"`
	// Envelope is set for message/rfc822 (and message/global) parts: the
	// envelope of the embedded message, empty when the embedded message is
	// opaque (base64 or quoted-printable encoded).
	Envelope *Envelope `json:"penv,omitempty"`
	// Parts are the children: for a multipart, in order; for a message/rfc822
	// part, exactly one, the embedded message (its HeaderOffset == this
	// part's BodyOffset), or none when the embedded message is opaque.
	Parts []*Part `json:"parts,omitempty"`
}

// Param is one Content-Type or Content-Disposition parameter.
type Param struct{ Key, Value string }

// Parse reads the message of the given size through r and returns its
// structure. It reads sequentially with a bufio.Reader over
// io.NewSectionReader(r, 0, size) and does not hold the message in memory.
// The error is only for I/O errors of r (including a message shorter than
// size), never for malformed content.
func Parse(r io.ReaderAt, size int64) (*Message, error) {
	size = max(size, 0)
	// A small message gets a buffer of its own size: no long lines then, and
	// less to allocate.
	return parse(r, size, int(min(size+1, readBufSize)))
}

// parse is Parse with a given buffer size; tests make it small to exercise
// lines longer than the buffer.
func parse(r io.ReaderAt, size int64, bufSize int) (*Message, error) {
	p := &parser{s: scanner{br: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), bufSize)}}
	m := &Message{}
	p.parts = 1
	p.parsePart(&m.Part, partOptions{top: true, env: &m.Envelope})
	if p.s.err != nil {
		return nil, fmt.Errorf("message: read: %w", p.s.err)
	}
	if p.s.off != size {
		return nil, fmt.Errorf("message: read: %w after %d of %d bytes", io.ErrUnexpectedEOF, p.s.off, size)
	}
	return m, nil
}

// ParseBytes is Parse for a message in memory.
func ParseBytes(b []byte) *Message {
	m, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		// bytes.Reader does not fail; a tree is returned all the same.
		return &Message{Part: Part{BodyOffset: int64(len(b)), EndOffset: int64(len(b)), MediaType: "text", MediaSubtype: "plain"}}
	}
	return m
}

// parser walks the MIME tree of one message.
type parser struct {
	s      scanner
	bounds []string // boundaries of the enclosing multiparts, outermost first
	parts  int      // parts created so far, for maxParts
	hdr    header   // reused for every part's header
}

// partOptions says what a part is, from where it sits.
type partOptions struct {
	depth  int       // nesting level: 0 for the root
	digest bool      // a child of multipart/digest: defaults to message/rfc822
	top    bool      // the root: an mbox "From " line may come first
	env    *Envelope // a message (root or embedded): fill its envelope here
}

// end is what ended a part's content: a boundary delimiter line of an
// enclosing multipart, or the end of the input.
type end struct {
	level     int   // index into parser.bounds; -1 for the end of the input
	close     bool  // a close delimiter ("--boundary--")
	start     int64 // offset of the delimiter line; the input size at its end
	prevTerm  int   // terminator length of the line before the delimiter (it belongs to the delimiter)
	prevStart int64 // offset of the line before the delimiter; -1 at the end of input
	lines     int64 // lines before the delimiter line
}

// delimiterEnd is the end made by the current line, a delimiter.
func (p *parser) delimiterEnd(level int, close bool) end {
	s := &p.s
	return end{
		level:     level,
		close:     close,
		start:     s.start,
		prevTerm:  s.prevTerm,
		prevStart: s.start - s.prevSize,
		lines:     s.lines - 1,
	}
}

// inputEnd is the end of the input.
func (p *parser) inputEnd() end {
	return end{level: -1, start: p.s.off, prevStart: -1, lines: p.s.lines}
}

// contentEnd is where content ended by e stops: before the delimiter line and
// the CRLF preceding it, but never before from.
func (e end) contentEnd(from int64) int64 {
	return max(e.start-int64(e.prevTerm), from)
}

// parsePart parses one part, header and body, starting at the scanner's
// position, and returns what ended it.
func (p *parser) parsePart(part *Part, o partOptions) end {
	s := &p.s
	part.HeaderOffset = s.off
	e, blank := p.readHeader(o.top, o.env != nil)
	p.hdr.apply(part, o.digest)
	if o.env != nil {
		*o.env = p.hdr.envelope()
	}
	if !blank {
		// No blank line: the whole part is header.
		part.BodyOffset = e.contentEnd(part.HeaderOffset)
		part.EndOffset = part.BodyOffset
		if part.MediaType == "multipart" {
			setTextPlain(part)
		}
		if isMessage(part) {
			part.Envelope = &Envelope{}
		}
		return e
	}

	part.BodyOffset = s.off
	bodyLine := s.lines
	switch {
	case part.MediaType == "multipart":
		e = p.parseMultipart(part, o.depth)
	case isMessage(part):
		e = p.parseEmbedded(part, o.depth)
	default:
		e = p.skipBody()
	}

	endOff := e.contentEnd(part.BodyOffset)
	if n := len(part.Parts); n > 0 {
		endOff = max(endOff, part.Parts[n-1].EndOffset)
	}
	part.EndOffset = endOff
	part.Lines = e.lines - bodyLine
	if part.Lines > 0 && e.prevStart >= endOff {
		// The last line was empty: its CRLF went to the delimiter.
		part.Lines--
	}
	return e
}

// parseMultipart parses the body of a multipart: preamble, parts, epilogue
// (RFC 2046 §5.1.1). A line matching an enclosing boundary ends it too, so a
// missing close delimiter costs nothing but that.
func (p *parser) parseMultipart(part *Part, depth int) end {
	boundary := paramValue(part.Params, "boundary")
	if boundary == "" || depth >= maxDepth {
		setTextPlain(part)
		return p.skipBody()
	}
	digest := part.MediaSubtype == "digest"
	p.bounds = append(p.bounds, boundary)
	level := len(p.bounds) - 1
	defer func() { p.bounds = p.bounds[:level] }()

	e := p.skipBody() // the preamble
	for e.level == level && !e.close {
		if p.parts >= maxParts {
			e = p.skipBody()
			continue
		}
		p.parts++
		child := &Part{}
		e = p.parsePart(child, partOptions{depth: depth + 1, digest: digest})
		part.Parts = append(part.Parts, child)
	}
	if e.level == level {
		// After the close delimiter, the epilogue runs to the end of the
		// enclosing part; our own boundary means nothing there any more.
		p.bounds = p.bounds[:level]
		e = p.skipBody()
	}
	if len(part.Parts) == 0 {
		// Dovecot's practice: a multipart without parts is text.
		setTextPlain(part)
	}
	return e
}

// parseEmbedded parses the body of a message/rfc822 or message/global part
// as a message of its own.
func (p *parser) parseEmbedded(part *Part, depth int) end {
	if depth >= maxDepth || p.parts >= maxParts {
		setTextPlain(part)
		return p.skipBody()
	}
	part.Envelope = &Envelope{}
	if part.Encoding == "base64" || part.Encoding == "quoted-printable" {
		// Encoded (RFC 2046 §5.2.1 forbids it, but it happens): opaque.
		return p.skipBody()
	}
	p.parts++
	child := &Part{}
	e := p.parsePart(child, partOptions{depth: depth + 1, env: part.Envelope})
	part.Parts = []*Part{child}
	return e
}

// skipBody reads body lines up to a boundary delimiter of an enclosing
// multipart or the end of the input.
func (p *parser) skipBody() end {
	s := &p.s
	for s.next() {
		if len(p.bounds) == 0 {
			continue
		}
		if line := s.line; len(line) >= 2 && line[0] == '-' && line[1] == '-' {
			if level, close, ok := p.matchBoundary(line); ok {
				return p.delimiterEnd(level, close)
			}
		}
	}
	return p.inputEnd()
}

// matchBoundary reports whether line (without its terminator) is a delimiter
// line "--" boundary, or a close delimiter "--" boundary "--", of an
// enclosing multipart, optionally followed by linear whitespace (RFC 2046
// §5.1.1). The innermost multipart is tried first.
func (p *parser) matchBoundary(line []byte) (level int, close, ok bool) {
	rest := line[2:]
	for i := len(p.bounds) - 1; i >= 0; i-- {
		b := p.bounds[i]
		if len(rest) < len(b) || string(rest[:len(b)]) != b {
			continue
		}
		tail := rest[len(b):]
		close := len(tail) >= 2 && tail[0] == '-' && tail[1] == '-'
		if close {
			tail = tail[2:]
		}
		if isLWSP(tail) {
			return i, close, true
		}
	}
	return 0, false, false
}

// isLWSP reports whether b is only linear whitespace (a stray CR included).
func isLWSP(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// isMessage reports whether part holds an embedded message.
func isMessage(part *Part) bool {
	return part.MediaType == "message" && (part.MediaSubtype == "rfc822" || part.MediaSubtype == "global")
}

// setTextPlain turns a part whose structure cannot be used into opaque
// text/plain.
func setTextPlain(part *Part) {
	part.MediaType, part.MediaSubtype = "text", "plain"
	part.Parts = nil
	part.Envelope = nil
}
