// This file holds the commands of any state and of the not-authenticated
// state: CAPABILITY, NOOP, LOGOUT, ID (RFC 2971), STARTTLS, LOGIN,
// AUTHENTICATE (PLAIN and LOGIN, with SASL-IR, RFC 4959), and ENABLE
// (RFC 5161) and NAMESPACE (RFC 2342), which need a login.

package imap

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"loft/internal/auth"
	"loft/internal/config"
	"loft/internal/metrics"
	"loft/internal/store"
)

// errAnswered is returned by a handler that wrote its tagged response
// itself (STARTTLS must, before the handshake).
var errAnswered = errors.New("answered")

// capabilities lists what the server offers in the session's state.
func (s *session) capabilities() string {
	caps := []string{"IMAP4rev2", "IMAP4rev1"}
	if s.state == stateNotAuth {
		if s.srv.opts.TLS != nil && !s.tls {
			caps = append(caps, "STARTTLS")
		}
		if s.plaintextOK() {
			for _, m := range auth.Mechanisms {
				caps = append(caps, "AUTH="+m)
			}
		} else {
			caps = append(caps, "LOGINDISABLED")
		}
	}
	caps = append(caps,
		"SASL-IR",                                    // RFC 4959
		"LITERAL+",                                   // RFC 7888
		"ENABLE",                                     // RFC 5161
		"ID",                                         // RFC 2971
		"IDLE",                                       // RFC 2177
		"NAMESPACE",                                  // RFC 2342
		"UIDPLUS",                                    // RFC 4315
		"MOVE",                                       // RFC 6851
		"UNSELECT",                                   // RFC 3691
		"CHILDREN",                                   // RFC 3348
		"SPECIAL-USE",                                // RFC 6154
		"CREATE-SPECIAL-USE",                         // RFC 6154 §3
		"LIST-EXTENDED",                              // RFC 5258
		"LIST-STATUS",                                // RFC 5819
		"STATUS=SIZE",                                // RFC 8438
		"ESEARCH",                                    // RFC 4731
		"SEARCHRES",                                  // RFC 5182
		"BINARY",                                     // RFC 3516
		"CONDSTORE",                                  // RFC 7162 §3.1
		"QRESYNC",                                    // RFC 7162 §3.2
		"COMPRESS=DEFLATE",                           // RFC 4978
		"NOTIFY",                                     // RFC 5465
		"WITHIN",                                     // RFC 5032
		"SAVEDATE",                                   // RFC 8514
		"UNAUTHENTICATE",                             // RFC 8437
		"UTF8=ACCEPT",                                // RFC 6855
		"MULTIAPPEND",                                // RFC 3502
		"REPLACE",                                    // RFC 8508
		"SORT",                                       // RFC 5256
		"SORT=DISPLAY",                               // RFC 5957
		"ESORT",                                      // RFC 5267 §3.1
		"THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", // RFC 5256
		"PREVIEW", // RFC 8970
		"APPENDLIMIT="+strconv.FormatInt(s.srv.opts.AppendLimit, 10), // RFC 7889
		"QUOTA", "QUOTA=RES-STORAGE", // RFC 9208
	)
	return strings.Join(caps, " ")
}

// plaintextOK reports whether a password may be sent on this connection.
func (s *session) plaintextOK() bool {
	if s.tls {
		return true
	}
	switch s.srv.opts.Plaintext {
	case config.PlaintextAlways:
		return true
	case config.PlaintextNever:
		return false
	}
	return s.remote.IsLoopback()
}

func (s *session) cmdCapability(c *cmd) error {
	if err := s.p.end(); err != nil {
		return err
	}
	s.w.WriteString("* CAPABILITY " + s.capabilities() + "\r\n")
	return nil
}

func (s *session) cmdNoop(c *cmd) error { return s.p.end() }

func (s *session) cmdLogout(c *cmd) error {
	if err := s.p.end(); err != nil {
		return err
	}
	s.w.WriteString("* BYE Logging out\r\n")
	s.state = stateLogout
	return nil
}

// cmdID answers ID (RFC 2971); what the client says about itself is logged.
func (s *session) cmdID(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	var fields []string
	if !p.takeWord("NIL") {
		if err := p.expect('('); err != nil {
			return err
		}
		for !p.take(')') {
			if len(fields) > 0 {
				if err := p.sp(); err != nil {
					return err
				}
			}
			k, err := p.str()
			if err != nil {
				return err
			}
			if err := p.sp(); err != nil {
				return err
			}
			v := ""
			if !p.takeWord("NIL") {
				if v, err = p.str(); err != nil {
					return err
				}
			}
			if len(fields) < 60 {
				fields = append(fields, k+"="+v)
			}
		}
	}
	if err := p.end(); err != nil {
		return err
	}
	if len(fields) > 0 {
		s.log.Debug("client id", "id", strings.Join(fields, " "))
	}
	s.w.WriteString(`* ID ("name" "Loft" "vendor" "Loft")` + "\r\n")
	return nil
}

func (s *session) cmdStartTLS(c *cmd) error {
	if err := s.p.end(); err != nil {
		return err
	}
	if s.srv.opts.TLS == nil || s.tls {
		return bad("", "TLS not available")
	}
	if s.p.r.Buffered() > 0 {
		// Commands sent after STARTTLS before the handshake would be read
		// as if protected (CVE-2011-0411 style injection): refuse.
		s.state = stateLogout
		return bad("", "Data after STARTTLS")
	}
	s.w.WriteString(c.tag + " OK Begin TLS negotiation now\r\n")
	if err := s.flush(); err != nil {
		return err
	}
	tc := tls.Server(s.conn, s.srv.opts.TLS)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.log.Debug("tls handshake", "err", err)
		s.state = stateLogout
		return errAnswered
	}
	s.setConn(tc)
	s.tls = true
	return errAnswered
}

func (s *session) cmdLogin(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	user, err := p.astring()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	pass, err := p.astring()
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	if !s.plaintextOK() {
		return no("PRIVACYREQUIRED", "Use STARTTLS first") // RFC 9051 §7.1
	}
	return s.login(c, user, pass)
}

// maxSASLSteps bounds the exchanges of one AUTHENTICATE.
const maxSASLSteps = 5

// cmdAuthenticate runs a SASL exchange (RFC 9051 §6.2.2): PLAIN, LOGIN or
// SCRAM-SHA-256, with an initial response (SASL-IR) or without. SCRAM's
// server-final message, which must reach the client before the tagged OK,
// goes as one more continuation, answered with an empty line.
func (s *session) cmdAuthenticate(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	mech, err := p.atom()
	if err != nil {
		return err
	}
	var resp []byte
	if p.take(' ') {
		// SASL-IR (RFC 4959): an initial response, "=" for an empty one.
		ir := p.span(func(b byte) bool { return b > ' ' && b < 0x7f })
		if ir == "=" {
			resp = []byte{}
		} else if resp, err = base64.StdEncoding.DecodeString(ir); err != nil || ir == "" {
			return bad("", "Invalid base64 in initial response")
		}
	}
	if err := p.end(); err != nil {
		return err
	}
	if !s.plaintextOK() {
		return no("PRIVACYREQUIRED", "Use STARTTLS first")
	}
	ex, err := s.srv.opts.Auth.Start(mech, s.remote)
	if err != nil {
		return no("CANNOT", "Unsupported authentication mechanism")
	}
	ctx := s.srv.stopCtx
	for range maxSASLSteps {
		chal, id, err := ex.Next(ctx, resp)
		switch {
		case err != nil:
			return s.authFailed(err, mech)
		case id != nil:
			return s.open(c, id)
		}
		if err := s.continuation(base64.StdEncoding.EncodeToString(chal)); err != nil {
			return err
		}
		s.conn.SetReadDeadline(time.Now().Add(s.srv.opts.IdleTimeout))
		err = p.readLine()
		s.conn.SetReadDeadline(time.Time{})
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				return bad("", "Response too long")
			}
			return err
		}
		line := string(p.line)
		p.pos = len(p.line)
		if line == "*" {
			return bad("", "Authentication cancelled") // RFC 9051 §6.2.2
		}
		if resp, err = base64.StdEncoding.DecodeString(line); err != nil {
			return bad("", "Invalid base64 in response")
		}
	}
	return bad("", "Too many authentication steps")
}

// login checks a LOGIN password and enters the authenticated state.
func (s *session) login(c *cmd, user, pass string) error {
	id, err := s.srv.opts.Auth.CheckPassword(s.srv.stopCtx, s.remote, user, pass)
	if err != nil {
		return s.authFailed(err, "LOGIN")
	}
	return s.open(c, id)
}

// authFailed answers a login that did not succeed. A wrong password and
// an unknown account get the same words, after the same throttle delay
// (taken by the Authenticator); the connection is closed after
// MaxAuthFailures of them. A blocked address is told so and dropped.
func (s *session) authFailed(err error, mech string) error {
	var failed *auth.FailedError
	switch {
	case errors.As(err, &failed):
		s.authFailures++
		s.srv.m.AuthFailed(strings.ToUpper(mech))
		s.log.Info("login failed", "user", failed.Username, "mech", mech, "reason", failed.Reason,
			"failures", s.authFailures, "delay", failed.Delay)
		if s.authFailures >= s.srv.opts.MaxAuthFailures {
			s.state = stateLogout // closed after the tagged NO
		}
		return no("AUTHENTICATIONFAILED", "Authentication failed") // RFC 9051 §7.1
	case errors.Is(err, auth.ErrBlocked):
		s.log.Info("login refused: address blocked after too many failures")
		s.rec.reason = metrics.EndAuthFailures
		s.state = stateLogout
		return no("UNAVAILABLE", "Too many failed logins from your address; try again later")
	case errors.Is(err, auth.ErrAuthzID):
		// An authorization identity other than the login name: no one may
		// act as another, so it counts as a failed login.
		return s.authFailed(s.srv.opts.Auth.Failed(s.srv.stopCtx, s.remote, "", "authorization identity differs"), mech)
	case errors.Is(err, auth.ErrMalformedResponse):
		s.authFailures++
		if s.authFailures >= s.srv.opts.MaxAuthFailures {
			s.state = stateLogout
		}
		return bad("", "Invalid authentication exchange")
	case errors.Is(err, context.Canceled):
		s.state = stateLogout
		return no("UNAVAILABLE", "Server shutting down")
	}
	s.log.Warn("login", "mech", mech, "err", err)
	return no("UNAVAILABLE", "Authentication is temporarily unavailable")
}

// open counts the session against the per-address limit of its account,
// then enters the authenticated state.
func (s *session) open(c *cmd, id *auth.Identity) error {
	release, ok := s.srv.opts.Auth.OpenSession(id, s.remote)
	if !ok {
		s.log.Info("login refused: too many sessions of the account from this address", "account", id.Address)
		return no("LIMIT", "Too many sessions of this account from your address") // RFC 5530
	}
	acct, err := s.srv.st.AccountByID(context.Background(), id.AccountID)
	if err != nil {
		release()
		if errors.Is(err, store.ErrNoAccount) {
			return no("AUTHENTICATIONFAILED", "Authentication failed")
		}
		return err
	}
	s.release = release
	s.account = acct
	s.sub = s.srv.st.Subscribe(acct.ID)
	s.state = stateAuth
	s.log = s.log.With("account", acct.Address)
	s.log.Info("logged in")
	c.ok = "[CAPABILITY " + s.capabilities() + "] Logged in"
	return nil
}

func (s *session) cmdEnable(c *cmd) error {
	p := s.p
	var enabled []string
	for p.take(' ') {
		capa, err := p.atom()
		if err != nil {
			return err
		}
		if name := s.enable(capa); name != "" {
			enabled = append(enabled, name)
		}
	}
	if err := p.end(); err != nil {
		return err
	}
	s.w.WriteString("* ENABLED")
	for _, e := range enabled {
		s.w.WriteString(" " + e)
	}
	s.w.WriteString("\r\n")
	return nil
}

// cmdUnauthenticate answers UNAUTHENTICATE (RFC 8437): the session goes
// back to the not authenticated state as if newly connected, but keeps
// its TLS and its compression; what ENABLE turned on is off again.
func (s *session) cmdUnauthenticate(c *cmd) error {
	if err := s.p.end(); err != nil {
		return err
	}
	if s.sub != nil {
		s.sub.Close()
		s.sub = nil
	}
	if s.release != nil {
		s.release()
		s.release = nil
	}
	s.log.Info("logged out", "cmd", "UNAUTHENTICATE")
	s.log = s.srv.log.With("remote", s.conn.RemoteAddr().String())
	s.account, s.sel, s.saved, s.pending, s.notify = nil, nil, nil, nil, nil
	s.rev2, s.condstore, s.qresync, s.utf8Accept = false, false, false, false
	s.w.utf8 = false
	s.authFailures = 0
	s.state = stateNotAuth
	return nil
}

func (s *session) cmdNamespace(c *cmd) error {
	if err := s.p.end(); err != nil {
		return err
	}
	fmt.Fprintf(s.w, "* NAMESPACE ((\"\" %q)) NIL NIL\r\n", store.Separator)
	return nil
}
