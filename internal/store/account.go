// Accounts: creation with the default mailboxes, password hashes, quota,
// deletion (which frees all the account's mail), and listings.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Account is an account as stored.
type Account struct {
	ID      int64
	Address string // lower-case full address: the login name
	// Quota is the storage limit in force, in bytes, or Unlimited.
	Quota int64
	// QuotaIsDefault reports that the account follows the configured default.
	QuotaIsDefault bool
	Usage          int64 // bytes: the sum of the sizes of all its messages
	Messages       int64 // number of messages in all its mailboxes
	Created        time.Time
}

const accountColumns = `id, address, quota, usage, messages, created`

func (s *Store) scanAccount(row interface{ Scan(...any) error }) (*Account, error) {
	var a Account
	var quota sql.NullInt64
	var created int64
	if err := row.Scan(&a.ID, &a.Address, &quota, &a.Usage, &a.Messages, &created); err != nil {
		return nil, err
	}
	a.Quota, a.QuotaIsDefault = s.effectiveQuota(quota)
	a.Created = time.Unix(created, 0)
	return &a, nil
}

func (s *Store) effectiveQuota(q sql.NullInt64) (int64, bool) {
	if !q.Valid {
		return s.defaultQuota, true
	}
	return q.Int64, false
}

// CreateAccount adds an account with the default mailboxes. quota is in
// bytes; pass nil to follow the configured default. The account has no
// SCRAM keys; CreateAccountWithCredentials sets both.
func (s *Store) CreateAccount(ctx context.Context, address, passwordHash string, quota *int64) (*Account, error) {
	return s.CreateAccountWithCredentials(ctx, address, Credentials{PasswordHash: passwordHash}, quota)
}

// CreateAccountWithCredentials adds an account with the default mailboxes
// and its password hash and SCRAM keys (see Credentials).
func (s *Store) CreateAccountWithCredentials(ctx context.Context, address string, cred Credentials, quota *int64) (*Account, error) {
	addr := normAddress(address)
	var id int64
	err := s.write(ctx, func(t *txn) error {
		var q sql.NullInt64
		if quota != nil {
			q = sql.NullInt64{Int64: *quota, Valid: true}
		}
		res, err := t.exec(`INSERT INTO accounts(address, password_hash, scram_sha256, quota, created) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT(address) DO NOTHING`, addr, cred.PasswordHash, cred.SCRAMSHA256, q, time.Now().Unix())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrAccountExists
		}
		id, err = res.LastInsertId()
		if err != nil {
			return err
		}
		for _, mb := range DefaultMailboxes {
			if _, err := createMailbox(t, id, mb.Name, mb.SpecialUse); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: create account %s: %w", addr, err)
	}
	return s.AccountByID(ctx, id)
}

// Account returns the account with the given address (any case).
func (s *Store) Account(ctx context.Context, address string) (*Account, error) {
	a, err := s.scanAccount(s.queryRow(ctx,
		`SELECT `+accountColumns+` FROM accounts WHERE address = ?`, normAddress(address)))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNoAccount
	}
	if err != nil {
		return nil, fmt.Errorf("store: account %s: %w", normAddress(address), err)
	}
	return a, nil
}

// AccountByID returns the account with the given id.
func (s *Store) AccountByID(ctx context.Context, id int64) (*Account, error) {
	a, err := s.scanAccount(s.queryRow(ctx,
		`SELECT `+accountColumns+` FROM accounts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNoAccount
	}
	if err != nil {
		return nil, fmt.Errorf("store: account #%d: %w", id, err)
	}
	return a, nil
}

// Accounts lists all accounts, by address.
func (s *Store) Accounts(ctx context.Context) ([]*Account, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY address`)
	if err != nil {
		return nil, fmt.Errorf("store: list accounts: %w", err)
	}
	defer rows.Close()
	var out []*Account
	for rows.Next() {
		a, err := s.scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list accounts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list accounts: %w", err)
	}
	return out, nil
}

// Totals are the quota figures of all accounts together.
type Totals struct {
	Accounts int64
	Messages int64 // in all mailboxes
	Usage    int64 // bytes: a copy counts again, as in each account's usage
}

// Totals sums the kept usage figures of every account: one pass over the
// accounts table, reading no message, cheap enough for every metrics
// scrape.
func (s *Store) Totals(ctx context.Context) (Totals, error) {
	var t Totals
	err := s.db.QueryRowContext(ctx,
		`SELECT COUNT(*), COALESCE(SUM(messages), 0), COALESCE(SUM(usage), 0) FROM accounts`).
		Scan(&t.Accounts, &t.Messages, &t.Usage)
	if err != nil {
		return Totals{}, fmt.Errorf("store: totals: %w", err)
	}
	return t, nil
}

// PasswordHash returns an account's id and stored password hash, for login.
func (s *Store) PasswordHash(ctx context.Context, address string) (id int64, hash string, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT id, password_hash FROM accounts WHERE address = ?`,
		normAddress(address)).Scan(&id, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNoAccount
	}
	if err != nil {
		return 0, "", fmt.Errorf("store: password of %s: %w", normAddress(address), err)
	}
	return id, hash, nil
}

// SetPassword replaces an account's password hash and drops its SCRAM
// keys, which belong to the old password (SetCredentials sets both).
func (s *Store) SetPassword(ctx context.Context, address, passwordHash string) error {
	addr := normAddress(address)
	err := s.write(ctx, func(t *txn) error {
		res, err := t.exec(`UPDATE accounts SET password_hash = ?, scram_sha256 = '' WHERE address = ?`, passwordHash, addr)
		return noRowsIs(res, err, ErrNoAccount)
	})
	if err != nil {
		return fmt.Errorf("store: set password of %s: %w", addr, err)
	}
	return nil
}

// SetQuota sets an account's storage limit in bytes (or Unlimited); nil
// returns it to the configured default. It applies to the next delivery.
func (s *Store) SetQuota(ctx context.Context, address string, quota *int64) error {
	addr := normAddress(address)
	err := s.write(ctx, func(t *txn) error {
		var q sql.NullInt64
		if quota != nil {
			q = sql.NullInt64{Int64: *quota, Valid: true}
		}
		res, err := t.exec(`UPDATE accounts SET quota = ? WHERE address = ?`, q, addr)
		return noRowsIs(res, err, ErrNoAccount)
	})
	if err != nil {
		return fmt.Errorf("store: set quota of %s: %w", addr, err)
	}
	return nil
}

// DeleteAccount removes an account with all its mailboxes and messages and
// frees the space of its bodies (unless another account shares one).
func (s *Store) DeleteAccount(ctx context.Context, address string) error {
	addr := normAddress(address)
	err := s.write(ctx, func(t *txn) error {
		var id int64
		err := t.queryRow(`SELECT id FROM accounts WHERE address = ?`, addr).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoAccount
		}
		if err != nil {
			return err
		}
		blobs, err := distinctBlobs(t, `SELECT DISTINCT m.blob FROM messages m
			JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.account_id = ?`, id)
		if err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?)`, id); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM accounts WHERE id = ?`, id); err != nil {
			return err
		}
		removed, err := dropUnreferenced(t, blobs)
		if err != nil {
			return err
		}
		t.removes = append(t.removes, removed...)
		t.changes = append(t.changes, Change{Kind: ChangeAccountDelete, accountID: id})
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: delete account %s: %w", addr, err)
	}
	return nil
}

// CheckQuota tells whether a message of size bytes (0 if unknown) would fit
// into the account now: ErrNoAccount, ErrOverQuota or nil. Delivery checks
// again when it commits; this early check lets SMTP refuse at RCPT.
func (s *Store) CheckQuota(ctx context.Context, address string, size int64) error {
	a, err := s.Account(ctx, address)
	if err != nil {
		return err
	}
	if !fits(a.Quota, a.Usage, size) {
		return fmt.Errorf("store: %s: %w", a.Address, ErrOverQuota)
	}
	return nil
}

// fits reports whether size more bytes fit under quota. A mailbox that is
// exactly full takes nothing more, even of unknown size.
func fits(quota, usage, size int64) bool {
	if quota == Unlimited {
		return true
	}
	return usage+max(size, 1) <= quota
}

func noRowsIs(res sql.Result, err error, notFound error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return notFound
	}
	return nil
}
