// Accounting: what a session did, for its "session ended" log line and for
// the metrics (commands by name, failed logins by mechanism).

package pop3

import (
	"slices"
	"time"

	"loft/internal/auth"
	"loft/internal/metrics"
)

// sessionRecord is a session's account of itself.
type sessionRecord struct {
	start    time.Time
	commands int
	// reason is why the session ends (a metrics.End… value); the first
	// one set wins.
	reason string
	// mech is the login mechanism under way, for the failure count:
	// "USER" for USER/PASS, else the SASL mechanism.
	mech string
}

// ending records why the session ends, unless a reason is known.
func (s *session) ending(reason string) {
	if s.rec.reason == "" {
		s.rec.reason = reason
	}
}

// command counts a command that began at start and has been answered.
func (s *session) command(keyword string, start time.Time) {
	s.rec.commands++
	s.srv.m.Command(keyword, start)
}

// logEnd writes the session's one line at its end.
func (s *session) logEnd() {
	s.ending(metrics.EndClosed)
	in, out := metrics.Traffic(s.raw)
	s.log.Info("session ended", "reason", s.rec.reason, "duration", time.Since(s.rec.start),
		"commands", s.rec.commands, "bytes_in", in, "bytes_out", out)
}

// protocolSpec is the label set of POP3's metrics: the commands of the
// command table and the mechanisms a login may use.
func protocolSpec() metrics.ProtocolSpec {
	var names []string
	for _, set := range commands {
		for name := range set {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return metrics.ProtocolSpec{Name: "pop3", Commands: names, Mechanisms: append([]string{"USER"}, auth.Mechanisms...)}
}
