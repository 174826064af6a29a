// This file writes responses: strings as atoms, quoted strings or literals
// as their content requires (RFC 9051 §4.3), mailbox names in modified
// UTF-7 for IMAP4rev1 clients and in UTF-8 for IMAP4rev2 ones (RFC 9051
// §5.1, RFC 3501 §5.1.3), and message data streamed as literals.

package imap

import (
	"bufio"
	"compress/flate"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// writeBufferSize is the response buffer of a connection that is busy:
// large enough that a FETCH of many small items is written in few system
// calls.
const writeBufferSize = 16384

// writeBuffers are the response buffers of the connections that are not
// waiting for their client: an idle connection gives its buffer back
// (park), so a thousand sessions in IDLE do not hold 16 MB of them.
var writeBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}

// writer buffers responses to one connection. Its buffer is taken from
// writeBuffers when a response is written and given back by park.
type writer struct {
	bw   *bufio.Writer // nil while parked
	dst  io.Writer     // the connection, or the deflate stream z
	utf8 bool          // IMAP4rev2 or UTF8=ACCEPT enabled: UTF-8 in quoted strings and names
	// z, with COMPRESS active (RFC 4978), is the deflate stream between
	// the buffer and the connection.
	z *deflater
}

func newWriter(dst io.Writer, utf8 bool, z *deflater) *writer {
	return &writer{dst: dst, utf8: utf8, z: z}
}

// buf returns the buffer, taking one from the pool if parked.
func (w *writer) buf() *bufio.Writer {
	if w.bw == nil {
		w.bw = writeBuffers.Get().(*bufio.Writer)
		w.bw.Reset(w.dst)
	}
	return w.bw
}

// park gives the buffer back to the pool if nothing is buffered: the
// session is about to wait for its client.
func (w *writer) park() {
	if w.bw != nil && w.bw.Buffered() == 0 {
		w.bw.Reset(nil)
		writeBuffers.Put(w.bw)
		w.bw = nil
	}
}

func (w *writer) Write(p []byte) (int, error)         { return w.buf().Write(p) }
func (w *writer) WriteString(s string) (int, error)   { return w.buf().WriteString(s) }
func (w *writer) WriteByte(c byte) error              { return w.buf().WriteByte(c) }
func (w *writer) ReadFrom(r io.Reader) (int64, error) { return w.buf().ReadFrom(r) }

// deflater is the deflate stream of a COMPRESS connection; it knows
// whether anything was written since its last flush.
type deflater struct {
	fw    *flate.Writer
	dirty bool
}

func (d *deflater) Write(p []byte) (int, error) {
	d.dirty = d.dirty || len(p) > 0
	return d.fw.Write(p)
}

// Flush sends what is buffered. With COMPRESS, the deflate stream is
// flushed too (Z_SYNC_FLUSH): every burst of responses reaches the client
// whole, which an idling client waiting for a push depends on. A flush
// with nothing written sends nothing: an empty sync block inflates to no
// data, which some clients (isync) take for an empty response.
func (w *writer) Flush() error {
	if w.bw != nil {
		if err := w.bw.Flush(); err != nil {
			return err
		}
	}
	if w.z != nil && w.z.dirty {
		w.z.dirty = false
		return w.z.fw.Flush()
	}
	return nil
}

// canQuote reports whether s can be sent as a quoted string.
func (w *writer) canQuote(s string) bool {
	if len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 || c == '\r' || c == '\n' {
			return false
		}
		if c >= 0x80 && !w.utf8 {
			return false
		}
	}
	return !w.utf8 || utf8.ValidString(s)
}

// quoted writes s as a quoted string: runs without a quote or backslash
// at once, as ENVELOPE and BODYSTRUCTURE are mostly such strings.
func (w *writer) quoted(s string) {
	b := w.buf()
	b.WriteByte('"')
	for {
		i := strings.IndexAny(s, `"\\`)
		if i < 0 {
			break
		}
		b.WriteString(s[:i])
		b.WriteByte('\\')
		b.WriteByte(s[i])
		s = s[i+1:]
	}
	b.WriteString(s)
	b.WriteByte('"')
}

// str writes s as a quoted string, or as a literal when it cannot be quoted.
func (w *writer) str(s string) {
	if w.canQuote(s) {
		w.quoted(s)
		return
	}
	w.WriteByte('{')
	w.WriteString(strconv.Itoa(len(s)))
	w.WriteString("}\r\n")
	w.WriteString(s)
}

// nstr writes s as str, or NIL when it is empty.
func (w *writer) nstr(s string) {
	if s == "" {
		w.WriteString("NIL")
		return
	}
	w.str(s)
}

// astr writes s as an atom when it is one, else as str.
func (w *writer) astr(s string) {
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return r > 0x7e || !isAstringChar(byte(r)) }) < 0 &&
		!strings.EqualFold(s, "NIL") {
		w.WriteString(s)
		return
	}
	w.str(s)
}

// num writes a number.
func (w *writer) num(n int64) { w.WriteString(strconv.FormatInt(n, 10)) }

// mailbox writes a mailbox name in the encoding the client expects.
func (w *writer) mailbox(name string) {
	if !w.utf8 {
		name = encodeMUTF7(name)
	}
	w.str(name)
}

// literalFrom writes n bytes from r as a literal ({n} or, with binary,
// ~{n}), streaming them.
func (w *writer) literalFrom(r io.Reader, n int64, binary bool) error {
	if binary {
		w.WriteByte('~')
	}
	w.WriteByte('{')
	w.WriteString(strconv.FormatInt(n, 10))
	w.WriteString("}\r\n")
	m, err := io.CopyN(w, r, n)
	if err != nil && m < n {
		// The literal's length is promised: pad so that the stream stays
		// in step, and let the caller report the error.
		pad := make([]byte, 4096)
		for i := range pad {
			pad[i] = ' '
		}
		for rest := n - m; rest > 0; rest -= min(rest, int64(len(pad))) {
			w.Write(pad[:min(rest, int64(len(pad)))])
		}
	}
	return err
}

// Modified UTF-7 (RFC 3501 §5.1.3): printable ASCII stands for itself but
// "&" is "&-"; other characters are UTF-16, base64 with "," for "/",
// between "&" and "-".

const mutf7Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"

func encodeMUTF7(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == '&' {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		buf := make([]byte, 0, 2*len(u))
		for _, c := range u {
			buf = append(buf, byte(c>>8), byte(c))
		}
		b.WriteByte('&')
		var acc uint32
		bits := 0
		for _, c := range buf {
			acc = acc<<8 | uint32(c)
			bits += 8
			for bits >= 6 {
				bits -= 6
				b.WriteByte(mutf7Alphabet[(acc>>bits)&63])
			}
		}
		if bits > 0 {
			b.WriteByte(mutf7Alphabet[(acc<<(6-bits))&63])
		}
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		switch {
		case r == '&':
			flush()
			b.WriteString("&-")
		case r >= 0x20 && r <= 0x7e:
			flush()
			b.WriteRune(r)
		default:
			run = append(run, r)
		}
	}
	flush()
	return b.String()
}

var errBadMUTF7 = errors.New("invalid modified UTF-7 in mailbox name")

// decodeMUTF7 decodes a modified UTF-7 name. Names with 8-bit bytes are
// taken as UTF-8, as sent by clients that ignore the rule.
func decodeMUTF7(s string) (string, error) {
	if !strings.Contains(s, "&") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '&' {
			b.WriteByte(s[i])
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", errBadMUTF7
		}
		enc := s[i+1 : i+1+end]
		i += end + 1
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		var acc uint32
		bits := 0
		var buf []byte
		for j := 0; j < len(enc); j++ {
			v := strings.IndexByte(mutf7Alphabet, enc[j])
			if v < 0 {
				return "", errBadMUTF7
			}
			acc = acc<<6 | uint32(v)
			bits += 6
			if bits >= 8 {
				bits -= 8
				buf = append(buf, byte(acc>>bits))
			}
		}
		if len(buf)%2 != 0 || bits >= 6 || acc&(1<<bits-1) != 0 {
			return "", errBadMUTF7
		}
		u := make([]uint16, len(buf)/2)
		for j := range u {
			u[j] = uint16(buf[2*j])<<8 | uint16(buf[2*j+1])
		}
		rs := utf16.Decode(u)
		for _, r := range rs {
			if r >= 0x20 && r <= 0x7e {
				return "", errBadMUTF7 // must have been written directly
			}
			if r == utf8.RuneError {
				return "", errBadMUTF7
			}
		}
		b.WriteString(string(rs))
	}
	return b.String(), nil
}
