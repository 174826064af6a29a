// One POP3 connection: the state machine of RFC 1939 §3 (AUTHORIZATION,
// TRANSACTION, and UPDATE, which QUIT enters and the connection's end
// leaves), the command table per state, reading command lines within their
// limits, and writing responses through one buffered writer that is
// flushed when no pipelined command is waiting (RFC 2449 §6.6).

package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"loft/internal/metrics"
	"loft/internal/store"
)

// Limits.
const (
	// maxCommandLine bounds a command line, CRLF included. RFC 2449 §4 sets
	// 255 octets; twice that tolerates clients that overstep a little (long
	// login names) while a line still costs next to nothing to hold.
	maxCommandLine = 512
	// maxSASLLine bounds a client line inside an AUTH exchange. RFC 5034 §4
	// exempts SASL responses from the command-line limit; PLAIN with a
	// 255-octet name and a 1,000-octet password is about 1,700 octets of
	// base64.
	maxSASLLine = 8 << 10
	// maxDiscard is how much of an overlong line is read and dropped
	// before the connection is given up as not speaking POP3 at all.
	maxDiscard = 64 << 10
	// readBufferSize is the command reader's buffer: commands are short,
	// and idle sessions are many.
	readBufferSize = 1 << 10
	// writeBufferSize is the response writer's buffer: large enough that
	// streaming a message makes few system calls.
	writeBufferSize = 32 << 10
)

// state is a session's RFC 1939 state.
type state int

const (
	stateAuthorization state = iota
	stateTransaction
)

// handler runs one command; args is the rest of the line after the
// keyword and one space, unparsed. It writes positive responses itself and
// returns negative ones (a *reply) or a *fatalError.
type handler func(s *session, args string) error

// commands is the command table, per state (RFC 1939 §4–§7, RFC 2449 §5
// CAPA, RFC 2595 §4 STLS, RFC 5034 §4 AUTH). APOP is not offered: it needs
// passwords stored reversibly.
var commands = [...]map[string]handler{
	stateAuthorization: {
		"CAPA": (*session).cmdCapa,
		"STLS": (*session).cmdStls,
		"USER": (*session).cmdUser,
		"PASS": (*session).cmdPass,
		"AUTH": (*session).cmdAuth,
		"QUIT": (*session).cmdQuit,
	},
	stateTransaction: {
		"CAPA": (*session).cmdCapa,
		"STAT": (*session).cmdStat,
		"LIST": (*session).cmdList,
		"UIDL": (*session).cmdUidl,
		"RETR": (*session).cmdRetr,
		"TOP":  (*session).cmdTop,
		"DELE": (*session).cmdDele,
		"RSET": (*session).cmdRset,
		"NOOP": (*session).cmdNoop,
		"QUIT": (*session).cmdQuit,
	},
}

// session is one connection's state. Only its own goroutine touches it,
// except raw (interrupt, Close) from the server's.
type session struct {
	srv    *Server
	raw    net.Conn // the TCP connection, for deadlines and closing
	conn   net.Conn // raw, or the TLS connection over it
	r      *bufio.Reader
	w      *bufio.Writer
	log    *slog.Logger
	remote netip.Addr
	tls    bool
	state  state
	done   bool // QUIT answered, or closing after too many failures

	user         string // from USER, awaiting PASS
	authFailures int    // on this connection
	release      func() // frees the account's place in the per-address session count

	// TRANSACTION state: the snapshot taken at login.
	accountID int64
	address   string
	mailbox   *store.Mailbox
	msgs      []message // in UID order; index+1 is the message number
	sub       *store.Subscription
	locked    bool // holds the exclusive-mode lock
	seen      *seenMarker

	rec sessionRecord // for the log line at the end (accounting.go)
}

// message is one message of the snapshot.
type message struct {
	uid     uint32
	size    int64  // octets RETR sends before dot-stuffing (CRLF line endings)
	blob    string // body id
	seen    bool   // has \Seen (or RETR already marked it)
	deleted bool   // DELE'd in this session; RSET clears it
	gone    bool   // expunged by another session (IMAP, POP3) since the snapshot
}

func newSession(srv *Server, conn net.Conn, id uint64) *session {
	raw := conn
	tlsConn, isTLS := conn.(*tls.Conn)
	if isTLS {
		raw = tlsConn.NetConn()
	}
	var remote netip.Addr
	if ta, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
		remote = ta.AddrPort().Addr().Unmap()
	}
	s := &session{
		srv:    srv,
		raw:    raw,
		conn:   conn,
		tls:    isTLS,
		remote: remote,
		log:    srv.log.With("session", id, "remote", raw.RemoteAddr().String()),
		rec:    sessionRecord{start: time.Now()},
	}
	s.r = bufio.NewReaderSize(conn, readBufferSize)
	s.w = bufio.NewWriterSize(deadlineWriter{conn}, writeBufferSize)
	return s
}

// serve runs the session to its end.
func (s *session) serve() {
	defer s.end()
	if tc, ok := s.conn.(*tls.Conn); ok {
		if err := s.handshake(tc); err != nil {
			s.log.Debug("TLS handshake failed", "err", err)
			s.ending(metrics.EndError)
			return
		}
	}
	s.log.Debug("connected", "tls", s.tls)
	if h := s.srv.opts.Hostname; h != "" {
		s.w.WriteString("+OK " + h + " Loft POP3 server ready\r\n")
	} else {
		s.w.WriteString("+OK Loft POP3 server ready\r\n")
	}
	if s.w.Flush() != nil {
		return
	}
	for !s.done {
		line, err := s.readLine(maxCommandLine)
		var r *reply
		switch {
		case errors.As(err, &r):
			s.writeErr(r)
		case errors.Is(err, errClosing) || s.srv.closing.Load() && errors.Is(err, os.ErrDeadlineExceeded):
			// Shutdown: tell the client, whose next command would get
			// this answer anyway.
			s.writeErr(errShuttingDown)
			s.w.Flush()
			s.ending(metrics.EndShutdown)
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.log.Info("idle timeout; closing without deleting anything", "state", s.state)
			s.ending(metrics.EndTimeout)
			return
		case err != nil:
			if !errors.Is(err, io.EOF) {
				s.log.Debug("read", "err", err)
				s.ending(metrics.EndError)
			}
			return
		default:
			if err := s.run(line); err != nil {
				s.log.Debug("session ends", "err", err)
				s.ending(metrics.EndError)
				return
			}
		}
		// Flush when no pipelined command waits, so that a batch of
		// commands gets its responses in as few packets as possible.
		if s.done || s.r.Buffered() == 0 {
			if err := s.w.Flush(); err != nil {
				return
			}
		}
	}
}

// run dispatches one command line. A non-nil error ends the session.
func (s *session) run(line string) error {
	keyword, args, _ := strings.Cut(line, " ")
	keyword = strings.ToUpper(keyword)
	defer s.command(keyword, time.Now())
	h := commands[s.state][keyword]
	if h == nil {
		for _, set := range commands {
			if set[keyword] != nil {
				s.writeErr(errNotInState(keyword, s.state))
				return nil
			}
		}
		s.writeErr(errUnknownCommand)
		return nil
	}
	if s.state == stateTransaction {
		s.sync()
	}
	err := h(s, args)
	if err == nil {
		return nil
	}
	var fatal *fatalError
	if errors.As(err, &fatal) {
		return fatal
	}
	r := errorReply(err)
	if r.code == codeSysTemp || r.code == codeSysPerm {
		s.log.Error("command failed", "cmd", keyword, "err", err)
	}
	s.writeErr(r)
	return nil
}

// errClosing is readLine's error once the server shuts down.
var errClosing = errors.New("pop3: server shutting down")

// readLine reads one line of at most limit octets (CRLF included) and
// returns it without its line ending. An overlong line is read to its end
// and dropped, and errLineTooLong returned; one longer than maxDiscard
// ends the session. The idle timeout applies to each line.
//
// Two deadlines apply: the idle timeout until the line's first byte, then
// the command timeout for the rest of it, so that a client sending a byte
// a minute is dropped once the command timeout is over rather than kept
// as long as it likes.
func (s *session) readLine(limit int) (string, error) {
	s.raw.SetReadDeadline(time.Now().Add(s.srv.opts.IdleTimeout))
	// Checked after setting the deadline: interrupt sets closing first,
	// then a past deadline, so one of the two stops this read.
	if s.srv.closing.Load() {
		return "", errClosing
	}
	if _, err := s.r.Peek(1); err != nil {
		return "", err
	}
	if s.srv.closing.Load() {
		return "", errClosing
	}
	s.raw.SetReadDeadline(time.Now().Add(min(s.srv.opts.CommandTimeout, s.srv.opts.IdleTimeout)))
	var long []byte // a line longer than the reader's buffer
	for {
		frag, err := s.r.ReadSlice('\n')
		if len(long)+len(frag) > limit {
			return "", s.discardLine(err, len(long)+len(frag))
		}
		if err == nil && s.srv.closing.Load() {
			return "", errClosing // a command that came in as the server stops is not run
		}
		switch {
		case err == nil && long == nil:
			return string(trimEOL(frag)), nil
		case err == nil:
			return string(trimEOL(append(long, frag...))), nil
		case errors.Is(err, bufio.ErrBufferFull):
			long = append(long, frag...)
		default:
			return "", err
		}
	}
}

// discardLine drops the rest of an overlong line, of which read octets
// were read (err is the last read's error).
func (s *session) discardLine(err error, read int) error {
	for errors.Is(err, bufio.ErrBufferFull) {
		if read > maxDiscard {
			return &fatalError{fmt.Errorf("line longer than %d octets", maxDiscard)}
		}
		var frag []byte
		frag, err = s.r.ReadSlice('\n')
		read += len(frag)
	}
	if err != nil {
		return err
	}
	return errLineTooLong
}

func trimEOL(b []byte) []byte {
	b = b[:len(b)-1] // the LF
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}

// ok writes a positive single-line response.
func (s *session) ok(format string, args ...any) {
	if format == "" {
		s.w.WriteString("+OK\r\n")
		return
	}
	s.w.WriteString("+OK ")
	fmt.Fprintf(s.w, format, args...)
	s.w.WriteString("\r\n")
}

// writeErr writes a negative response.
func (s *session) writeErr(r *reply) {
	s.w.WriteString("-ERR ")
	s.w.WriteString(r.Error())
	s.w.WriteString("\r\n")
}

// handshake runs a TLS handshake, bounded in time.
func (s *session) handshake(tc *tls.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	s.tls = true
	return nil
}

// interrupt makes the session stop before its next command: called by
// Shutdown after setting the server's closing flag. A session waiting for
// a command stops at once; a busy one finishes its command first.
func (s *session) interrupt() {
	s.raw.SetReadDeadline(time.Now())
}

// end releases what the session holds. Nothing marked for deletion is
// deleted here: only QUIT does that.
func (s *session) end() {
	if s.seen != nil {
		s.seen.wait()
	}
	if s.sub != nil {
		s.sub.Close()
	}
	if s.locked {
		s.srv.unlock(s.accountID)
	}
	if s.release != nil {
		s.release()
	}
	s.conn.Close()
	s.srv.endSession(s)
	s.logEnd()
}

// sync applies the changes other sessions made since the last command:
// messages expunged from the INBOX (by IMAP, or by another POP3 session's
// QUIT) become gone, so that RETR, TOP and DELE answer -ERR for them.
func (s *session) sync() {
	for _, c := range s.sub.Changes() {
		switch {
		case c.Kind == store.ChangeExpunge && c.MailboxID == s.mailbox.ID:
			for _, uid := range c.UIDs {
				if i, ok := s.index(uid); ok {
					s.msgs[i].gone = true
				}
			}
		case c.Kind == store.ChangeAccountDelete:
			for i := range s.msgs {
				s.msgs[i].gone = true
			}
		}
	}
}

// index finds a UID in the snapshot.
func (s *session) index(uid uint32) (int, bool) {
	lo, hi := 0, len(s.msgs)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s.msgs[mid].uid < uid {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < len(s.msgs) && s.msgs[lo].uid == uid
}

// deadlineWriter gives each write to the client writeTimeout to complete.
type deadlineWriter struct{ conn net.Conn }

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return d.conn.Write(p)
}
