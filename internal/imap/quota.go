// This file holds GETQUOTA, GETQUOTAROOT and SETQUOTA (RFC 9208). An
// account has one quota root, "", over all its mailboxes, with the one
// resource Loft limits: STORAGE, in units of 1024 octets.

package imap

import (
	"context"
	"fmt"

	"loft/internal/store"
)

// writeQuota writes the QUOTA response of the account's root.
func (s *session) writeQuota(a *store.Account) {
	used := (a.Usage + 1023) / 1024
	fmt.Fprintf(s.w, "* QUOTA \"\" (STORAGE %d %d)\r\n", used, a.Quota/1024)
}

func (s *session) cmdGetQuotaRoot(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	name, err := s.mailboxArg()
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	ctx := context.Background()
	mb, err := s.srv.st.Mailbox(ctx, s.account.ID, name)
	if err != nil {
		return storeError(err)
	}
	a, err := s.srv.st.AccountByID(ctx, s.account.ID)
	if err != nil {
		return storeError(err)
	}
	s.w.WriteString("* QUOTAROOT ")
	s.w.mailbox(mb.Name)
	if a.Quota == store.Unlimited {
		s.w.WriteString("\r\n")
		return nil
	}
	s.w.WriteString(" \"\"\r\n")
	s.writeQuota(a)
	return nil
}

func (s *session) cmdGetQuota(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	root, err := p.astring()
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	a, err := s.srv.st.AccountByID(context.Background(), s.account.ID)
	if err != nil {
		return storeError(err)
	}
	if root != "" || a.Quota == store.Unlimited {
		return no("NONEXISTENT", "No such quota root")
	}
	s.writeQuota(a)
	return nil
}

func (s *session) cmdSetQuota(c *cmd) error {
	s.p.pos = len(s.p.line)
	return no("NOPERM", "Quotas are set by the administrator")
}
