// This file holds one connection's session: the state machine (not
// authenticated, authenticated, selected, logout; RFC 9051 §3), the
// command table with the states each command is allowed in, the one place
// where errors become tagged NO/BAD responses, and the announcement of
// changes from the store's feed as untagged responses.

package imap

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"loft/internal/metrics"
	"loft/internal/store"
)

// state is a session state; a command's allowed states are an OR of them.
type state uint8

const (
	stateNotAuth state = 1 << iota
	stateAuth
	stateSelected
	stateLogout

	anyState = stateNotAuth | stateAuth | stateSelected
	authed   = stateAuth | stateSelected
)

// command is an entry of the command table.
type command struct {
	states state
	fn     func(s *session, c *cmd) error
	// bySeq: the command names messages by sequence number (without UID),
	// so no EXPUNGE may be announced while it runs (RFC 9051 §7.5.1).
	bySeq bool
	// uid: the command has a UID form.
	uid bool
}

// commandTable maps command names to handlers.
func commandTable() map[string]command {
	return map[string]command{
		// Any state (RFC 9051 §6.1).
		"CAPABILITY": {states: anyState, fn: (*session).cmdCapability},
		"NOOP":       {states: anyState, fn: (*session).cmdNoop},
		"LOGOUT":     {states: anyState, fn: (*session).cmdLogout},
		"ID":         {states: anyState, fn: (*session).cmdID}, // RFC 2971
		// Not authenticated (§6.2).
		"STARTTLS":     {states: stateNotAuth, fn: (*session).cmdStartTLS},
		"LOGIN":        {states: stateNotAuth, fn: (*session).cmdLogin},
		"AUTHENTICATE": {states: stateNotAuth, fn: (*session).cmdAuthenticate},
		// Authenticated (§6.3).
		"ENABLE":         {states: authed, fn: (*session).cmdEnable}, // RFC 5161
		"SELECT":         {states: authed, fn: (*session).cmdSelect},
		"EXAMINE":        {states: authed, fn: (*session).cmdSelect},
		"CREATE":         {states: authed, fn: (*session).cmdCreate},
		"DELETE":         {states: authed, fn: (*session).cmdDelete},
		"RENAME":         {states: authed, fn: (*session).cmdRename},
		"SUBSCRIBE":      {states: authed, fn: (*session).cmdSubscribe},
		"UNSUBSCRIBE":    {states: authed, fn: (*session).cmdSubscribe},
		"LIST":           {states: authed, fn: (*session).cmdList},
		"LSUB":           {states: authed, fn: (*session).cmdLsub}, // IMAP4rev1
		"NAMESPACE":      {states: authed, fn: (*session).cmdNamespace},
		"STATUS":         {states: authed, fn: (*session).cmdStatus},
		"APPEND":         {states: authed, fn: (*session).cmdAppend},
		"IDLE":           {states: authed, fn: (*session).cmdIdle},           // RFC 2177
		"COMPRESS":       {states: authed, fn: (*session).cmdCompress},       // RFC 4978
		"NOTIFY":         {states: authed, fn: (*session).cmdNotify},         // RFC 5465
		"UNAUTHENTICATE": {states: authed, fn: (*session).cmdUnauthenticate}, // RFC 8437
		"GETQUOTA":       {states: authed, fn: (*session).cmdGetQuota},       // RFC 9208
		"GETQUOTAROOT":   {states: authed, fn: (*session).cmdGetQuotaRoot},   // RFC 9208
		"SETQUOTA":       {states: authed, fn: (*session).cmdSetQuota},       // RFC 9208
		// Selected (§6.4).
		"CHECK":    {states: stateSelected, fn: (*session).cmdNoop}, // IMAP4rev1: a NOOP here
		"CLOSE":    {states: stateSelected, fn: (*session).cmdClose},
		"UNSELECT": {states: stateSelected, fn: (*session).cmdUnselect}, // RFC 3691
		"EXPUNGE":  {states: stateSelected, fn: (*session).cmdExpunge, uid: true},
		"SEARCH":   {states: stateSelected, fn: (*session).cmdSearch, bySeq: true, uid: true},
		"SORT":     {states: stateSelected, fn: (*session).cmdSort, bySeq: true, uid: true},   // RFC 5256
		"THREAD":   {states: stateSelected, fn: (*session).cmdThread, bySeq: true, uid: true}, // RFC 5256
		"FETCH":    {states: stateSelected, fn: (*session).cmdFetch, bySeq: true, uid: true},
		"STORE":    {states: stateSelected, fn: (*session).cmdStore, bySeq: true, uid: true},
		"COPY":     {states: stateSelected, fn: (*session).cmdCopy, bySeq: true, uid: true},
		"MOVE":     {states: stateSelected, fn: (*session).cmdMove, bySeq: true, uid: true}, // RFC 6851
		"REPLACE":  {states: stateSelected, fn: (*session).cmdReplace, uid: true},           // RFC 8508
	}
}

// cmd is the command being run.
type cmd struct {
	tag  string
	name string // upper-case, without "UID"
	uid  bool   // the UID form
	// ok is the text of the tagged OK, with its response code; empty for
	// the default "NAME completed".
	ok string
}

// respError is a protocol outcome: NO or BAD with an optional response code.
type respError struct {
	kind string // "NO" or "BAD"
	code string // e.g. "TRYCREATE", "OVERQUOTA"; may hold arguments
	msg  string
}

func (e *respError) Error() string { return e.kind + " " + e.msg }

func no(code, format string, args ...any) error {
	return &respError{kind: "NO", code: code, msg: fmt.Sprintf(format, args...)}
}

func bad(code, format string, args ...any) error {
	return &respError{kind: "BAD", code: code, msg: fmt.Sprintf(format, args...)}
}

// storeError maps the store's typed outcomes to IMAP's words; other
// errors pass through (and become NO [SERVERBUG]).
func storeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNoMailbox):
		return no("NONEXISTENT", "No such mailbox")
	case errors.Is(err, store.ErrMailboxExists):
		return no("ALREADYEXISTS", "Mailbox already exists")
	case errors.Is(err, store.ErrOverQuota):
		return no("OVERQUOTA", "Quota exceeded") // RFC 9208 §4.3
	case errors.Is(err, store.ErrBadName):
		return no("CANNOT", "Invalid mailbox name")
	case errors.Is(err, store.ErrInboxDelete):
		return no("CANNOT", "INBOX cannot be deleted")
	case errors.Is(err, store.ErrNoAccount):
		return no("UNAVAILABLE", "Account no longer exists")
	}
	return err
}

// session is one client connection.
type session struct {
	srv    *Server
	conn   net.Conn
	p      *parser
	in     connReader // what p reads from (reader.go)
	w      *writer
	log    *slog.Logger
	remote netip.Addr
	tls    bool

	state        state
	rev2         bool                 // ENABLE IMAP4rev2 was given
	condstore    bool                 // a CONDSTORE enabling command was given (RFC 7162 §3.1)
	qresync      bool                 // ENABLE QRESYNC was given (RFC 7162 §3.2.3)
	utf8Accept   bool                 // ENABLE UTF8=ACCEPT was given (RFC 6855)
	compressed   bool                 // COMPRESS DEFLATE is active (RFC 4978)
	notify       *notifySpec          // NOTIFY SET in force (RFC 5465); nil: none given
	saveDates    map[uint32]time.Time // SAVEDATE of the messages of the running command, by UID
	notifyDone   map[int64]bool       // mailboxes NOTIFY sent a STATUS for in this burst
	account      *store.Account
	sub          *store.Subscription
	pending      []store.Change // from the feed, not yet announced
	sel          *selection     // the selected mailbox, in stateSelected
	saved        []uint32       // SEARCHRES "$": UIDs of the last SEARCH ... RETURN (SAVE)
	authFailures int
	release      func()        // ends the session's count in Auth.OpenSession
	rec          sessionRecord // for the log line at the end (accounting.go)

	mu          sync.Mutex // guards waiting and interrupted
	waiting     bool       // blocked reading a command (or in IDLE)
	interrupted bool       // the server shuts down
}

func newSession(srv *Server, conn net.Conn) *session {
	id := srv.seq.Add(1)
	s := &session{srv: srv, conn: conn, state: stateNotAuth}
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		s.remote = ap.Addr().Unmap()
	}
	_, s.tls = conn.(*tls.Conn)
	s.log = srv.log.With("session", id, "remote", conn.RemoteAddr().String())
	s.setConn(conn)
	return s
}

// setConn (re)builds the reader and writer, after STARTTLS too.
func (s *session) setConn(conn net.Conn) {
	s.conn = conn
	if s.p == nil {
		s.p = &parser{
			cont:           s.continuation,
			maxLine:        s.srv.opts.MaxLineLength,
			commandTimeout: s.srv.opts.CommandTimeout,
			// s.conn, not conn: STARTTLS replaces it, and deadlines
			// belong on the outermost connection.
			deadline: func(t time.Time) { s.conn.SetReadDeadline(t) },
		}
	}
	s.useConn(conn)
	utf8 := s.w != nil && s.w.utf8
	s.w = newWriter(conn, utf8, nil)
}

// continuation sends a command continuation request.
func (s *session) continuation(text string) error {
	s.w.WriteString("+ " + text + "\r\n")
	return s.flush()
}

func (s *session) flush() error {
	s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return s.w.Flush()
}

// interrupt asks the session to end: at once if it waits for a command.
func (s *session) interrupt() {
	s.mu.Lock()
	s.interrupted = true
	if s.waiting {
		s.conn.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
}

func (s *session) setWaiting(w bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting = w
	return s.interrupted
}

func (s *session) serve() {
	defer func() {
		if s.sub != nil {
			s.sub.Close()
		}
		if s.release != nil {
			s.release()
		}
		s.conn.Close()
	}()
	s.log.Debug("connected")
	if s.srv.isClosing() {
		s.w.WriteString("* BYE Server shutting down\r\n")
		s.flush()
		return
	}
	s.w.WriteString("* OK [CAPABILITY " + s.capabilities() + "] Loft IMAP ready\r\n")
	if s.flush() != nil {
		return
	}
	for s.state != stateLogout {
		if s.setWaiting(true) {
			s.bye("Server shutting down")
			return
		}
		s.w.park() // all flushed: an idle session holds no buffers
		s.parkReader()
		s.conn.SetReadDeadline(time.Now().Add(s.srv.opts.IdleTimeout))
		err := s.readCommandLine()
		interrupted := s.setWaiting(false)
		s.conn.SetReadDeadline(time.Time{})
		switch {
		case err == nil:
		case errors.Is(err, errLineTooLong):
			// Untagged: the tag was in the part not kept. A literal
			// announced at the line's end is still skipped as data.
			s.w.WriteString("* BAD " + err.Error() + "\r\n")
			if s.flush() != nil || s.p.discardCommand() != nil {
				return
			}
			continue
		case errors.Is(err, errCommandTimeout):
			s.log.Info("command timed out", "timeout", s.srv.opts.CommandTimeout)
			s.rec.reason = metrics.EndTimeout
			s.bye("Command timed out")
			return
		case errors.Is(err, errLineFar):
			s.log.Info("line too long, closing", "limit", maxDiscard)
			s.rec.reason = metrics.EndLimit
			s.bye("Command line too long")
			return
		case interrupted:
			s.bye("Server shutting down")
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.rec.reason = metrics.EndTimeout
			s.bye("Autologout; idle for too long")
			return
		default:
			return // the client went away
		}
		if err := s.execute(); err != nil {
			s.log.Debug("connection ends", "err", err)
			return
		}
		if s.p.broken {
			// What follows is the data of a literal that cannot be
			// skipped: nothing more can be read as commands.
			s.rec.reason = metrics.EndError
			s.bye("Literal size out of range")
			return
		}
		if s.flush() != nil {
			return
		}
	}
}

func (s *session) bye(text string) {
	s.w.WriteString("* BYE " + text + "\r\n")
	s.flush()
	s.state = stateLogout
}

// execute runs the command on the current line. An error means the
// connection is unusable.
func (s *session) execute() error {
	p := s.p
	tag, err := p.tag()
	if err != nil {
		p.discardCommand()
		s.w.WriteString("* BAD Missing or invalid tag\r\n")
		return nil
	}
	c := &cmd{tag: tag}
	if !p.take(' ') {
		p.discardCommand()
		return s.tagged(c, bad("", "Missing command"))
	}
	name, err := p.atom()
	if err != nil {
		p.discardCommand()
		return s.tagged(c, bad("", "Missing command"))
	}
	c.name = strings.ToUpper(name)
	if c.name == "UID" {
		c.uid = true
		name := ""
		if p.take(' ') {
			name, _ = p.atom()
		}
		c.name = strings.ToUpper(name)
	}
	defer s.command(c, time.Now())
	def, ok := s.srv.commands[c.name]
	if !ok || (c.uid && !def.uid) {
		p.discardCommand()
		what := c.name
		if c.uid {
			what = "UID " + what
		}
		return s.tagged(c, bad("", "Unknown command %s", clip([]byte(what))))
	}
	if s.state&def.states == 0 {
		p.discardCommand()
		return s.tagged(c, bad("", "%s is not allowed in the %s state", c.name, s.stateName()))
	}
	err = def.fn(s, c)
	if errors.Is(err, errAnswered) {
		return nil
	}
	if isConnError(err) {
		return err
	}
	// Whatever the outcome, a literal the handler did not read is data to
	// skip, never a command.
	if derr := p.discardCommand(); derr != nil && !errors.Is(derr, errLiteralOverflow) {
		return derr
	}
	if isConnError(err) {
		return err
	}
	if s.state&authed != 0 {
		s.announce(c.uid || !def.bySeq)
	}
	return s.tagged(c, err)
}

func isConnError(err error) bool {
	var ne net.Error
	return err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &ne))
}

func (s *session) stateName() string {
	switch s.state {
	case stateNotAuth:
		return "not authenticated"
	case stateAuth:
		return "authenticated"
	case stateSelected:
		return "selected"
	}
	return "logout"
}

// tagged writes the tagged response for err (nil: OK).
func (s *session) tagged(c *cmd, err error) error {
	w := s.w
	w.WriteString(c.tag)
	var se *syntaxError
	var le *literalError
	var re *respError
	switch {
	case err == nil:
		w.WriteString(" OK ")
		if c.ok != "" {
			w.WriteString(c.ok)
		} else {
			w.WriteString(c.name + " completed")
		}
	case errors.As(err, &se):
		w.WriteString(" BAD " + se.msg)
	case errors.As(err, &le):
		// RFC 7888 §4 and RFC 9051 §7.1: a refused literal is BAD [TOOBIG]
		// for a command; APPEND answers NO [TOOBIG] itself.
		kind := le.kind
		if kind == "" {
			kind = "BAD"
		}
		w.WriteString(" " + kind + " [" + le.code + "] " + le.msg)
	case errors.As(err, &re):
		w.WriteString(" " + re.kind + " ")
		if re.code != "" {
			w.WriteString("[" + re.code + "] ")
		}
		w.WriteString(re.msg)
	default:
		s.log.Error("command failed", "cmd", c.name, "err", err)
		w.WriteString(" NO [SERVERBUG] Internal error")
	}
	w.WriteString("\r\n")
	return nil
}

// absorb takes the changes the feed has for this session.
func (s *session) absorb() {
	if s.sub != nil {
		s.pending = append(s.pending, s.sub.Changes()...)
	}
}

// dropOwn removes pending changes this session made itself and has
// already answered for (its own STORE, EXPUNGE, MOVE), and returns the
// highest modseq among them (0 if none).
func (s *session) dropOwn(own func(c *store.Change) bool) int64 {
	s.absorb()
	var modseq int64
	s.pending = slices.DeleteFunc(s.pending, func(c store.Change) bool {
		if own(&c) {
			modseq = max(modseq, c.ModSeq)
			if s.sel != nil && c.MailboxID == s.sel.id {
				s.sel.modseq = max(s.sel.modseq, c.ModSeq)
			}
			return true
		}
		return false
	})
	return modseq
}

// announce turns pending changes into untagged responses: EXISTS for new
// messages, FETCH (FLAGS) for flag changes, EXPUNGE (VANISHED with QRESYNC)
// for removals; with NOTIFY, events of other mailboxes too (notify.go).
// With expunges not allowed (a command by sequence number is running), it
// stops at the first expunge of the selected mailbox and keeps the rest
// for later, so that the order of changes is kept.
func (s *session) announce(allowExpunge bool) {
	s.absorb()
	s.notifyDone = nil
	sel := s.sel
	exists := false
	writeExists := func() {
		if exists {
			s.writeExists()
			exists = false
		}
	}
	i := 0
	for ; i < len(s.pending) && s.state != stateLogout; i++ {
		c := &s.pending[i]
		if c.Kind == store.ChangeAccountDelete {
			s.bye("Account deleted")
			return
		}
		if sel == nil || c.MailboxID != sel.id {
			writeExists()
			s.notifyOther(c)
			continue
		}
		if c.Kind == store.ChangeExpunge && !allowExpunge {
			writeExists()
			if s.condstore {
				// RFC 7162 §3.2: a client that saw higher modseqs in this
				// command's FETCH responses must not take them as "all
				// changes up to there": the expunge is not announced yet.
				fmt.Fprintf(s.w, "* OK [HIGHESTMODSEQ %d] Expunges pending\r\n", min(sel.modseq, c.ModSeq-1))
			}
			s.pending = s.pending[i:]
			return
		}
		sel.modseq = max(sel.modseq, c.ModSeq)
		switch c.Kind {
		case store.ChangeNew:
			if n := len(sel.uids); n == 0 || c.UID > sel.uids[n-1] {
				s.announceNew(c.UID)
				exists = true
				if s.notify.wantsNewFetch() {
					writeExists()
					s.notifyFetchNew(c.UID)
				}
			}
		case store.ChangeFlags:
			if seq := sel.seqOf(c.UID); seq > 0 {
				writeExists()
				fmt.Fprintf(s.w, "* %d FETCH (UID %d FLAGS ", seq, c.UID)
				s.writeMessageFlags(c.UID, c.Flags)
				if s.condstore {
					fmt.Fprintf(s.w, " MODSEQ (%d)", c.ModSeq)
				}
				s.w.WriteString(")\r\n")
			}
		case store.ChangeExpunge:
			writeExists()
			s.writeExpunges(c.UIDs)
		case store.ChangeMailboxRename:
			sel.name = c.Name
			s.notifyOther(c)
		case store.ChangeMailboxDelete:
			s.bye("Selected mailbox was deleted")
			return
		}
	}
	writeExists()
	s.pending = s.pending[:0]
}

// writeFlags writes a parenthesized flag list.
func (s *session) writeFlags(flags []string) {
	s.w.WriteByte('(')
	for i, f := range flags {
		if i > 0 {
			s.w.WriteByte(' ')
		}
		s.w.WriteString(f)
	}
	s.w.WriteByte(')')
}

// mailboxArg reads a mailbox name and decodes it from modified UTF-7 for
// IMAP4rev1 clients.
func (s *session) mailboxArg() (string, error) {
	raw, err := s.p.astring()
	if err != nil {
		return "", err
	}
	return s.decodeName(raw)
}

func (s *session) decodeName(raw string) (string, error) {
	name := raw
	if !s.rev2 && !s.utf8Accept {
		var err error
		if name, err = decodeMUTF7(raw); err != nil {
			return "", bad("", "%v", err)
		}
	}
	if strings.ContainsAny(name, "\x00\r\n") {
		return "", bad("", "Control character in mailbox name")
	}
	return store.CanonicalName(name), nil
}
