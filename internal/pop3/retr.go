// RETR and TOP (RFC 1939 §5, §7): a message streamed from its body file
// through the session's buffered writer, dot-stuffed on the way, so that a
// session never holds a whole message in memory; and marking retrieved
// messages \Seen without making the client wait for it.

package pop3

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"

	"loft/internal/store"
)

// copyBufferSize is the chunk read from a body file: most mail (the
// benchmark set's median is 12 KB) takes one read. Buffers are pooled, so
// only sessions in the middle of a RETR hold one.
const copyBufferSize = 64 << 10

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

var topReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, copyBufferSize) }}

// cmdRetr sends a whole message.
func (s *session) cmdRetr(args string) error {
	if strings.Contains(args, " ") {
		return errTooManyArgs
	}
	m, _, err := s.message(args)
	if err != nil {
		return err
	}
	f, err := s.srv.st.OpenBody(m.blob)
	if err != nil {
		return err // store.ErrNoMessage: expunged and its file removed
	}
	defer f.Close()
	s.ok("%d octets", m.size)
	bufp := copyBuffers.Get().(*[]byte)
	err = writeStuffed(s.w, f, m.size, *bufp)
	copyBuffers.Put(bufp)
	if err != nil {
		// The response is cut off: the client cannot tell where it ends.
		return &fatalError{err}
	}
	if s.srv.opts.MarkSeen && !m.seen {
		m.seen = true
		s.seen.add(m.uid)
	}
	return nil
}

// cmdTop sends a message's header, the blank line after it, and the first
// n lines of its body. It does not mark the message \Seen.
func (s *session) cmdTop(args string) error {
	num, lines, ok := strings.Cut(args, " ")
	if !ok {
		return &reply{text: "TOP needs a message number and a number of lines"}
	}
	if strings.Contains(lines, " ") {
		return errTooManyArgs
	}
	n, err := parseNumber(lines)
	if err != nil {
		return &reply{text: "Invalid number of lines"}
	}
	m, _, err := s.message(num)
	if err != nil {
		return err
	}
	f, err := s.srv.st.OpenBody(m.blob)
	if err != nil {
		return err
	}
	defer f.Close()
	s.ok("Top of message follows")
	r := topReaders.Get().(*bufio.Reader)
	r.Reset(f)
	err = writeTop(s.w, r, n)
	r.Reset(nil)
	topReaders.Put(r)
	if err != nil {
		return &fatalError{err}
	}
	return nil
}

// dotLine is where dot-stuffing applies: a line that starts with ".".
var dotLine = []byte("\n.")

// writeStuffed copies a message of size octets from r to w as a
// multi-line response body (RFC 1939 §3): a "." is added before each line
// that starts with one, a CRLF is added if the message does not end with
// one, and the terminating ".\r\n" follows. Bodies are stored with CRLF
// line endings, so a line starts after each LF. The work per chunk is a
// search for "\n.", not a pass per line. Bodies are immutable and size is
// their length: stopping there spares the read that would only say EOF.
func writeStuffed(w *bufio.Writer, r io.Reader, size int64, buf []byte) error {
	last := byte('\n') // the start of the message is the start of a line
	for size > 0 {
		n, rerr := r.Read(buf[:min(int64(len(buf)), size)])
		if n > 0 {
			size -= int64(n)
			p := buf[:n]
			if last == '\n' && p[0] == '.' {
				w.WriteByte('.')
			}
			last = p[n-1]
			for {
				i := bytes.Index(p, dotLine)
				if i < 0 {
					break
				}
				w.Write(p[:i+1])
				w.WriteByte('.')
				p = p[i+1:] // starts with the line's own "."
			}
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
		if n == 0 {
			return io.ErrNoProgress
		}
	}
	return endMultiline(w, last)
}

// writeTop copies the header of a message, the blank line that ends it,
// and the first n lines of the body, dot-stuffed, then terminates the
// response. A message without a blank line is all header and sent whole.
func writeTop(w *bufio.Writer, r *bufio.Reader, n int) error {
	last := byte('\n')
	header := true
	for {
		frag, rerr := r.ReadSlice('\n') // a fragment if the line is longer than the buffer
		if len(frag) > 0 {
			atStart := last == '\n'
			if atStart && !header {
				if n == 0 {
					break
				}
				n--
			}
			if atStart && header && (frag[0] == '\n' || frag[0] == '\r' && len(frag) > 1 && frag[1] == '\n') {
				header = false // the blank line: sent, then body lines count
			}
			if atStart && frag[0] == '.' {
				w.WriteByte('.')
			}
			if _, err := w.Write(frag); err != nil {
				return err
			}
			last = frag[len(frag)-1]
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil && rerr != bufio.ErrBufferFull {
			return rerr
		}
	}
	return endMultiline(w, last)
}

// endMultiline ends a multi-line response whose last octet was last.
func endMultiline(w *bufio.Writer, last byte) error {
	if last != '\n' {
		w.WriteString("\r\n")
	}
	_, err := w.WriteString(".\r\n")
	return err
}

// seenMarker sets \Seen on retrieved messages in the background, so that a
// RETR is answered without waiting for a durable commit. UIDs that arrive
// while a commit runs go together into the next one, so a client fetching
// a thousand messages causes a few commits, not a thousand.
type seenMarker struct {
	st        *store.Store
	log       *slog.Logger
	accountID int64
	mailboxID int64

	mu      sync.Mutex
	pending []uint32
	running bool
	wg      sync.WaitGroup
}

// add queues a UID. Only the session's goroutine calls add and wait.
func (m *seenMarker) add(uid uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending = append(m.pending, uid)
	if !m.running {
		m.running = true
		m.wg.Add(1)
		go m.run()
	}
}

func (m *seenMarker) run() {
	defer m.wg.Done()
	for {
		m.mu.Lock()
		uids := m.pending
		m.pending = nil
		if len(uids) == 0 {
			m.running = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		_, err := m.st.StoreFlags(context.Background(), m.accountID, m.mailboxID, uids, store.FlagsAdd, []string{`\Seen`})
		if err != nil {
			m.log.Warn("mark retrieved messages seen", "messages", len(uids), "err", err)
		}
	}
}

// wait returns when every queued UID is marked.
func (m *seenMarker) wait() { m.wg.Wait() }
