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
	// 2: a SHA-256 of each body as stored, recorded at delivery and verified
	// by `loft check`. NULL: stored before hashes were kept; `loft check
	// --repair` records it then.
	`
ALTER TABLE bodies ADD COLUMN sha256 BLOB;
`,
	// 3: SCRAM-SHA-256 stored keys (RFC 5802 §3, RFC 7677) beside the
	// argon2id hash, as "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"
	// (base64); '' for none: the account then cannot use SCRAM until its
	// next password login or password change fills them in.
	`
ALTER TABLE accounts ADD COLUMN scram_sha256 TEXT NOT NULL DEFAULT '';
`,
	// 4: the save date of each message (RFC 8514 SAVEDATE): unix seconds
	// when it was stored into its mailbox by delivery, APPEND, COPY or MOVE.
	// NULL for messages stored before; the trigger fills it for every new
	// row, whichever code path inserts it. And an index for QRESYNC's "UIDs
	// expunged since modseq N" (RFC 7162 §3.2.5), which the expunge
	// history's primary key cannot answer without a scan.
	`
ALTER TABLE messages ADD COLUMN savedate INTEGER;
CREATE TRIGGER messages_savedate AFTER INSERT ON messages WHEN NEW.savedate IS NULL
BEGIN
	UPDATE messages SET savedate = CAST(strftime('%s', 'now') AS INTEGER) WHERE id = NEW.id;
END;
CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);
`,
	// 5: the text index (fts.go): what SEARCH, SORT, THREAD and PREVIEW
	// need of a body, computed once at delivery. Keyed by blob, as copies
	// share a body; the trigger drops a body's rows with its row, whoever
	// deletes it. Bodies stored before have no rows until `loft reindex`;
	// readers fall back to the file for those.
	`
CREATE TABLE body_index (
	id           INTEGER PRIMARY KEY,  -- the rowid of the body's body_fts row
	blob         TEXT NOT NULL UNIQUE, -- bodies.blob
	preview      TEXT NOT NULL,        -- RFC 8970 preview, at most 200 characters
	sent         INTEGER,              -- Date: in unix seconds (RFC 5256 §2.2); NULL: none that parses
	subject      TEXT NOT NULL,        -- base subject (RFC 5256 §2.1), i;unicode-casemap key (RFC 5051)
	reply        INTEGER NOT NULL,     -- 1: the subject marks a reply or forward (RFC 5256 REFERENCES)
	from_addr    TEXT NOT NULL,        -- SORT FROM, TO, CC: addr-mailbox of the first address, key
	to_addr      TEXT NOT NULL,
	cc_addr      TEXT NOT NULL,
	display_from TEXT NOT NULL,        -- SORT DISPLAYFROM, DISPLAYTO (RFC 5957), key
	display_to   TEXT NOT NULL,
	message_id   TEXT NOT NULL,        -- normalized msg-id; '' if none is valid
	refs         TEXT NOT NULL         -- normalized msg-ids, space-separated: References, else In-Reply-To's first
);
-- Decoded, lower-case text (message.Text): trigrams find substrings.
CREATE VIRTUAL TABLE body_fts USING fts5(header, body, tokenize = 'trigram');
CREATE TRIGGER bodies_unindex AFTER DELETE ON bodies
BEGIN
	DELETE FROM body_fts WHERE rowid IN (SELECT id FROM body_index WHERE blob = OLD.blob);
	DELETE FROM body_index WHERE blob = OLD.blob;
END;
`,
	// 6: the text of a body goes into body_fts just after its delivery, by
	// the store's indexer, not in the delivery's commit (fts.go). indexed:
	// 0 not yet, 1 in body_fts, 2 too large to index (searched by reading
	// the file). Rows of migration 5 were indexed in their commit: 1.
	`
ALTER TABLE body_index ADD COLUMN indexed INTEGER NOT NULL DEFAULT 1;
CREATE INDEX body_index_pending ON body_index(id) WHERE indexed = 0;
`,
	// 7: each mailbox's counts (STATUS MESSAGES, SIZE, UNSEEN, DELETED),
	// kept in its row so that STATUS, LIST-STATUS and NOTIFY's STATUS
	// updates read one row instead of counting a large mailbox's messages
	// (34 ms for MESSAGES and 110 ms with UNSEEN at 100,000 messages), as
	// Dovecot reads them from its index header. Triggers keep them, so
	// every path that inserts, deletes, moves or flags a message does,
	// including those written later; `loft check` recomputes them. The
	// bits are flagBits' \Seen (1) and \Deleted (8).
	`
ALTER TABLE mailboxes ADD COLUMN messages INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN unseen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET
	messages = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id),
	size     = (SELECT coalesce(sum(m.size), 0) FROM messages m WHERE m.mailbox_id = mailboxes.id),
	unseen   = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id AND m.flags & 1 = 0),
	deleted  = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id AND m.flags & 8 != 0);
CREATE TRIGGER messages_count_insert AFTER INSERT ON messages
BEGIN
	UPDATE mailboxes SET messages = messages + 1, size = size + NEW.size,
		unseen = unseen + (NEW.flags & 1 = 0), deleted = deleted + (NEW.flags & 8 != 0)
	WHERE id = NEW.mailbox_id;
END;
CREATE TRIGGER messages_count_delete AFTER DELETE ON messages
BEGIN
	UPDATE mailboxes SET messages = messages - 1, size = size - OLD.size,
		unseen = unseen - (OLD.flags & 1 = 0), deleted = deleted - (OLD.flags & 8 != 0)
	WHERE id = OLD.mailbox_id;
END;
CREATE TRIGGER messages_count_update AFTER UPDATE OF mailbox_id, size, flags ON messages
	WHEN OLD.mailbox_id != NEW.mailbox_id OR OLD.size != NEW.size OR (OLD.flags & 9) != (NEW.flags & 9)
BEGIN
	UPDATE mailboxes SET messages = messages - 1, size = size - OLD.size,
		unseen = unseen - (OLD.flags & 1 = 0), deleted = deleted - (OLD.flags & 8 != 0)
	WHERE id = OLD.mailbox_id;
	UPDATE mailboxes SET messages = messages + 1, size = size + NEW.size,
		unseen = unseen + (NEW.flags & 1 = 0), deleted = deleted + (NEW.flags & 8 != 0)
	WHERE id = NEW.mailbox_id;
END;
`,
	// 8: each message's body_index row and sent date (RFC 5256 §2.2: the
	// Date: field, else the internal date) in its own row, so that SORT
	// by date reads the mailbox's messages alone, and THREAD and SEARCH
	// TEXT reach body_index by its integer key, not by the body's name
	// (the first SORT (DATE) of 100,000 messages after a restart took
	// 321 ms against Dovecot's 76, most of it that join). NULL: the body
	// has no index row (stored before migration 5, until `loft reindex`).
	// Triggers keep both, whichever path inserts a message or (re)indexes
	// a body, so a reindex's new row ids reach the messages at once.
	`
ALTER TABLE messages ADD COLUMN body_id INTEGER;
ALTER TABLE messages ADD COLUMN sent INTEGER;
UPDATE messages SET (body_id, sent) =
	(SELECT i.id, coalesce(i.sent, messages.internal_date) FROM body_index i WHERE i.blob = messages.blob);
CREATE TRIGGER messages_body_id AFTER INSERT ON messages WHEN NEW.body_id IS NULL
BEGIN
	UPDATE messages SET (body_id, sent) =
		(SELECT i.id, coalesce(i.sent, NEW.internal_date) FROM body_index i WHERE i.blob = NEW.blob)
	WHERE id = NEW.id;
END;
CREATE TRIGGER body_index_messages AFTER INSERT ON body_index
BEGIN
	UPDATE messages SET body_id = NEW.id, sent = coalesce(NEW.sent, internal_date) WHERE blob = NEW.blob;
END;
CREATE TRIGGER body_index_unmessages AFTER DELETE ON body_index
BEGIN
	UPDATE messages SET body_id = NULL, sent = NULL WHERE blob = OLD.blob AND body_id = OLD.id;
END;
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
