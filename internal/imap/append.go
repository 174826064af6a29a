// This file holds APPEND (RFC 9051 §6.3.12) with UIDPLUS's APPENDUID (RFC
// 4315), APPENDLIMIT (RFC 7889) and literal8 content (RFC 3516). The
// message streams from the connection into the store; it is refused
// before its data is asked for when it is too large, over quota, or aimed
// at a mailbox that does not exist.

package imap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"loft/internal/store"
)

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
	var flags []string
	if p.peek() == '(' {
		if flags, err = p.flagList(); err != nil {
			return err
		}
		if err := p.sp(); err != nil {
			return err
		}
	}
	var date time.Time
	if p.peek() == '"' {
		if date, err = p.dateTime(); err != nil {
			return err
		}
		if err := p.sp(); err != nil {
			return err
		}
	}
	spec, err := p.literalStart()
	if err != nil {
		return err
	}
	var keep []string
	for _, f := range flags {
		if !strings.EqualFold(f, `\Recent`) {
			keep = append(keep, f)
		}
	}
	ctx := context.Background()
	if spec.size > s.srv.opts.AppendLimit {
		return &literalError{kind: "NO", code: "TOOBIG", msg: fmt.Sprintf("Message larger than APPENDLIMIT %d", s.srv.opts.AppendLimit)}
	}
	if _, err := s.srv.st.Mailbox(ctx, s.account.ID, name); err != nil {
		if errors.Is(err, store.ErrNoMailbox) {
			return &literalError{kind: "NO", code: "TRYCREATE", msg: "No such mailbox"}
		}
		return err
	}
	if err := s.srv.st.CheckQuota(ctx, s.account.Address, spec.size); err != nil {
		if errors.Is(err, store.ErrOverQuota) {
			return &literalError{kind: "NO", code: "OVERQUOTA", msg: "Quota exceeded"} // RFC 9208 §4.3
		}
		return err
	}
	if err := p.beginLiteral(spec); err != nil {
		return err
	}
	lr := &io.LimitedReader{R: p.r, N: spec.size}
	res, err := s.srv.st.Append(ctx, s.account.ID, name, exactReader{lr}, store.AppendOptions{Flags: keep, InternalDate: date})
	if isConnError(err) {
		return err
	}
	if ferr := p.finishLiteral(lr); ferr != nil {
		return ferr
	}
	if err != nil {
		if errors.Is(err, store.ErrNoMailbox) {
			return no("TRYCREATE", "No such mailbox")
		}
		return storeError(err)
	}
	if err := p.end(); err != nil {
		return err
	}
	c.ok = fmt.Sprintf("[APPENDUID %d %d] APPEND completed", res.UIDValidity, res.UID)
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
