// This file holds the line scanner under the parser: it reads a message
// sequentially, one line at a time, keeping byte offsets and a line count, and
// never holds more than one buffer of the message however long its lines are.

package message

import (
	"bufio"
	"io"
)

const (
	// readBufSize is the bufio buffer. Lines longer than this are still
	// counted exactly, but only header lines keep their bytes (up to
	// maxHeaderKeep); a body line that long cannot be a boundary delimiter.
	readBufSize = 64 << 10

	// maxHeaderKeep bounds the header bytes kept per part (only the fields the
	// parser uses are kept), so that a hostile multi-megabyte header costs
	// bounded memory. Real headers, even with thousands of recipients, fit.
	maxHeaderKeep = 1 << 20
)

// scanner reads lines from a bufio.Reader and tracks where they are.
type scanner struct {
	br  *bufio.Reader
	off int64 // offset of the next unread byte
	err error // first read error other than io.EOF; reading stops there

	// The current line, set by next.
	start int64  // offset of its first byte
	line  []byte // its bytes without the terminator; nil for a long line unless keep
	size  int64  // its length, terminator included
	term  int    // length of its terminator: 2 (CRLF), 1 (bare LF) or 0 (end of input)

	lines int64 // lines read so far, the current one included

	// The line before the current one, for the delimiter rule of RFC 2046
	// §5.1.1: the CRLF preceding a boundary delimiter line belongs to it.
	prevTerm int
	prevSize int64

	keep    bool   // header mode: keep the bytes of long lines in longBuf
	longBuf []byte // reused for long lines in header mode
}

// next reads the next line. It returns false at the end of the input or on a
// read error (recorded in s.err).
func (s *scanner) next() bool {
	s.prevTerm, s.prevSize = s.term, s.size
	s.start = s.off
	chunk, err := s.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		s.nextLong(chunk)
		return true
	}
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	if len(chunk) == 0 {
		s.line, s.size, s.term = nil, 0, 0
		return false
	}
	n := len(chunk)
	s.off += int64(n)
	s.size = int64(n)
	s.lines++
	s.term = 0
	if chunk[n-1] == '\n' {
		s.term = 1
		if n > 1 && chunk[n-2] == '\r' {
			s.term = 2
		}
	}
	s.line = chunk[:n-s.term]
	return true
}

// nextLong finishes reading a line longer than the buffer, of which first is
// the first chunk. It counts the bytes, and keeps them only in header mode.
func (s *scanner) nextLong(first []byte) {
	n := int64(len(first))
	last := first[len(first)-1]
	if s.keep {
		s.longBuf = append(s.longBuf[:0], first...)
	}
	var chunk []byte
	for {
		var err error
		chunk, err = s.br.ReadSlice('\n')
		n += int64(len(chunk))
		if s.keep && len(s.longBuf) < maxHeaderKeep {
			room := maxHeaderKeep - len(s.longBuf)
			s.longBuf = append(s.longBuf, chunk[:min(room, len(chunk))]...)
		}
		if err == bufio.ErrBufferFull {
			last = chunk[len(chunk)-1]
			continue
		}
		if err != nil && err != io.EOF && s.err == nil {
			s.err = err
		}
		break
	}
	s.off += n
	s.size = n
	s.lines++
	s.term = 0
	if k := len(chunk); k > 0 && chunk[k-1] == '\n' {
		s.term = 1
		if (k > 1 && chunk[k-2] == '\r') || (k == 1 && last == '\r') {
			s.term = 2
		}
	}
	s.line = nil
	if s.keep {
		b := s.longBuf
		for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
			b = b[:len(b)-1]
		}
		s.line = b
	}
}
