// This file extracts the text of a stored message once, at delivery: the
// decoded header and the decoded text of every text part (in any charset
// go-message knows) plus attachment names, which SEARCH matches against;
// a preview (RFC 8970); and the message ids THREAD=REFERENCES links by.

package message

import (
	"encoding/base64"
	"html"
	"io"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// MaxText bounds how many octets of one message's parts are decoded for
// its text: a search looks no further into a huge message.
const MaxText = 32 << 20

// Preview limits (RFC 8970 §3.3: SHOULD 200 characters, MUST NOT 256).
const (
	previewChars = 200
	previewInput = 16 << 10 // decoded octets of a part looked at for it
)

// Text is what searching, threading and previews need of a message.
type Text struct {
	// Header has one line "name:value" per field of the top-level header:
	// unfolded, RFC 2047 words decoded, lower-case.
	Header string
	// Body is the decoded text of every text part (of HTML, the text
	// without markup), then the file names of all parts that have one,
	// each ending in "\n"; lower-case, UTF-8.
	Body string
	// Preview is the RFC 8970 preview: the start of the first text part,
	// white space collapsed, quoted lines and markup left out; "" if the
	// message has no text.
	Preview string
	// MessageID is the normalized id of Message-ID, "" if none is valid.
	MessageID string
	// References are the normalized ids of References, else the first of
	// In-Reply-To (RFC 5256 REFERENCES), oldest first.
	References []string
}

// ExtractText reads the text of the message m parsed from r.
func ExtractText(r io.ReaderAt, m *Message) (*Text, error) {
	t, err := headerText(r, m)
	if err != nil {
		return nil, err
	}
	root := &m.Part
	x := textWalk{r: r, budget: MaxText}
	x.walk(root)
	for _, n := range x.names {
		x.body.WriteString(strings.ToLower(n))
		x.body.WriteByte('\n')
	}
	t.Body = x.body.String()
	switch {
	case x.plain != "":
		t.Preview = preview(x.plain, true)
	case x.html != "":
		t.Preview = preview(x.html, false)
	}
	return t, nil
}

// ExtractPreview is ExtractText without the text searches match against
// (Header and Body are empty): the preview and the message ids, what a
// delivery stores at once, while the text is indexed later, if ever. It
// decodes only the part the preview comes from, the same one ExtractText
// would take it from.
func ExtractPreview(r io.ReaderAt, m *Message) (*Text, error) {
	t, err := headerText(r, m)
	if err != nil {
		return nil, err
	}
	t.Header = ""
	// The walk of ExtractText, its budget included, without decoding: the
	// preview comes from the first inline text/plain part with any text,
	// else from the first such text/html part.
	type candidate struct {
		p *Part
		n int64
	}
	var plain, html []candidate
	budget := int64(MaxText)
	var find func(p *Part)
	find = func(p *Part) {
		if isMessage(p) && len(p.Parts) == 1 && budget > 0 {
			c := p.Parts[0] // the attached message's header, text for ExtractText
			budget -= min(c.BodyOffset-c.HeaderOffset, budget)
		}
		if len(p.Parts) > 0 {
			for _, c := range p.Parts {
				find(c)
			}
			return
		}
		if p.MediaType != "text" || budget <= 0 {
			return
		}
		n := min(p.EndOffset-p.BodyOffset, budget)
		budget -= n
		if p.Disposition == "attachment" {
			return
		}
		switch p.MediaSubtype {
		case "plain":
			plain = append(plain, candidate{p, n})
		case "html":
			html = append(html, candidate{p, n})
		}
	}
	find(&m.Part)
	for i, list := range [][]candidate{plain, html} {
		for _, c := range list {
			if text := decodeText(r, c.p, c.n); text != "" {
				t.Preview = preview(text[:min(len(text), previewInput)], i == 0)
				return t, nil
			}
		}
	}
	return t, nil
}

// headerText reads the top-level header of m: its decoded lines and the
// message ids.
func headerText(r io.ReaderAt, m *Message) (*Text, error) {
	root := &m.Part
	hdr := make([]byte, min(root.BodyOffset-root.HeaderOffset, MaxText))
	if _, err := r.ReadAt(hdr, root.HeaderOffset); err != nil && err != io.EOF {
		return nil, err
	}
	t := &Text{}
	var fields map[string]string
	t.Header, fields = decodeHeader(hdr)
	if ids := MsgIDs(fields["message-id"]); len(ids) > 0 {
		t.MessageID = ids[0]
	}
	t.References = MsgIDs(fields["references"])
	if len(t.References) == 0 {
		if ids := MsgIDs(fields["in-reply-to"]); len(ids) > 0 {
			t.References = ids[:1]
		}
	}
	return t, nil
}

// textWalk collects the text of the parts of one message.
type textWalk struct {
	r           io.ReaderAt
	budget      int64
	body        strings.Builder
	names       []string
	plain, html string // the starts of the first inline text/plain and text/html parts
}

func (x *textWalk) walk(p *Part) {
	if name := fileName(p); name != "" {
		x.names = append(x.names, name)
	}
	if isMessage(p) && len(p.Parts) == 1 && x.budget > 0 {
		// An attached message's header is part of this message's body,
		// which SEARCH TEXT and BODY look in (RFC 9051 §6.4.4): a forwarded
		// mail is found by its Subject, as Dovecot finds it.
		c := p.Parts[0]
		n := min(c.BodyOffset-c.HeaderOffset, x.budget)
		x.budget -= n
		hdr := make([]byte, n)
		if _, err := x.r.ReadAt(hdr, c.HeaderOffset); err == nil || err == io.EOF {
			h, _ := decodeHeader(hdr)
			x.body.WriteString(h)
			x.body.WriteByte('\n')
		}
	}
	if len(p.Parts) > 0 {
		for _, c := range p.Parts {
			x.walk(c)
		}
		return
	}
	if p.MediaType != "text" || x.budget <= 0 {
		return
	}
	n := min(p.EndOffset-p.BodyOffset, x.budget)
	x.budget -= n
	text := decodeText(x.r, p, n)
	x.body.WriteString(strings.ToLower(text))
	x.body.WriteByte('\n')
	if p.Disposition != "attachment" {
		start := text[:min(len(text), previewInput)]
		switch {
		case p.MediaSubtype == "plain" && x.plain == "":
			x.plain = start
		case p.MediaSubtype == "html" && x.html == "":
			x.html = start
		}
	}
}

// decodeText returns the text of the first n octets of the text part p's
// body: decoded to UTF-8 and, for HTML, without the markup.
func decodeText(r io.ReaderAt, p *Part, n int64) string {
	var dec io.Reader = io.NewSectionReader(r, p.BodyOffset, n)
	switch p.Encoding {
	case "base64":
		dec = base64.NewDecoder(base64.StdEncoding, &base64Cleaner{r: dec})
	case "quoted-printable":
		dec = quotedprintable.NewReader(dec)
	}
	if cs := param(p.Params, "charset"); cs != "" && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		if cr, err := charset.Reader(cs, dec); err == nil {
			dec = cr
		}
	}
	// Malformed content ends a part's text where decoding fails; what
	// decoded so far is kept, as a client decoding the part would show it.
	data, _ := io.ReadAll(io.LimitReader(dec, MaxText))
	text := validUTF8(string(data))
	if p.MediaSubtype == "html" {
		// The text a reader sees, not the markup: what a search means, and
		// a fraction of the size to index.
		text = stripHTML(text)
	}
	return text
}

// fileName returns the decoded file name of a part, "" if it has none.
func fileName(p *Part) string {
	name := param(p.DispositionParams, "filename")
	if name == "" {
		name = param(p.Params, "name")
	}
	return DecodeWords(name)
}

func param(params []Param, key string) string {
	for _, prm := range params {
		if prm.Key == key {
			return prm.Value
		}
	}
	return ""
}

// decodeHeader unfolds a header and decodes RFC 2047 words, giving one
// lower-case "name:value" line per field, and the raw unfolded values of
// the fields threading needs.
func decodeHeader(hdr []byte) (string, map[string]string) {
	var lines []string
	for _, line := range strings.Split(string(hdr), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(lines) > 0 {
				lines[len(lines)-1] += " " + strings.TrimSpace(line)
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		lines = append(lines, strings.ToLower(strings.TrimSpace(name))+":"+value)
	}
	fields := map[string]string{}
	var out strings.Builder
	for _, line := range lines {
		name, value, _ := strings.Cut(line, ":")
		switch name {
		case "message-id", "references", "in-reply-to":
			if _, dup := fields[name]; !dup {
				fields[name] = value
			}
		}
		if d, err := wordDecoder.DecodeHeader(line); err == nil {
			line = d
		}
		out.WriteString(strings.ToLower(validUTF8(line)))
		out.WriteByte('\n')
	}
	return out.String(), fields
}

// preview makes an RFC 8970 preview of plain text: the signature and, for
// text/plain (quoted), quoted lines left out, white space collapsed, at
// most previewChars characters.
func preview(text string, quoted bool) string {
	var b strings.Builder
	n := 0
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "-- " {
			break // the signature
		}
		if quoted && strings.HasPrefix(strings.TrimSpace(line), ">") {
			continue
		}
		for _, w := range strings.Fields(line) {
			for _, r := range w {
				if n == previewChars {
					return strings.TrimSpace(b.String())
				}
				if r == utf8.RuneError || r < ' ' {
					continue
				}
				b.WriteRune(r)
				n++
			}
			if n == previewChars {
				return strings.TrimSpace(b.String())
			}
			b.WriteByte(' ')
			n++
		}
	}
	return strings.TrimSpace(b.String())
}

// stripHTML reduces HTML to its text: no head, style or script content,
// no tags, entities decoded.
func stripHTML(s string) string {
	lower := strings.ToLower(s)
	var b strings.Builder
	for i := 0; i < len(s); {
		lt := strings.IndexByte(s[i:], '<')
		if lt < 0 {
			b.WriteString(s[i:])
			break
		}
		b.WriteString(s[i : i+lt])
		i += lt
		skipTo := ""
		for _, el := range []string{"head", "style", "script"} {
			if strings.HasPrefix(lower[i+1:], el) {
				skipTo = "</" + el
			}
		}
		if skipTo != "" {
			if end := strings.Index(lower[i:], skipTo); end >= 0 {
				i += end
			}
		}
		gt := strings.IndexByte(s[i:], '>')
		if gt < 0 {
			break
		}
		i += gt + 1
		b.WriteByte(' ')
	}
	return html.UnescapeString(b.String())
}

// base64Cleaner drops what is not base64 (line breaks, spaces, garbage)
// so that a lenient decode gets as far as the data allows.
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

// DecodeHeader returns Text.Header for a header alone.
func DecodeHeader(hdr []byte) string {
	h, _ := decodeHeader(hdr)
	return h
}
