// The one place where outcomes become negative POP3 responses: "-ERR",
// with an extended response code where one applies (RFC 2449 §8: IN-USE,
// LOGIN-DELAY; RFC 3206: SYS/TEMP, SYS/PERM, AUTH).

package pop3

import (
	"errors"
	"fmt"
	"time"

	"loft/internal/store"
)

// Response codes used by Loft.
const (
	codeInUse   = "IN-USE"   // RFC 2449 §8.1.1: the maildrop is locked by another session
	codeAuth    = "AUTH"     // RFC 3206 §4: the credentials are wrong (not a server problem)
	codeSysTemp = "SYS/TEMP" // RFC 3206 §4: a server-side failure that may go away by itself
	codeSysPerm = "SYS/PERM" // RFC 3206 §4: a server-side failure that needs a person
)

// reply is a negative response, "-ERR [code] text". Handlers return one
// as their error; the session writes it and reads the next command.
type reply struct {
	code string // without brackets; "" for none
	text string
}

func (r *reply) Error() string {
	if r.code == "" {
		return r.text
	}
	return "[" + r.code + "] " + r.text
}

// fatalError ends the session without a response, because the connection
// is unusable or a multi-line response was cut off midway.
type fatalError struct{ err error }

func (f *fatalError) Error() string { return f.err.Error() }
func (f *fatalError) Unwrap() error { return f.err }

// Negative responses, by situation.
var (
	errUnknownCommand  = &reply{text: "Unknown command"}
	errLineTooLong     = &reply{text: fmt.Sprintf("Command line too long (the limit is %d octets)", maxCommandLine)}
	errTooManyArgs     = &reply{text: "Too many arguments"}
	errBadNumber       = &reply{text: "Invalid message number"}
	errNoSuchMessage   = &reply{text: "No such message"}
	errMessageGone     = &reply{text: "Message is no longer in the mailbox (removed by another session)"}
	errAuthFailed      = &reply{code: codeAuth, text: "Authentication failed"}
	errAuthTooMany     = &reply{code: codeAuth, text: "Authentication failed; too many failures, closing the connection"}
	errAuthCancelled   = &reply{text: "Authentication cancelled"}
	errBadBase64       = &reply{text: "Invalid base64 in the SASL exchange"}
	errBadSASL         = &reply{text: "Malformed SASL response"}
	errUnsupportedSASL = &reply{text: "Unsupported authentication mechanism"}
	errNoUser          = &reply{text: "Send USER first"}
	errAlreadyTLS      = &reply{text: "TLS is already active"}
	errNoTLS           = &reply{text: "STLS is not available on this server"}
	errShuttingDown    = &reply{code: codeSysTemp, text: "Server shutting down; nothing was deleted, try again later"}
	// errBlocked: the address failed too often (auth.Throttle); not
	// [AUTH], which would make clients ask for a new password.
	errBlocked         = &reply{code: codeSysTemp, text: "Too many failed logins from your address; try again later"}
	errTooManySessions = &reply{code: codeSysTemp, text: "Too many sessions of this account from your address; close some and try again"}
)

// errNeedTLS refuses a password on a connection where auth.plaintext does
// not allow one. No [AUTH] code: the password may well be right.
func errNeedTLS(stls bool) *reply {
	if stls {
		return &reply{text: "Password login needs TLS on this connection: use STLS first"}
	}
	return &reply{text: "Password login needs TLS: connect to the POP3S port"}
}

// errNotInState answers a known command given in the wrong state, the
// current one.
func errNotInState(cmd string, current state) *reply {
	if current == stateAuthorization {
		return &reply{text: cmd + " is not valid before login"}
	}
	return &reply{text: cmd + " is not valid after login"}
}

// errInUse tells a person who holds the maildrop, in exclusive mode. It is
// never [AUTH]: the password was right, and clients that see [AUTH] ask
// for a new one.
func errInUse(held accountLock) *reply {
	return &reply{code: codeInUse, text: fmt.Sprintf(
		"Mailbox in use: another POP3 session from %s has held it since %s; try again when it ends",
		held.remote, held.since.UTC().Format(time.DateTime+" UTC"))}
}

// errorReply maps an error from a handler to the response to send: a
// reply as it is, a store outcome in POP3's words, anything else as a
// temporary server-side failure (RFC 3206 SYS/TEMP).
func errorReply(err error) *reply {
	var r *reply
	switch {
	case errors.As(err, &r):
		return r
	case errors.Is(err, store.ErrNoMessage):
		return errMessageGone
	case errors.Is(err, store.ErrNoAccount), errors.Is(err, store.ErrNoMailbox):
		return &reply{code: codeSysPerm, text: "The account or its INBOX no longer exists"}
	default:
		return &reply{code: codeSysTemp, text: "Internal server error; try again later"}
	}
}
