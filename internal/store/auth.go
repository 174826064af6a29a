// What login needs from the store: an account's password hash and SCRAM
// keys, read together, and writing them together so that they never belong
// to different passwords.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Credentials are what an account's password leaves in the store: never
// the password itself.
type Credentials struct {
	// PasswordHash is the argon2id PHC string (auth.HashPassword).
	PasswordHash string
	// SCRAMSHA256 holds the SCRAM-SHA-256 stored keys of the same
	// password (auth.HashSCRAM); "" for none.
	SCRAMSHA256 string
}

// LoginSecrets are an account's credentials with its identity, for login.
type LoginSecrets struct {
	AccountID int64
	Address   string // lower-case
	Credentials
}

// LoginSecrets returns the credentials of the account with the given
// address (any case), or an error wrapping ErrNoAccount.
func (s *Store) LoginSecrets(ctx context.Context, address string) (*LoginSecrets, error) {
	addr := normAddress(address)
	ls := LoginSecrets{Address: addr}
	err := s.db.QueryRowContext(ctx, `SELECT id, password_hash, scram_sha256 FROM accounts WHERE address = ?`,
		addr).Scan(&ls.AccountID, &ls.PasswordHash, &ls.SCRAMSHA256)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNoAccount
	}
	if err != nil {
		return nil, fmt.Errorf("store: credentials of %s: %w", addr, err)
	}
	return &ls, nil
}

// SetCredentials replaces an account's password hash and SCRAM keys
// together (a password change).
func (s *Store) SetCredentials(ctx context.Context, address string, cred Credentials) error {
	addr := normAddress(address)
	err := s.write(ctx, func(t *txn) error {
		res, err := t.exec(`UPDATE accounts SET password_hash = ?, scram_sha256 = ? WHERE address = ?`,
			cred.PasswordHash, cred.SCRAMSHA256, addr)
		return noRowsIs(res, err, ErrNoAccount)
	})
	if err != nil {
		return fmt.Errorf("store: set credentials of %s: %w", addr, err)
	}
	return nil
}

// AddSCRAM records SCRAM keys for an account that has none, computed from
// the password of a successful login, provided the password hash is still
// passwordHash: a password changed meanwhile keeps its own (or no) keys.
// It reports whether the keys were stored.
func (s *Store) AddSCRAM(ctx context.Context, accountID int64, passwordHash, scram string) (bool, error) {
	var stored bool
	err := s.write(ctx, func(t *txn) error {
		res, err := t.exec(`UPDATE accounts SET scram_sha256 = ?
			WHERE id = ? AND password_hash = ? AND scram_sha256 = ''`, scram, accountID, passwordHash)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		stored = n > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: add SCRAM keys of account #%d: %w", accountID, err)
	}
	return stored, nil
}
