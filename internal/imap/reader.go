// This file holds the read side of a connection: its buffer is taken from
// a pool while the session reads a command and given back while it waits
// for the next one (or for DONE in IDLE), so that an idle connection holds
// one byte of read state instead of a buffer. The writer does the same for
// responses (writer.go).

package imap

import (
	"bufio"
	"io"
	"sync"
)

// readBufferSize is the read buffer of a connection that is busy.
const readBufferSize = 8192

// readBuffers are the read buffers of the connections that are not
// waiting for their client.
var readBuffers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

// connReader is what a connection's read buffer reads from: the
// connection, after the byte waitInput read while the session held no
// buffer.
type connReader struct {
	conn  io.Reader
	first [1]byte
	held  bool // first holds a byte not yet read
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.held && len(p) > 0 {
		// Only that byte: reading more from the connection might block
		// on a client that sent just one.
		p[0] = r.first[0]
		r.held = false
		return 1, nil
	}
	return r.conn.Read(p)
}

// useConn makes conn the source of the session's reads, with a fresh
// buffer (at the start and after STARTTLS).
func (s *session) useConn(conn io.Reader) {
	s.in = connReader{conn: conn}
	s.p.r = readBuffers.Get().(*bufio.Reader)
	s.p.r.Reset(&s.in)
}

// parkReader gives the read buffer back if it holds no unread input: the
// session is about to wait for its client. With COMPRESS, the inflater
// holds on to the buffer, which stays.
func (s *session) parkReader() {
	r := s.p.r
	if s.compressed || r == nil || r.Buffered() > 0 {
		return
	}
	r.Reset(nil)
	readBuffers.Put(r)
	s.p.r = nil
}

// readLine reads the next line into the parser, first waiting, without a
// buffer, for the client to send something if the reader is parked.
func (s *session) readLine() error {
	if s.p.r == nil {
		var n int
		var err error
		for n == 0 && err == nil {
			n, err = s.in.conn.Read(s.in.first[:])
		}
		s.in.held = n == 1
		s.p.r = readBuffers.Get().(*bufio.Reader)
		s.p.r.Reset(&s.in)
		if n == 0 {
			return err
		}
		// With a byte read, a read error is met again on the next read.
	}
	return s.p.readLine()
}
