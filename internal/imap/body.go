// This file serves message content from the structure cached at delivery:
// ENVELOPE and BODY/BODYSTRUCTURE (RFC 9051 §7.5.2), body sections by part
// number with HEADER, HEADER.FIELDS(.NOT), TEXT and MIME (RFC 9051 §6.4.5),
// and BINARY's decoded content (RFC 3516). Nothing here parses the message
// again: byte ranges come from the cached offsets and stream from the file.

package imap

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"os"
	"strings"

	"loft/internal/message"
	"loft/internal/store"
)

// maxHeaderRead bounds the header bytes read into memory for
// HEADER.FIELDS; a header larger than this is cut there.
const maxHeaderRead = 8 << 20

// sectionData is a section's content: a byte range of the message file,
// or bytes made in memory (selected header fields, decoded BINARY).
type sectionData struct {
	f      *os.File
	off, n int64
	buf    []byte // when set, the content
	inMem  bool
	enc    string // transfer encoding, for BINARY
}

func (d *sectionData) reader() (io.Reader, int64) {
	if d.inMem {
		return bytes.NewReader(d.buf), int64(len(d.buf))
	}
	return io.NewSectionReader(d.f, d.off, d.n), d.n
}

func (d *sectionData) size() int64 {
	if d.inMem {
		return int64(len(d.buf))
	}
	return d.n
}

func (d *sectionData) load() error {
	if d.inMem {
		return nil
	}
	buf := make([]byte, d.n)
	if _, err := d.f.ReadAt(buf, d.off); err != nil && err != io.EOF {
		return err
	}
	d.buf, d.inMem = buf, true
	return nil
}

// decode undoes the transfer encoding, for BINARY.
func (d *sectionData) decode() error {
	switch d.enc {
	case "", "7bit", "8bit", "binary":
		return d.load()
	case "base64", "quoted-printable":
	default:
		return errUnknownCTE
	}
	r, _ := d.reader()
	var dec io.Reader
	if d.enc == "base64" {
		dec = newBase64Reader(r)
	} else {
		dec = quotedprintable.NewReader(r)
	}
	buf, err := io.ReadAll(dec)
	if err != nil && len(buf) == 0 && d.size() > 0 {
		// Damaged encoding: serve what decodes, as most servers do.
		buf = nil
	}
	d.buf, d.inMem = buf, true
	return nil
}

func (d *sectionData) hasNUL() bool { return d.inMem && bytes.IndexByte(d.buf, 0) >= 0 }

// base64Cleaner drops what is not base64 alphabet (line breaks, junk), so
// that the decoder accepts base64 as mail carries it.
type base64Cleaner struct{ r io.Reader }

func (c *base64Cleaner) Read(p []byte) (int, error) {
	for {
		n, err := c.r.Read(p)
		j := 0
		for _, b := range p[:n] {
			if b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '+' || b == '/' || b == '=' {
				p[j] = b
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

func isMessagePart(p *message.Part) bool {
	return p.MediaType == "message" && (p.MediaSubtype == "rfc822" || p.MediaSubtype == "global")
}

// findPart resolves part numbers (RFC 9051 §6.4.5): the parts of a message
// are the children of its multipart body, or just "1", the body itself;
// below a message/rfc822 part, numbering continues in the embedded message.
func findPart(root *message.Part, path []int) *message.Part {
	ctx := root
	var cur *message.Part
	for i, n := range path {
		if i > 0 {
			switch {
			case cur.MediaType == "multipart":
				ctx = cur
			case isMessagePart(cur) && len(cur.Parts) > 0:
				ctx = cur.Parts[0]
			default:
				return nil
			}
		}
		if ctx.MediaType == "multipart" {
			if n > len(ctx.Parts) {
				return nil
			}
			cur = ctx.Parts[n-1]
		} else {
			if n != 1 {
				return nil
			}
			cur = ctx
		}
	}
	return cur
}

// extractSection returns the content of a section, or nil for a part
// that does not exist.
func extractSection(it *fetchItem, m *store.MessageInfo, msg *message.Message, f *os.File) (*sectionData, error) {
	whole := &sectionData{f: f, off: 0, n: m.Size}
	if len(it.path) == 0 && it.spec == "" {
		return whole, nil
	}
	root := &msg.Part
	var part *message.Part
	if len(it.path) > 0 {
		if part = findPart(root, it.path); part == nil {
			return nil, nil
		}
	}
	rng := func(from, to int64) *sectionData {
		from, to = min(max(from, 0), m.Size), min(max(to, 0), m.Size)
		return &sectionData{f: f, off: from, n: max(to-from, 0)}
	}
	switch it.spec {
	case "":
		d := rng(part.BodyOffset, part.EndOffset)
		if part.MediaType != "multipart" && !isMessagePart(part) {
			d.enc = part.Encoding
		}
		return d, nil
	case "MIME":
		return rng(part.HeaderOffset, part.BodyOffset), nil
	}
	msgPart := root
	if part != nil {
		if !isMessagePart(part) {
			return nil, nil
		}
		if len(part.Parts) == 0 {
			return &sectionData{inMem: true, buf: []byte{}}, nil
		}
		msgPart = part.Parts[0]
	}
	switch it.spec {
	case "HEADER":
		return rng(msgPart.HeaderOffset, msgPart.BodyOffset), nil
	case "TEXT":
		return rng(msgPart.BodyOffset, msgPart.EndOffset), nil
	}
	hdr := rng(msgPart.HeaderOffset, min(msgPart.BodyOffset, msgPart.HeaderOffset+maxHeaderRead))
	if err := hdr.load(); err != nil {
		return nil, err
	}
	return &sectionData{inMem: true, buf: filterHeader(hdr.buf, it.fields, it.spec == "HEADER.FIELDS.NOT")}, nil
}

// filterHeader keeps (or, with not, drops) the named fields of a header,
// folded lines included, and ends the result with the blank line.
func filterHeader(hdr []byte, fields []string, not bool) []byte {
	var out []byte
	include := false
	for len(hdr) > 0 {
		i := bytes.IndexByte(hdr, '\n')
		line := hdr
		if i >= 0 {
			line = hdr[:i+1]
		}
		hdr = hdr[len(line):]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		if line[0] != ' ' && line[0] != '\t' {
			name := line
			if c := bytes.IndexByte(line, ':'); c >= 0 {
				name = line[:c]
			}
			name = bytes.TrimSpace(name)
			match := false
			for _, f := range fields {
				if strings.EqualFold(string(name), f) {
					match = true
					break
				}
			}
			include = match != not
		}
		if include {
			out = append(out, line...)
		}
	}
	return append(out, '\r', '\n')
}

// writeEnvelope writes an ENVELOPE.
func (s *session) writeEnvelope(e *message.Envelope) {
	w := s.w
	w.WriteByte('(')
	w.nstr(e.Date)
	w.WriteByte(' ')
	w.nstr(e.Subject)
	for _, list := range [][]message.Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
		w.WriteByte(' ')
		s.writeAddresses(list)
	}
	w.WriteByte(' ')
	w.nstr(e.InReplyTo)
	w.WriteByte(' ')
	w.nstr(e.MessageID)
	w.WriteByte(')')
}

func (s *session) writeAddresses(list []message.Address) {
	w := s.w
	if len(list) == 0 {
		w.WriteString("NIL")
		return
	}
	w.WriteByte('(')
	for _, a := range list {
		w.WriteByte('(')
		name := a.Name
		if !s.rev2 && !isASCII(name) {
			// IMAP4rev1 clients expect RFC 2047 words, as in the header.
			name = mime.QEncoding.Encode("utf-8", name)
		}
		w.nstr(name)
		w.WriteString(" NIL ")
		w.nstr(a.Mailbox)
		w.WriteByte(' ')
		w.nstr(a.Host)
		w.WriteByte(')')
	}
	w.WriteByte(')')
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// writeStructure writes BODYSTRUCTURE (ext) or BODY.
func (s *session) writeStructure(p *message.Part, ext bool) {
	w := s.w
	w.WriteByte('(')
	if p.MediaType == "multipart" && len(p.Parts) > 0 {
		for _, c := range p.Parts {
			s.writeStructure(c, ext)
		}
		w.WriteByte(' ')
		w.str(strings.ToUpper(p.MediaSubtype))
		if ext {
			w.WriteByte(' ')
			writeParams(w, p.Params)
			w.WriteByte(' ')
			writeDisposition(w, p)
			w.WriteByte(' ')
			writeLanguage(w, p.Language)
			w.WriteByte(' ')
			w.nstr(p.Location)
		}
		w.WriteByte(')')
		return
	}
	w.str(strings.ToUpper(p.MediaType))
	w.WriteByte(' ')
	w.str(strings.ToUpper(p.MediaSubtype))
	w.WriteByte(' ')
	writeParams(w, p.Params)
	w.WriteByte(' ')
	w.nstr(p.ID)
	w.WriteByte(' ')
	w.nstr(p.Description)
	w.WriteByte(' ')
	enc := strings.ToUpper(p.Encoding)
	if enc == "" {
		enc = "7BIT"
	}
	w.str(enc)
	w.WriteByte(' ')
	w.num(p.EndOffset - p.BodyOffset)
	switch {
	case isMessagePart(p):
		env := p.Envelope
		if env == nil {
			env = &message.Envelope{}
		}
		w.WriteByte(' ')
		s.writeEnvelope(env)
		w.WriteByte(' ')
		if len(p.Parts) > 0 {
			s.writeStructure(p.Parts[0], ext)
		} else {
			w.WriteString(`("TEXT" "PLAIN" NIL NIL NIL "7BIT" 0 0)`)
		}
		w.WriteByte(' ')
		w.num(p.Lines)
	case p.MediaType == "text":
		w.WriteByte(' ')
		w.num(p.Lines)
	}
	if ext {
		w.WriteByte(' ')
		w.nstr(p.MD5)
		w.WriteByte(' ')
		writeDisposition(w, p)
		w.WriteByte(' ')
		writeLanguage(w, p.Language)
		w.WriteByte(' ')
		w.nstr(p.Location)
	}
	w.WriteByte(')')
}

func writeParams(w *writer, params []message.Param) {
	if len(params) == 0 {
		w.WriteString("NIL")
		return
	}
	w.WriteByte('(')
	for i, p := range params {
		if i > 0 {
			w.WriteByte(' ')
		}
		w.str(strings.ToUpper(p.Key))
		w.WriteByte(' ')
		w.str(p.Value)
	}
	w.WriteByte(')')
}

func writeDisposition(w *writer, p *message.Part) {
	if p.Disposition == "" {
		w.WriteString("NIL")
		return
	}
	w.WriteByte('(')
	w.str(strings.ToUpper(p.Disposition))
	w.WriteByte(' ')
	writeParams(w, p.DispositionParams)
	w.WriteByte(')')
}

func writeLanguage(w *writer, langs []string) {
	if len(langs) == 0 {
		w.WriteString("NIL")
		return
	}
	w.WriteByte('(')
	for i, l := range langs {
		if i > 0 {
			w.WriteByte(' ')
		}
		w.str(l)
	}
	w.WriteByte(')')
}

func newBase64Reader(r io.Reader) io.Reader {
	return base64.NewDecoder(base64.StdEncoding, &base64Cleaner{r: r})
}
