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
			caps = append(caps, "AUTH=PLAIN", "AUTH=LOGIN")
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
	ex, err := auth.NewPasswordExchange(mech)
	if err != nil {
		return no("CANNOT", "Unsupported authentication mechanism")
	}
	for range maxSASLSteps {
		chal, creds, err := ex.Next(resp)
		if err != nil {
			return bad("", "Invalid authentication exchange")
		}
		if creds != nil {
			return s.login(c, creds.Username, creds.Password)
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

// login checks a password and enters the authenticated state. Failures
// are answered after the throttle's delay; a connection is closed after a
// few of them.
func (s *session) login(c *cmd, user, pass string) error {
	ctx := context.Background()
	id, hash, err := s.srv.st.PasswordHash(ctx, user)
	ok := false
	if err == nil {
		ok, err = auth.VerifyPassword(hash, pass)
	}
	if err != nil && !errors.Is(err, store.ErrNoAccount) {
		s.log.Warn("login", "user", user, "err", err)
	}
	var acct *store.Account
	if ok {
		acct, err = s.srv.st.AccountByID(ctx, id)
		ok = err == nil
	}
	if !ok {
		delay := s.srv.opts.Throttle.Failed(s.remote, user)
		s.log.Info("login failed", "user", user, "delay", delay)
		time.Sleep(delay)
		s.authFailures++
		if s.authFailures >= maxAuthFailures {
			s.state = stateLogout
		}
		return no("AUTHENTICATIONFAILED", "Authentication failed") // RFC 9051 §7.1
	}
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
