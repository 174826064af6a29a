// Package store is Loft's mail model and its storage: accounts, mailboxes,
// messages, flags, UIDs, modseqs and quota, kept in SQLite (metadata) and in
// the blob store (bodies), plus the per-account change feed that live
// sessions subscribe to.
//
// Protocol packages call the store and map its typed errors (ErrOverQuota,
// ErrNoAccount, …) to their own words; the store never formats protocol
// text. All writes go through one writer goroutine that batches concurrent
// requests into a single durable commit (group commit); reads run in
// parallel on their own connections (WAL).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"loft/internal/blob"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Typed outcomes that protocols map to their own replies.
var (
	ErrNoAccount     = errors.New("no such account")
	ErrAccountExists = errors.New("account already exists")
	ErrNoMailbox     = errors.New("no such mailbox")
	ErrMailboxExists = errors.New("mailbox already exists")
	ErrOverQuota     = errors.New("mailbox full: over quota")
	ErrNoMessage     = errors.New("no such message")
	ErrClosed        = errors.New("store closed")
)

// Unlimited is the quota of an account without a storage limit.
const Unlimited int64 = -1

// DefaultMailboxes exist from an account's creation, with their RFC 6154
// special-use attributes.
var DefaultMailboxes = []struct{ Name, SpecialUse string }{
	{"INBOX", ""},
	{"Sent", `\Sent`},
	{"Drafts", `\Drafts`},
	{"Trash", `\Trash`},
	{"Junk", `\Junk`},
	{"Archive", `\Archive`},
}

// Options configure Open.
type Options struct {
	// Dir is the data directory: loft.db and blobs/ live in it.
	Dir string
	// DefaultQuota applies to accounts without a quota of their own, in
	// bytes; Unlimited for none.
	DefaultQuota int64
	// Logger receives the store's log lines; nil discards them.
	Logger *slog.Logger
	// ObserveCommit, if set, is told how long each group commit took,
	// from BEGIN to the end of COMMIT (fsyncs included), for metrics. It
	// runs on the writer's goroutine, so it must be quick.
	ObserveCommit func(time.Duration)
}

// Store is an open data directory. It is safe for concurrent use.
type Store struct {
	dir          string
	defaultQuota int64
	log          *slog.Logger
	db           *sql.DB // readers, in parallel
	wdb          *sql.DB // the writer's single connection
	blobs        *blob.Store
	writer       *writer
	feed         *feed
	index        *index
	sorts        *sortCache    // SORT and THREAD keys (sortcache.go)
	texts        *textCoverage // what the text index covers, per mailbox (textcache.go)
	structs      *structCache  // decoded structures of bodies (structcache.go)
	reads        readStmts     // prepared reads (reads.go)
	text         textIndexer   // fills the full-text index after deliveries (fts.go)
	observe      func(time.Duration)
}

// Open opens (creating if needed) the store in opts.Dir and brings its
// schema up to date. It does not sweep leftovers of a crash: the server
// calls Recover once at start-up, when it holds the data directory.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("store: open: no data directory")
	}
	// Mail and password hashes are for Loft's user alone: 0700 and 0600.
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path := filepath.Join(opts.Dir, "loft.db")
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	// synchronous=FULL: a commit is on stable storage when it returns.
	// busy_timeout: the CLI writes to the same database while serve runs.
	// mmap_size: pages read in place, not pread into a 2 MB cache each time (half of a 100,000-message SEARCH or SORT).
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=busy_timeout(30000)&_pragma=foreign_keys(1)&_pragma=mmap_size(1073741824)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(0)
	wdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	if err := migrate(ctx, wdb); err != nil {
		db.Close()
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	blobs, err := blob.Open(filepath.Join(opts.Dir, "blobs"))
	if err != nil {
		db.Close()
		wdb.Close()
		return nil, fmt.Errorf("store: open: %w", err)
	}
	s := &Store{
		dir:          opts.Dir,
		defaultQuota: opts.DefaultQuota,
		log:          log,
		db:           db,
		wdb:          wdb,
		blobs:        blobs,
		feed:         newFeed(),
		index:        newIndex(),
		observe:      opts.ObserveCommit,
		sorts:        newSortCache(),
		texts:        newTextCoverage(),
		structs:      newStructCache(),
	}
	s.writer, err = startWriter(s)
	if err != nil {
		db.Close()
		wdb.Close()
		return nil, fmt.Errorf("store: open: %w", err)
	}
	return s, nil
}

// createPrivate creates the database file with mode 0600 before SQLite
// opens it (SQLite would use 0644 less the umask), or narrows an existing
// one to 0600. SQLite gives its -wal and -shm files the database file's
// mode, so they are private too.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return f.Chmod(fi.Mode().Perm() &^ 0o077)
	}
	return nil
}

// Close waits for queued writes to finish and closes the database.
func (s *Store) Close() error {
	s.text.stop()
	s.writer.stop()
	s.blobs.Close()
	s.reads.close()
	err := s.wdb.Close()
	if err2 := s.db.Close(); err == nil {
		err = err2
	}
	return err
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

// normAddress is the key under which an account is stored: login names are
// the full address, case-insensitive.
func normAddress(addr string) string {
	return strings.ToLower(strings.TrimSpace(addr))
}

// Recover removes what an interrupted run left behind: partial bodies and
// bodies whose metadata never committed (or whose removal was cut short).
// Nothing half-written was ever visible; this only frees the space. It must
// run before any delivery starts.
func (s *Store) Recover(ctx context.Context) (removed int, err error) {
	referenced, err := s.referencedBlobs(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: recover: %w", err)
	}
	removed, err = s.blobs.Sweep(func(id string) (bool, error) {
		_, ok := referenced[id]
		return ok, nil
	})
	if err != nil {
		return removed, fmt.Errorf("store: recover: %w", err)
	}
	if removed > 0 {
		s.log.Info("removed leftovers of an interrupted write", "files", removed)
	}
	return removed, nil
}

// referencedBlobs is the set of every body the metadata refers to, read in
// one query: a lookup per file on disk made a start with 100k bodies take
// half a minute. Read before the walk, the set is complete for it, since no
// delivery runs during Recover.
func (s *Store) referencedBlobs(ctx context.Context) (map[string]struct{}, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM bodies`).Scan(&n); err != nil {
		return nil, err
	}
	set := make(map[string]struct{}, n)
	rows, err := s.db.QueryContext(ctx, `SELECT blob FROM bodies`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		set[id] = struct{}{}
	}
	return set, rows.Err()
}

func unixTime(t time.Time) int64 {
	if t.IsZero() {
		t = time.Now()
	}
	return t.Unix()
}
