// The TRANSACTION state's listing and marking commands (RFC 1939 §5: STAT,
// LIST, DELE, NOOP, RSET; §7: UIDL) and QUIT, which in TRANSACTION enters
// the UPDATE state (§6) and expunges what DELE marked.

package pop3

import (
	"context"
	"strconv"
	"strings"

	"loft/internal/metrics"
)

// uidl is a message's unique-id listing: "<uidvalidity>.<uid>" of the
// INBOX. Both numbers are fixed for the message's life (UIDs are never
// reused; the INBOX is never recreated), so the value is stable across
// sessions, restarts and other deletions, unique in the account, and well
// within RFC 1939 §7's 1-70 characters from 0x21-0x7E (at most 21 digits
// and a dot).
func (s *session) uidl(m *message) string {
	return strconv.FormatUint(uint64(s.mailbox.UIDValidity), 10) + "." + strconv.FormatUint(uint64(m.uid), 10)
}

// listed reports whether a message counts in STAT and listings: not marked
// for deletion here, and not expunged meanwhile by another session.
func (m *message) listed() bool { return !m.deleted && !m.gone }

// totals returns the number and octets of the listed messages.
func (s *session) totals() (n int, octets int64) {
	for i := range s.msgs {
		if s.msgs[i].listed() {
			n++
			octets += s.msgs[i].size
		}
	}
	return n, octets
}

// message parses a message-number argument and returns the message, which
// must exist and not be marked as deleted (RFC 1939 §5).
func (s *session) message(arg string) (*message, int, error) {
	if arg == "" {
		return nil, 0, &reply{text: "Missing message number"}
	}
	n, err := parseNumber(arg)
	if err != nil {
		return nil, 0, err
	}
	if n < 1 || n > len(s.msgs) {
		return nil, 0, &reply{text: "No such message: there are " + strconv.Itoa(len(s.msgs)) + " messages"}
	}
	m := &s.msgs[n-1]
	switch {
	case m.deleted:
		return nil, 0, &reply{text: "Message " + arg + " is already deleted"}
	case m.gone:
		return nil, 0, errMessageGone
	}
	return m, n, nil
}

// parseNumber reads a decimal number of at most 9 digits (a message
// number or a line count), nothing else.
func parseNumber(arg string) (int, error) {
	if arg == "" || len(arg) > 9 {
		return 0, errBadNumber
	}
	for _, c := range []byte(arg) {
		if c < '0' || c > '9' {
			return 0, errBadNumber
		}
	}
	n, _ := strconv.Atoi(arg)
	return n, nil
}

func (s *session) cmdStat(args string) error {
	if args != "" {
		return errTooManyArgs
	}
	n, octets := s.totals()
	s.ok("%d %d", n, octets)
	return nil
}

// cmdList gives message sizes: the octets RETR sends, before dot-stuffing.
func (s *session) cmdList(args string) error {
	return s.listing(args, func(m *message) string { return strconv.FormatInt(m.size, 10) })
}

func (s *session) cmdUidl(args string) error {
	return s.listing(args, s.uidl)
}

// listing answers LIST and UIDL: for one message, or for all listed ones.
func (s *session) listing(args string, value func(*message) string) error {
	if args != "" {
		if strings.Contains(args, " ") {
			return errTooManyArgs
		}
		m, n, err := s.message(args)
		if err != nil {
			return err
		}
		s.ok("%d %s", n, value(m))
		return nil
	}
	n, octets := s.totals()
	s.ok("%d messages (%d octets)", n, octets)
	for i := range s.msgs {
		if m := &s.msgs[i]; m.listed() {
			s.w.WriteString(strconv.Itoa(i + 1))
			s.w.WriteByte(' ')
			s.w.WriteString(value(m))
			s.w.WriteString("\r\n")
		}
	}
	s.w.WriteString(".\r\n")
	return nil
}

// cmdDele marks a message for deletion at QUIT.
func (s *session) cmdDele(args string) error {
	m, n, err := s.message(args)
	if err != nil {
		return err
	}
	m.deleted = true
	s.ok("Message %d deleted", n)
	return nil
}

// cmdRset unmarks every message marked for deletion.
func (s *session) cmdRset(args string) error {
	if args != "" {
		return errTooManyArgs
	}
	for i := range s.msgs {
		s.msgs[i].deleted = false
	}
	n, octets := s.totals()
	s.ok("Maildrop has %d messages (%d octets)", n, octets)
	return nil
}

func (s *session) cmdNoop(args string) error {
	if args != "" {
		return errTooManyArgs
	}
	s.ok("")
	return nil
}

// cmdQuit ends the session. In TRANSACTION it first expunges the messages
// marked for deletion and answers +OK only once that is durable; on
// failure the answer is -ERR and nothing is lost that was not deleted
// (RFC 1939 §6).
func (s *session) cmdQuit(args string) error {
	s.done = true
	s.ending(metrics.EndLogout)
	if s.state == stateAuthorization {
		s.ok("Loft POP3 server signing off")
		return nil
	}
	var uids []uint32
	for i := range s.msgs {
		if s.msgs[i].deleted && !s.msgs[i].gone {
			uids = append(uids, s.msgs[i].uid)
		}
	}
	if len(uids) > 0 {
		s.seen.wait() // let \Seen updates land first: tidier logs, no wasted work
		gone, err := s.srv.st.Expunge(context.Background(), s.accountID, s.mailbox.ID, uids)
		if err != nil {
			s.log.Error("expunge at QUIT failed", "messages", len(uids), "err", err)
			return &reply{code: codeSysTemp, text: "Some deleted messages were not removed; try again"}
		}
		s.log.Info("deleted at QUIT", "messages", len(gone))
	}
	if n, _ := s.totals(); n > 0 {
		s.ok("Loft POP3 server signing off (%d messages left)", n)
	} else {
		s.ok("Loft POP3 server signing off (maildrop empty)")
	}
	return nil
}
