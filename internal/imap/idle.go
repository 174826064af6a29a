// This file holds IDLE (RFC 2177, RFC 9051 §6.3.13): changes from the
// store's feed are announced as they happen until the client sends DONE.

package imap

import (
	"errors"
	"net"
	"os"
	"strings"
	"time"
)

func (s *session) cmdIdle(c *cmd) error {
	if err := s.p.end(); err != nil {
		return err
	}
	if err := s.continuation("idling"); err != nil {
		return err
	}
	s.announce(true)
	if err := s.flush(); err != nil {
		return err
	}
	s.w.park()
	s.parkReader()
	done := make(chan error, 1)
	if s.setWaiting(true) {
		s.setWaiting(false)
		s.bye("Server shutting down")
		return errAnswered
	}
	s.conn.SetReadDeadline(time.Now().Add(s.srv.opts.IdleTimeout))
	go func() { done <- s.readLine() }()
	for {
		select {
		case <-s.sub.Ready():
			s.announce(true)
			if err := s.flush(); err != nil {
				s.conn.Close()
				<-done
				return err
			}
			if s.state == stateLogout {
				s.conn.Close()
				<-done
				return net.ErrClosed
			}
			s.w.park()
		case err := <-done:
			interrupted := s.setWaiting(false)
			s.conn.SetReadDeadline(time.Time{})
			switch {
			case err == nil:
			case errors.Is(err, errLineTooLong):
				return bad("", "Expected DONE")
			case interrupted:
				s.bye("Server shutting down")
				return errAnswered
			case errors.Is(err, os.ErrDeadlineExceeded):
				s.bye("Autologout; idle for too long")
				return errAnswered
			default:
				return err
			}
			line := string(s.p.line)
			s.p.pos = len(s.p.line)
			if !strings.EqualFold(line, "DONE") {
				return bad("", "Expected DONE")
			}
			return nil
		}
	}
}
