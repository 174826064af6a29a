// Session ends: every protocol writes one "session ended" line per
// connection, with the same attributes and one of these reasons, so that
// one query over the logs covers SMTP, LMTP, IMAP and POP3 alike.

package metrics

// Why a session ended: the reason attribute of the "session ended" line.
const (
	EndLogout       = "logout"        // the client said goodbye: QUIT, LOGOUT
	EndClosed       = "closed"        // the client closed the connection without
	EndTimeout      = "timeout"       // idle or command timeout
	EndShutdown     = "shutdown"      // the server stopped
	EndAuthFailures = "auth-failures" // closed after too many failed logins
	EndLimit        = "limit"         // another limit: messages per session, an overlong line
	EndError        = "error"         // a network or protocol error, a server failure
)
