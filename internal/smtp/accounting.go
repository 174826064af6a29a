// Accounting: what a connection did, for its log line at the end and for
// the metrics. go-smtp starts a Session per greeting (again after
// STARTTLS), not per connection, so the connection's own record lives on
// its guardConn, which lives as long as the socket.
//
// Commands are counted as go-smtp hands them to Loft: the greeting (EHLO
// or HELO for SMTP, LHLO for LMTP), MAIL, RCPT and DATA (BDAT included).
// The others (NOOP, RSET, VRFY, STARTTLS, QUIT) go-smtp answers itself,
// unseen.

package smtp

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"loft/internal/metrics"
	"loft/internal/store"
)

// connRecord is a connection's account of itself, kept by its guardConn.
type connRecord struct {
	id       uint64
	start    time.Time
	commands atomic.Int64
	messages atomic.Int64
	// reason, once set, is why the connection ends; the first one set
	// wins.
	reason atomic.Pointer[string]
}

// setReason records why the connection ends, unless a reason is known.
func (r *connRecord) setReason(reason string) {
	r.reason.CompareAndSwap(nil, &reason)
}

// noteReadError turns the error of a read on the socket into the reason
// the connection ends.
func (r *connRecord) noteReadError(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		r.setReason(metrics.EndClosed)
	case errors.Is(err, net.ErrClosed):
		// Closed here; whoever closed it said why.
	case errors.As(err, &ne) && ne.Timeout():
		r.setReason(metrics.EndTimeout)
	default:
		r.setReason(metrics.EndError)
	}
}

// logEnd writes the connection's one line at its end. A connection closed
// by the server without another reason was closed after QUIT (or by
// go-smtp after too many errors), or by a shutdown.
func (c *guardConn) logEnd() {
	r := &c.rec
	if c.srv.isClosing() {
		r.setReason(metrics.EndShutdown)
	}
	r.setReason(metrics.EndLogout)
	in, out := metrics.Traffic(c.Conn)
	c.log.Info("session ended", "reason", *r.reason.Load(), "duration", time.Since(r.start),
		"commands", r.commands.Load(), "messages", r.messages.Load(), "bytes_in", in, "bytes_out", out)
}

// command counts a command that began at start and has been handled.
func (ss *session) command(name string, start time.Time) {
	ss.s.m.Command(name, start)
	if ss.guard != nil {
		ss.guard.rec.commands.Add(1)
	}
}

// greeting is the command that starts a go-smtp session.
func (s *Server) greeting() string {
	if s.opts.LMTP {
		return "LHLO" // RFC 2033 §4.1; go-smtp refuses EHLO and HELO
	}
	return "EHLO" // or HELO
}

// protocolSpec is the label set of the smtp or lmtp protocol's metrics.
func (s *Server) protocolSpec() metrics.ProtocolSpec {
	name := "smtp"
	if s.opts.LMTP {
		name = "lmtp"
	}
	return metrics.ProtocolSpec{Name: name, Commands: []string{s.greeting(), "MAIL", "RCPT", "DATA"}}
}

// outcome classifies why a message was or was not delivered to a
// recipient, for loft_deliveries_total and the log.
func outcome(err error) metrics.Outcome {
	var se *gosmtp.SMTPError
	switch {
	case err == nil:
		return metrics.Accepted
	case errors.Is(err, store.ErrNoAccount):
		return metrics.RejectedUnknownUser
	case errors.Is(err, store.ErrOverQuota):
		return metrics.RejectedQuota
	case errors.Is(err, errRelay):
		return metrics.RejectedRelay
	case errors.As(err, &se) && se.EnhancedCode == gosmtp.ErrDataTooLarge.EnhancedCode:
		return metrics.RejectedSize
	}
	return metrics.TempFailure
}

// maxLoggedMessageID bounds the Message-ID in a delivery's log line: the
// sender chose it, and a log line is no place for a kilobyte of it.
const maxLoggedMessageID = 256

func clipMessageID(id string) string {
	if len(id) > maxLoggedMessageID {
		return id[:maxLoggedMessageID] + "…"
	}
	return id
}
