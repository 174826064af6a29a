// The AUTHORIZATION state: CAPA (RFC 2449 §5), STLS (RFC 2595 §4), USER
// and PASS (RFC 1939 §7), AUTH (RFC 5034 §4), the plaintext policy, login
// throttling, the exclusive-mode lock and taking the INBOX snapshot.

package pop3

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strings"

	"loft/internal/auth"
	"loft/internal/config"
	"loft/internal/metrics"
	"loft/internal/store"
)

// maxSASLSteps bounds the challenges of one AUTH exchange; PLAIN needs at
// most one, LOGIN two.
const maxSASLSteps = 4

// cmdCapa lists the capabilities of the current state (RFC 2449 §5: those
// that can be used in AUTHORIZATION are listed in both states, except
// commands no longer valid after login).
func (s *session) cmdCapa(args string) error {
	if args != "" {
		return errTooManyArgs
	}
	s.w.WriteString("+OK Capability list follows\r\n")
	for _, c := range s.capabilities() {
		s.w.WriteString(c)
		s.w.WriteString("\r\n")
	}
	s.w.WriteString(".\r\n")
	return nil
}

func (s *session) capabilities() []string {
	caps := []string{
		"TOP", // RFC 2449 §6.1
	}
	if s.state == stateAuthorization {
		// Password commands only where a password may be sent (the POP3
		// counterpart of IMAP's LOGINDISABLED, RFC 2595 §3.2).
		if s.passwordAllowed() {
			caps = append(caps,
				"USER", // RFC 2449 §6.2
				"SASL "+strings.Join(auth.Mechanisms, " ")) // RFC 2449 §6.3, RFC 5034 §3
		}
		if s.canSTLS() {
			caps = append(caps, "STLS") // RFC 2595 §4
		}
	}
	return append(caps,
		"RESP-CODES",          // RFC 2449 §6.4
		"AUTH-RESP-CODE",      // RFC 3206 §3
		"PIPELINING",          // RFC 2449 §6.6
		"EXPIRE NEVER",        // RFC 2449 §6.7: Loft never deletes mail on its own
		"UIDL",                // RFC 2449 §6.8
		"IMPLEMENTATION Loft", // RFC 2449 §6.9
	)
}

// passwordAllowed applies auth.plaintext: a password may always be sent
// over TLS; without, only where the policy allows.
func (s *session) passwordAllowed() bool {
	if s.tls {
		return true
	}
	switch s.srv.opts.Plaintext {
	case config.PlaintextAlways:
		return true
	case config.PlaintextNever:
		return false
	default: // config.PlaintextLoopback: nothing crosses a network
		return s.remote.IsLoopback()
	}
}

func (s *session) canSTLS() bool { return !s.tls && s.srv.opts.TLS != nil }

// cmdStls starts TLS (RFC 2595 §4). Anything the client pipelined after
// STLS is discarded, so that plaintext injected before the handshake
// cannot pass for commands sent under TLS.
func (s *session) cmdStls(args string) error {
	switch {
	case args != "":
		return errTooManyArgs
	case s.tls:
		return errAlreadyTLS
	case s.srv.opts.TLS == nil:
		return errNoTLS
	}
	s.ok("Begin TLS negotiation")
	if err := s.w.Flush(); err != nil {
		return &fatalError{err}
	}
	tc := tls.Server(s.raw, s.srv.opts.TLS)
	if err := s.handshake(tc); err != nil {
		return &fatalError{err}
	}
	s.conn = tc
	s.r.Reset(tc)
	s.w.Reset(deadlineWriter{tc})
	s.user = "" // RFC 2595 §4: the client starts AUTHORIZATION afresh
	return nil
}

// cmdUser names the account for PASS (RFC 1939 §7).
func (s *session) cmdUser(args string) error {
	if !s.passwordAllowed() {
		return errNeedTLS(s.canSTLS())
	}
	name := strings.TrimSpace(args)
	if name == "" {
		return &reply{text: "USER needs the login name (your full address)"}
	}
	s.user = name
	s.ok("Send your password")
	return nil
}

// cmdPass checks the password for USER's name. RFC 1939 §7: "the server
// may treat spaces in the argument as part of the password".
func (s *session) cmdPass(args string) error {
	if !s.passwordAllowed() {
		return errNeedTLS(s.canSTLS())
	}
	if s.user == "" {
		return errNoUser
	}
	user := s.user
	s.user = ""
	s.rec.mech = "USER"
	return s.login(user, args)
}

// cmdAuth runs a SASL exchange (RFC 5034 §4). Without a mechanism it lists
// the mechanisms, as RFC 1734 servers did and some clients still ask.
func (s *session) cmdAuth(args string) error {
	s.user = ""
	mech, initial, hasInitial := strings.Cut(args, " ")
	if mech == "" {
		s.w.WriteString("+OK Mechanisms follow\r\n")
		if s.passwordAllowed() {
			for _, m := range auth.Mechanisms {
				s.w.WriteString(m + "\r\n")
			}
		}
		s.w.WriteString(".\r\n")
		return nil
	}
	ex, err := s.srv.opts.Auth.Start(mech, s.remote)
	if err != nil {
		return errUnsupportedSASL
	}
	s.rec.mech = strings.ToUpper(mech)
	if !s.passwordAllowed() {
		return errNeedTLS(s.canSTLS())
	}
	var response []byte // nil: no initial response
	if hasInitial {
		if strings.Contains(initial, " ") {
			return errTooManyArgs
		}
		if response, err = decodeSASL(initial); err != nil {
			return err
		}
	}
	ctx, cancel := s.loginContext()
	defer cancel()
	for range maxSASLSteps {
		challenge, id, err := ex.Next(ctx, response)
		switch {
		case err != nil:
			return s.authFailed(err)
		case id != nil:
			return s.open(id)
		}
		// RFC 5034 §4: a challenge, or SCRAM's server-final message, as a
		// continuation; an empty one is "+ " with nothing after.
		s.w.WriteString("+ " + base64.StdEncoding.EncodeToString(challenge) + "\r\n")
		if err := s.w.Flush(); err != nil {
			return &fatalError{err}
		}
		line, err := s.readLine(maxSASLLine)
		var r *reply
		switch {
		case errors.As(err, &r):
			return r
		case err != nil:
			return &fatalError{err}
		case line == "*": // RFC 5034 §4: the client cancels
			return errAuthCancelled
		}
		if response, err = decodeSASL(line); err != nil {
			return err
		}
	}
	return errBadSASL
}

// decodeSASL decodes a client's base64 response; "=" is an empty one
// (RFC 5034 §4, for the initial response).
func decodeSASL(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errBadBase64
	}
	return b, nil
}

// loginContext bounds a login's waits (the hashing queue, the throttle's
// delay) by the server's life: a shutdown cuts them short.
func (s *session) loginContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.srv.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// login checks USER/PASS credentials and, if they are right, takes the
// INBOX snapshot and enters the TRANSACTION state.
func (s *session) login(username, password string) error {
	ctx, cancel := s.loginContext()
	defer cancel()
	id, err := s.srv.opts.Auth.CheckPassword(ctx, s.remote, username, password)
	if err != nil {
		return s.authFailed(err)
	}
	return s.open(id)
}

// authFailed answers a login that did not succeed: a wrong password or
// unknown account alike (RFC 3206 [AUTH]), closing the connection after
// MaxAuthFailures; a blocked address ([SYS/TEMP], closing at once); a
// malformed exchange; or a server failure.
func (s *session) authFailed(err error) error {
	var failed *auth.FailedError
	switch {
	case errors.As(err, &failed):
		s.authFailures++
		s.srv.m.AuthFailed(s.rec.mech)
		s.log.Info("login failed", "account", failed.Username, "reason", failed.Reason,
			"failures", s.authFailures, "delay", failed.Delay)
		if s.authFailures >= s.srv.opts.MaxAuthFailures {
			s.done = true
			s.ending(metrics.EndAuthFailures)
			return errAuthTooMany
		}
		return errAuthFailed
	case errors.Is(err, auth.ErrBlocked):
		s.log.Info("login refused: address blocked after too many failures")
		s.done = true
		s.ending(metrics.EndAuthFailures)
		return errBlocked
	case errors.Is(err, auth.ErrAuthzID):
		// A PLAIN or SCRAM authorization identity other than the login
		// name: no one may act as another, so it is a failed login.
		ctx, cancel := s.loginContext()
		defer cancel()
		return s.authFailed(s.srv.opts.Auth.Failed(ctx, s.remote, "", "authorization identity differs"))
	case errors.Is(err, auth.ErrMalformedResponse):
		s.authFailures++
		if s.authFailures >= s.srv.opts.MaxAuthFailures {
			s.done = true
		}
		return errBadSASL
	}
	return err
}

// open counts the session against the per-address limit of its account,
// takes the exclusive lock if configured, subscribes to the account's
// changes, then snapshots the INBOX (subscribing first, so that no expunge
// between the two is missed).
func (s *session) open(id *auth.Identity) error {
	accountID, address := id.AccountID, id.Address
	release, ok := s.srv.opts.Auth.OpenSession(id, s.remote)
	if !ok {
		s.log.Info("login refused: too many sessions of the account from this address", "account", address)
		return errTooManySessions
	}
	s.release = release
	if s.srv.opts.Exclusive {
		held, ok := s.srv.lock(accountID, s.remote.String())
		if !ok {
			s.release()
			s.release = nil
			s.log.Info("mailbox in use", "account", address, "held_by", held.remote, "since", held.since)
			return errInUse(held)
		}
		s.locked = true
	}
	ctx := context.Background()
	sub := s.srv.st.Subscribe(accountID)
	mb, err := s.srv.st.Mailbox(ctx, accountID, "INBOX")
	var infos []store.MessageInfo
	if err == nil {
		infos, err = s.srv.st.Messages(ctx, accountID, mb.ID)
	}
	if err != nil {
		sub.Close()
		if s.locked {
			s.srv.unlock(accountID)
			s.locked = false
		}
		s.release()
		s.release = nil
		return err
	}
	msgs := make([]message, len(infos))
	var total int64
	for i, m := range infos {
		msgs[i] = message{uid: m.UID, size: m.Size, blob: m.Blob, seen: m.HasFlag(`\Seen`)}
		total += m.Size
	}
	s.accountID, s.address, s.mailbox, s.msgs, s.sub = accountID, address, mb, msgs, sub
	s.seen = &seenMarker{st: s.srv.st, log: s.log, accountID: accountID, mailboxID: mb.ID}
	s.state = stateTransaction
	s.log = s.log.With("account", address)
	s.log.Info("logged in", "tls", s.tls, "messages", len(msgs))
	s.ok("%s has %d messages (%d octets)", address, len(msgs), total)
	return nil
}
