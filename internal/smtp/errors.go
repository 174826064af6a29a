// The one place where store outcomes become SMTP replies (RFC 3463 codes).
package smtp

import (
	"errors"

	gosmtp "github.com/emersion/go-smtp"

	"loft/internal/store"
)

var (
	errBadAddress = &gosmtp.SMTPError{Code: 501, EnhancedCode: gosmtp.EnhancedCode{5, 1, 3},
		Message: "Bad recipient address syntax"}
	errRelay = &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1},
		Message: "Relay access denied: not a local domain"}
	errNoRecipients = &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 5, 1},
		Message: "No valid recipients"}
	errNoMailbox = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1},
		Message: "No such mailbox here"}
	errMailboxFull = &gosmtp.SMTPError{Code: 552, EnhancedCode: gosmtp.EnhancedCode{5, 2, 2},
		Message: "Mailbox full: over quota"}
	errNotStored = &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 2, 0},
		Message: "Not stored because another recipient refused the message; try again"}
	errShuttingDown = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 3, 2},
		Message: "Server shutting down; try again later"}
	// errTooManyMessages: limits.max_messages_per_session reached; the
	// client reconnects for more (RFC 5321 §3.8: 421 closes the session).
	errTooManyMessages = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0},
		Message: "Too many messages in this session; reconnect to send more"}
	errTemporary = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0},
		Message: "Local error in processing; try again later"}
)

// reply turns an error into the SMTP reply for it. go-smtp recognises only a
// *gosmtp.SMTPError itself, not one wrapped.
func reply(err error) *gosmtp.SMTPError {
	var se *gosmtp.SMTPError
	switch {
	case errors.As(err, &se):
		return se // e.g. go-smtp's own 552 5.3.4 for an oversized message
	case errors.Is(err, store.ErrNoAccount):
		return errNoMailbox
	case errors.Is(err, store.ErrOverQuota):
		return errMailboxFull
	case errors.Is(err, store.ErrNotStored):
		return errNotStored
	default:
		return errTemporary
	}
}

// replyOrNil is reply for a per-recipient result that may be success. A
// typed nil pointer inside an error interface would read as failure.
func replyOrNil(err error) error {
	if err == nil {
		return nil
	}
	return reply(err)
}
