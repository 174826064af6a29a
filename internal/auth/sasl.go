package auth

// This file holds the server side of the SASL mechanisms that carry a
// password (PLAIN, RFC 4616; LOGIN, draft-murchison-sasl-login), shared by
// POP3 AUTH (RFC 5034) and later IMAP AUTHENTICATE and SMTP AUTH. A
// mechanism only collects the credentials; the protocol verifies them, so
// that it can throttle failures and answer in its own words.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"
)

// PasswordMechanisms are the SASL mechanisms Loft offers, in the order of
// preference it advertises them. Both send the password in the clear, so
// they are offered only where a plaintext password is allowed.
var PasswordMechanisms = []string{sasl.Plain, sasl.Login}

// Errors of a SASL exchange, before any password is checked.
var (
	ErrUnsupportedMechanism = errors.New("auth: unsupported SASL mechanism")
	ErrMalformedResponse    = errors.New("auth: malformed SASL response")
	// ErrAuthzID is returned for a PLAIN authorization identity other than
	// the login name: Loft has no administrators who may act as others.
	ErrAuthzID = errors.New("auth: authorization identity differs from the login name")
)

// Credentials are what a password mechanism collected.
type Credentials struct {
	Username string
	Password string
}

// PasswordExchange is the server side of one password SASL exchange.
type PasswordExchange struct {
	next func(response []byte) (challenge []byte, creds *Credentials, err error)
}

// NewPasswordExchange starts an exchange for mech (case-insensitive), one
// of PasswordMechanisms; otherwise the error is ErrUnsupportedMechanism.
func NewPasswordExchange(mech string) (*PasswordExchange, error) {
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return newPlainExchange(), nil
	case sasl.Login:
		return newLoginExchange(), nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupportedMechanism, mech)
}

// Next takes the client's next response, decoded; nil when the client gave
// no initial response (a zero-length one is an empty, non-nil slice). It
// returns either a challenge to send (creds nil) or, when the exchange is
// complete, the credentials to verify. A non-nil error ends the exchange.
func (e *PasswordExchange) Next(response []byte) (challenge []byte, creds *Credentials, err error) {
	return e.next(response)
}

func newPlainExchange() *PasswordExchange {
	var creds *Credentials
	srv := sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && !strings.EqualFold(identity, username) {
			return ErrAuthzID
		}
		if username == "" {
			return ErrMalformedResponse
		}
		creds = &Credentials{Username: username, Password: password}
		return nil
	})
	return &PasswordExchange{next: func(response []byte) ([]byte, *Credentials, error) {
		challenge, done, err := srv.Next(response)
		switch {
		case errors.Is(err, ErrAuthzID) || errors.Is(err, ErrMalformedResponse):
			return nil, nil, err
		case err != nil:
			return nil, nil, fmt.Errorf("%w: %v", ErrMalformedResponse, err)
		case done:
			return nil, creds, nil
		}
		return challenge, nil, nil
	}}
}

// LOGIN's challenges, as every implementation sends them.
var (
	loginUsername = []byte("Username:")
	loginPassword = []byte("Password:")
)

// newLoginExchange is the obsolete but widespread LOGIN mechanism: the
// server asks for the user name, then the password. An initial response,
// if any, is the user name.
func newLoginExchange() *PasswordExchange {
	var username *string
	return &PasswordExchange{next: func(response []byte) ([]byte, *Credentials, error) {
		switch {
		case response == nil: // no initial response: only ever the first call
			return loginUsername, nil, nil
		case username == nil:
			if len(response) == 0 {
				return nil, nil, fmt.Errorf("%w: empty user name", ErrMalformedResponse)
			}
			u := string(response)
			username = &u
			return loginPassword, nil, nil
		default:
			return nil, &Credentials{Username: *username, Password: string(response)}, nil
		}
	}}
}
