// This file holds COMPRESS (RFC 4978): after "COMPRESS DEFLATE" is
// answered, both directions are raw deflate streams (RFC 1951), inside TLS
// when there is TLS. Responses are flushed with a sync flush whenever the
// writer flushes (writer.Flush), so that IDLE pushes arrive at once.

package imap

import (
	"bufio"
	"compress/flate"
	"strings"

	"loft/internal/inflate"
)

// compressLevel trades CPU for bytes on the wire: IMAP responses are
// text that compresses several times at any level, and this is the level
// zlib and Dovecot default to.
const compressLevel = 6

func (s *session) cmdCompress(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	mech, err := p.atom()
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	if !strings.EqualFold(mech, "DEFLATE") {
		return bad("", "Unknown compression mechanism %s", clip([]byte(mech)))
	}
	if s.compressed {
		return no("COMPRESSIONACTIVE", "DEFLATE is already active") // RFC 4978 §3
	}
	s.w.WriteString(c.tag + " OK DEFLATE active\r\n")
	if err := s.flush(); err != nil {
		return err
	}
	// The client compresses from the octet after that CRLF on; what of it
	// is already buffered is read through the inflater too. The inflater
	// reads its input byte by byte from a bufio.Reader, never past its
	// stream, and hands out each block's data at the block's end, which
	// clients that flush with Z_PARTIAL_FLUSH (isync) depend on.
	s.p.r = bufio.NewReaderSize(inflate.NewReader(s.p.r), 8192)
	fw, err := flate.NewWriter(s.conn, compressLevel)
	if err != nil {
		return err
	}
	z := &deflater{fw: fw}
	s.w.park()
	s.w = newWriter(z, s.w.utf8, z)
	s.compressed = true
	return errAnswered
}
