// The connection under go-smtp, wrapped for two defences go-smtp lacks:
//
//   - A per-command deadline. go-smtp sets one read deadline per command
//     line (the idle timeout); a client that sends a byte a minute keeps
//     its session for the whole of it. Here, once a command's first byte
//     has arrived, the rest must come within the command timeout. Message
//     data is exempt (it keeps the deadline of its DATA command, as
//     before): a large message on a slow link takes longer than any
//     command.
//
//   - Refusing STARTTLS with plaintext pipelined after it (RFC 3207 §4.2,
//     the injection of CVE-2011-0411). go-smtp drops such bytes with its
//     reader when it starts TLS, but answers 220 as if all were well. Here
//     the 220 becomes "554 5.5.1" and the connection is closed, so a
//     man in the middle's injected commands are neither run nor silently
//     eaten.
//
// It also keeps the connection's record (accounting.go) and writes its
// log line when it closes.

package smtp

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"loft/internal/metrics"
)

// DefaultCommandTimeout bounds one command line once it has begun.
const DefaultCommandTimeout = 2 * time.Minute

// commandTimeoutReply ends a session whose command did not arrive whole in
// time (RFC 5321 §4.5.3.2; 4.4.2 is RFC 3463's "bad connection").
const commandTimeoutReply = "421 4.4.2 Command timeout; closing\r\n"

// starttlsRefusal replaces the 220 of a STARTTLS that came with pipelined
// plaintext.
const starttlsRefusal = "554 5.5.1 Commands pipelined after STARTTLS before the TLS handshake; closing\r\n"

// guardListener wraps accepted connections in guardConn.
type guardListener struct {
	net.Listener
	srv *Server
}

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	g := &guardConn{Conn: c, commandTimeout: l.srv.opts.CommandTimeout, srv: l.srv}
	g.rec.id, g.rec.start = l.srv.seq.Add(1), time.Now()
	g.log = l.srv.log.With("session", g.rec.id, "remote", c.RemoteAddr().String())
	return g, nil
}

// guardConn is one connection's guard. go-smtp's goroutine reads and
// writes it; the session's Data may run on another (BDAT), hence atomics.
type guardConn struct {
	net.Conn
	commandTimeout time.Duration
	srv            *Server
	log            *slog.Logger // with the connection's session id and remote address
	rec            connRecord
	closeOnce      sync.Once

	mu           sync.Mutex
	idleDeadline time.Time // the deadline go-smtp set for this command
	armed        bool      // no byte read since go-smtp set it
	wrote        bool      // the greeting has been written
	tail         []byte    // the last bytes read in plaintext
	inData       atomic.Bool
	closeAfter   atomic.Bool // close once the next reply is written
}

// tailLen is enough to recognise "STARTTLS \r\n" at the end of the input.
const tailLen = 16

// SetReadDeadline is go-smtp's per-line deadline: the idle timeout.
func (c *guardConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.idleDeadline, c.armed = t, true
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *guardConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.rec.noteReadError(err)
	}
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() && !c.inData.Load() {
		c.mu.Lock()
		midLine := !c.armed
		c.mu.Unlock()
		if midLine {
			// The command timeout, with part of a line read. go-smtp's
			// reader would hand the part over as a whole line (bufio's
			// ReadLine defers the error) and wait again: answer and close
			// here instead.
			c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			c.Conn.Write([]byte(commandTimeoutReply))
			c.Conn.Close()
			return n, err
		}
	}
	if n > 0 {
		c.mu.Lock()
		if c.armed && !c.inData.Load() {
			c.armed = false
			if d := time.Now().Add(c.commandTimeout); d.Before(c.idleDeadline) || c.idleDeadline.IsZero() {
				c.Conn.SetReadDeadline(d)
			}
		}
		c.tail = append(c.tail, p[:n]...)
		if len(c.tail) > tailLen {
			c.tail = append(c.tail[:0], c.tail[len(c.tail)-tailLen:]...)
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *guardConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	greeting := !c.wrote
	c.wrote = true
	injected := !greeting && bytes.HasPrefix(p, []byte("220 ")) && !endsWithSTARTTLS(c.tail)
	c.mu.Unlock()
	if injected {
		// The 220 of STARTTLS (the only 220 after the greeting, and
		// written in plaintext: under TLS this conn sees records), with
		// more than the STARTTLS line read.
		c.rec.setReason(metrics.EndError)
		c.Conn.Write([]byte(starttlsRefusal))
		c.Conn.Close()
		return len(p), nil
	}
	n, err := c.Conn.Write(p)
	if c.closeAfter.Load() {
		c.Conn.Close()
	}
	return n, err
}

// Close closes the connection and, the first time, logs its end.
func (c *guardConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(c.logEnd)
	return err
}

// NetConn returns the connection underneath, as tls.Conn's does (for
// metrics.Traffic).
func (c *guardConn) NetConn() net.Conn { return c.Conn }

// endsWithSTARTTLS reports whether the input read so far ends with a
// STARTTLS command line, i.e. nothing was pipelined after it.
func endsWithSTARTTLS(tail []byte) bool {
	t := bytes.TrimSuffix(tail, []byte("\n"))
	t = bytes.TrimSuffix(t, []byte("\r"))
	t = bytes.TrimRight(t, " \t")
	return len(t) >= 8 && bytes.EqualFold(t[len(t)-8:], []byte("STARTTLS"))
}

// beginData and endData bracket reading message data: the DATA command's
// idle deadline applies to the whole of it, not the command timeout.
func (c *guardConn) beginData() {
	c.inData.Store(true)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = false
	if !c.idleDeadline.IsZero() {
		c.Conn.SetReadDeadline(c.idleDeadline)
	}
}

func (c *guardConn) endData() { c.inData.Store(false) }

// guardOf finds the guard under a session's connection (beneath TLS
// after STARTTLS); nil if there is none.
func guardOf(c net.Conn) *guardConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	g, _ := c.(*guardConn)
	return g
}
