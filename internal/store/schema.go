// Schema and migrations. Each migration is applied once, in order, inside a
// transaction that also records the new version, so a crash mid-upgrade
// leaves the previous version intact. Later issues append to migrations;
// they never edit an applied one.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

var migrations = []string{
	// 1: accounts, mailboxes, messages, bodies, expunge history.
	`
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
CREATE TABLE accounts (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	address       TEXT NOT NULL UNIQUE,  -- lower-case: logins are case-insensitive
	password_hash TEXT NOT NULL,          -- argon2id PHC string, never a password
	quota         INTEGER,                -- bytes; NULL: the configured default; -1: unlimited
	usage         INTEGER NOT NULL DEFAULT 0, -- sum of messages.size of the account, kept exact
	messages      INTEGER NOT NULL DEFAULT 0, -- number of messages of the account
	created       INTEGER NOT NULL
);
CREATE TABLE mailboxes (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	name          TEXT NOT NULL,          -- UTF-8, hierarchy separator "/"
	uidvalidity   INTEGER NOT NULL,       -- changes only when a mailbox of this name is recreated
	uidnext       INTEGER NOT NULL DEFAULT 1, -- strictly increasing, never reused
	highestmodseq INTEGER NOT NULL DEFAULT 1, -- bumped by every change in the mailbox
	special_use   TEXT NOT NULL DEFAULT '',   -- RFC 6154 attribute, e.g. "\Sent"
	subscribed    INTEGER NOT NULL DEFAULT 1,
	UNIQUE (account_id, name)
);
CREATE TABLE bodies (
	blob      TEXT PRIMARY KEY,  -- blob id: the file under blobs/
	size      INTEGER NOT NULL,  -- octets, CRLF line endings: what IMAP and POP3 announce
	structure BLOB NOT NULL      -- JSON of message.Message: envelope, MIME tree, offsets
) WITHOUT ROWID;
CREATE TABLE messages (
	id            INTEGER PRIMARY KEY,
	mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid           INTEGER NOT NULL,  -- strictly increasing per mailbox, never changes
	modseq        INTEGER NOT NULL,  -- mailbox modseq of the last change to this message
	internal_date INTEGER NOT NULL,  -- unix seconds
	size          INTEGER NOT NULL,
	flags         INTEGER NOT NULL DEFAULT 0, -- system flags, see flagBits
	keywords      TEXT NOT NULL DEFAULT '',   -- space-separated keywords, sorted
	blob          TEXT NOT NULL REFERENCES bodies(blob), -- shared by copies
	UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_blob ON messages(blob);
CREATE TABLE expunged (
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid        INTEGER NOT NULL,
	modseq     INTEGER NOT NULL,  -- the mailbox modseq of the expunge, for QRESYNC VANISHED
	PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
`,
}

// migrate brings the schema to the newest version.
func migrate(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			conn.ExecContext(context.Background(), `ROLLBACK`)
		}
	}()
	var version int
	if err := conn.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this loft (%d)", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		if _, err := conn.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate: to version %d: %w", v+1, err)
		}
		if v == 0 {
			// UIDVALIDITY values start at the creation time, as is
			// customary, and only ever grow (see nextUIDValidity).
			if _, err := conn.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES ('uidvalidity', ?)`, time.Now().Unix()); err != nil {
				return fmt.Errorf("migrate: seed uidvalidity: %w", err)
			}
		}
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations))); err != nil {
		return fmt.Errorf("migrate: set version: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	committed = true
	return nil
}
