// This file holds APPEND (RFC 9051 §6.3.12) with UIDPLUS's APPENDUID (RFC
// 4315), APPENDLIMIT (RFC 7889), literal8 content (RFC 3516), several
// messages in one command (MULTIAPPEND, RFC 3502: all stored or none) and
// UTF-8 messages (UTF8=ACCEPT's "UTF8 (~{n})", RFC 6855 §4). Each message
// streams from the connection into the store; it is refused before its
// data is asked for when it is too large, over quota, or aimed at a
// mailbox that does not exist.

package imap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"loft/internal/store"
)

// appendMessage is one message of APPEND or REPLACE as announced: its
// flags, date and literal, before the literal's data is read.
type appendMessage struct {
	opts     store.AppendOptions
	spec     literalSpec
	utf8Data bool // inside "UTF8 (" ... ")"
}

// appendMessageArg reads [flag-list SP] [date-time SP] (literal / "UTF8
// (" literal8 ")"), up to the literal announcement.
func (s *session) appendMessageArg() (*appendMessage, error) {
	p := s.p
	var m appendMessage
	var err error
	if p.peek() == '(' {
		flags, err := p.flagList()
		if err != nil {
			return nil, err
		}
		for _, f := range flags {
			if !strings.EqualFold(f, `\Recent`) {
				m.opts.Flags = append(m.opts.Flags, f)
			}
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
	if p.peek() == '"' {
		if m.opts.InternalDate, err = p.dateTime(); err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
	if p.takeWord("UTF8") {
		if !s.utf8Accept {
			return nil, bad("", "UTF8 needs ENABLE UTF8=ACCEPT")
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
		if err := p.expect('('); err != nil {
			return nil, err
		}
		m.utf8Data = true
	}
	if m.spec, err = p.literalStart(); err != nil {
		return nil, err
	}
	if m.utf8Data && !m.spec.binary {
		return nil, bad("", "UTF8 data is a literal8 (~{n})")
	}
	return &m, nil
}

// checkAppend refuses a message before its data is asked for: too large,
// or over the quota with size more bytes to come.
func (s *session) checkAppend(m *appendMessage, total int64) error {
	if m.spec.size > s.srv.opts.AppendLimit {
		return &literalError{kind: "NO", code: "TOOBIG", msg: fmt.Sprintf("Message larger than APPENDLIMIT %d", s.srv.opts.AppendLimit)}
	}
	if err := s.srv.st.CheckQuota(context.Background(), s.account.Address, total); err != nil {
		if errors.Is(err, store.ErrOverQuota) {
			return &literalError{kind: "NO", code: "OVERQUOTA", msg: "Quota exceeded"} // RFC 9208 §4.3
		}
		return err
	}
	return nil
}

// endAppendMessage reads what follows a message's literal: the line after
// it, and the ")" closing UTF8 data.
func (s *session) endAppendMessage(m *appendMessage, lr *io.LimitedReader) error {
	if err := s.p.finishLiteral(lr); err != nil {
		return err
	}
	if m.utf8Data {
		return s.p.expect(')')
	}
	return nil
}

func (s *session) cmdAppend(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	name, err := s.mailboxArg()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	ctx := context.Background()
	if _, err := s.srv.st.Mailbox(ctx, s.account.ID, name); err != nil {
		if errors.Is(err, store.ErrNoMailbox) {
			// The literal, if the client sends it anyway ({n+}), is
			// skipped as data by the session.
			return no("TRYCREATE", "No such mailbox")
		}
		return err
	}
	// The messages stream one by one into the store, which commits them
	// together once the last one is read (RFC 3502 §6.3.11).
	var cur *appendMessage
	var lr *io.LimitedReader
	var total int64
	var connErr error
	next := func() (io.Reader, store.AppendOptions, bool, error) {
		if cur != nil {
			if err := s.endAppendMessage(cur, lr); err != nil {
				connErr = err
				return nil, store.AppendOptions{}, false, err
			}
			if p.atEnd() {
				return nil, store.AppendOptions{}, false, nil
			}
			if err := p.sp(); err != nil {
				return nil, store.AppendOptions{}, false, err
			}
		}
		m, err := s.appendMessageArg()
		if err != nil {
			return nil, store.AppendOptions{}, false, err
		}
		total += m.spec.size
		if err := s.checkAppend(m, total); err != nil {
			return nil, store.AppendOptions{}, false, err
		}
		if err := p.beginLiteral(m.spec); err != nil {
			connErr = err
			return nil, store.AppendOptions{}, false, err
		}
		cur, lr = m, &io.LimitedReader{R: p.r, N: m.spec.size}
		return exactReader{lr}, m.opts, true, nil
	}
	res, err := s.srv.st.AppendMany(ctx, s.account.ID, name, next)
	if connErr != nil {
		return connErr
	}
	if isConnError(err) {
		return err
	}
	if err != nil {
		if cur != nil && lr != nil && lr.N > 0 {
			// The store gave up on a message before its end: skip the
			// rest of it so that it is not read as commands.
			if ferr := s.endAppendMessage(cur, lr); ferr != nil && isConnError(ferr) {
				return ferr
			}
		}
		var le *literalError
		var se *syntaxError
		var re *respError
		switch {
		case errors.As(err, &le), errors.As(err, &se), errors.As(err, &re):
			return err
		case errors.Is(err, store.ErrNoMailbox):
			return no("TRYCREATE", "No such mailbox")
		case errors.Is(err, store.ErrTooMany):
			return no("LIMIT", "Too many messages in one APPEND")
		}
		return storeError(err)
	}
	if err := p.end(); err != nil {
		return err
	}
	c.ok = fmt.Sprintf("[APPENDUID %d %s] APPEND completed", res.UIDValidity, uidSet(res.UIDs))
	return nil
}

// exactReader turns an early end of a literal (the client went away) into
// io.ErrUnexpectedEOF, so that a cut message is never stored.
type exactReader struct{ lr *io.LimitedReader }

func (r exactReader) Read(p []byte) (int, error) {
	n, err := r.lr.Read(p)
	if err == io.EOF && r.lr.N > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
