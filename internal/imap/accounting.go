// Accounting: what a session did, for its "session ended" log line and for
// the metrics (commands by name, failed logins by mechanism).

package imap

import (
	"slices"
	"time"

	"loft/internal/auth"
	"loft/internal/metrics"
)

// sessionRecord is a session's account of itself.
type sessionRecord struct {
	commands int
	// reason is why the session ends (a metrics.End… value), when the
	// session's state at the end does not tell.
	reason string
}

// command counts a command that began at start and has been answered
// (IDLE: when it ended). Commands are counted by name without UID: "UID
// FETCH" counts as FETCH.
func (s *session) command(c *cmd, start time.Time) {
	s.rec.commands++
	s.srv.m.Command(c.name, start)
}

// logEnd writes the session's one line at its end.
func (s *session) logEnd(start time.Time) {
	reason := s.rec.reason
	switch {
	case reason != "":
	case s.srv.isClosing():
		reason = metrics.EndShutdown
	case s.state == stateLogout && s.authFailures >= s.srv.opts.MaxAuthFailures:
		reason = metrics.EndAuthFailures
	case s.state == stateLogout:
		reason = metrics.EndLogout
	default:
		reason = metrics.EndClosed
	}
	in, out := metrics.Traffic(s.conn)
	s.log.Info("session ended", "reason", reason, "duration", time.Since(start),
		"commands", s.rec.commands, "bytes_in", in, "bytes_out", out)
}

// protocolSpec is the label set of IMAP's metrics: the commands of the
// command table and the mechanisms a login may use.
func protocolSpec() metrics.ProtocolSpec {
	var names []string
	for name := range commandTable() {
		names = append(names, name)
	}
	slices.Sort(names)
	mechs := slices.Clone(auth.Mechanisms)
	if !slices.Contains(mechs, "LOGIN") {
		mechs = append(mechs, "LOGIN") // the LOGIN command
	}
	return metrics.ProtocolSpec{Name: "imap", Commands: names, Mechanisms: mechs}
}
