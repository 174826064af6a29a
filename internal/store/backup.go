// Online backup and restore (docs/OPERATIONS.md tells the why at length).
//
// A backup directory holds generations, DIR/<UTC time>/, each a complete
// and self-contained copy of the store as of one moment: loft.db (a
// snapshot taken with VACUUM INTO), the bodies it refers to under blobs/,
// the data directory's other files (the self-signed certificate) under
// files/, and a MANIFEST. A body unchanged since the previous generation is
// a hard link to that generation's file, so a generation costs only its
// new bodies, and deleting any generation (rm -r) leaves the others whole.
//
// Consistency beside a running server: bodies are immutable and a body's
// file exists from before its row is committed until after its row's
// removal is committed, so every body in a snapshot exists when the
// snapshot is taken; but an expunge committed after the snapshot may
// delete the file before it is saved. Hence: (1) first every body the
// database has now is hard-linked (or copied) into the generation, which
// pins it: a later removal unlinks only the data directory's name; (2)
// then the snapshot is taken; (3) then the bodies the snapshot has that
// step 1 did not (delivered meanwhile) are saved. Should one of those
// have vanished already, the snapshot refers to a body it cannot have, so
// it is discarded and (2)-(3) repeat: the new snapshot no longer has the
// expunged message, and everything saved so far stays pinned. Only the
// few bodies delivered and expunged within a moment can cause a retry, so
// the loop ends at once in practice; it is bounded all the same. Finally
// bodies pinned in (1) but expunged before the snapshot are dropped, so
// the generation is exactly the snapshot.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"loft/internal/blob"
)

// backupAttempts bounds the snapshots one backup takes (see the file
// comment): a retry needs a body delivered and expunged within a moment,
// so five in a row means something else is wrong.
const backupAttempts = 5

// Names inside a backup generation.
const (
	backupDB       = "loft.db"
	backupBlobs    = "blobs"
	backupFiles    = "files"
	backupManifest = "MANIFEST"
	partialSuffix  = ".partial" // a generation being written, or abandoned
	backupTimeForm = "20060102T150405Z"
)

// generationName matches a complete generation's directory name.
var generationName = regexp.MustCompile(`^(\d{8}T\d{6}Z)(?:-(\d+))?$`)

// notBackedUp are the data directory's entries that a generation does not
// copy as files: the database and bodies (saved their own way), SQLite's
// companions of the live database, and the server's lock.
var notBackedUp = []string{"loft.db", "loft.db-wal", "loft.db-shm", "loft.db-journal", "serve.lock", "blobs"}

// BackupOptions configure Backup.
type BackupOptions struct {
	// Dir is the backup directory; it is created if need be. Each backup
	// adds a generation to it.
	Dir string

	// Test hooks, called around each snapshot, and a switch to copy
	// bodies as from another filesystem.
	beforeSnapshot, afterSnapshot func(attempt int)
	copy                          bool
}

// BackupResult describes a finished backup.
type BackupResult struct {
	Dir   string    // the new generation's directory
	Taken time.Time // when its snapshot was taken: what it holds is the store as of then
	// Sizes of the snapshot.
	Accounts, Mailboxes, Messages, Bodies int64
	// Where the bodies came from.
	Reused      int   // hard links to the previous generation's files
	Linked      int   // hard links to the data directory's files (same filesystem)
	Copied      int   // copied from the data directory
	CopiedBytes int64 // bytes copied
	// Snapshots is how many snapshots were taken: more than one when a
	// body of one was expunged before it could be saved.
	Snapshots int
}

// Backup writes a new generation of the store into opts.Dir while the
// store stays in use (see the file comment). Only one backup at a time
// writes to a backup directory.
func (s *Store) Backup(ctx context.Context, opts BackupOptions) (*BackupResult, error) {
	res, err := s.backup(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("store: backup to %s: %w", opts.Dir, err)
	}
	return res, nil
}

func (s *Store) backup(ctx context.Context, opts BackupOptions) (*BackupResult, error) {
	root, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	data, err := filepath.Abs(s.dir)
	if err != nil {
		return nil, err
	}
	if within(root, data) || within(data, root) {
		return nil, fmt.Errorf("the backup directory and the data directory %s must not contain one another", data)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	unlock, err := lockFile(filepath.Join(root, ".lock"), "another backup is writing to "+root)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := removePartial(root); err != nil {
		return nil, err
	}
	gens, err := BackupGenerations(root)
	if err != nil {
		return nil, err
	}
	name, err := newGenerationName(root, time.Now())
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(root, name+partialSuffix)
	if err := os.MkdirAll(filepath.Join(tmp, backupBlobs), 0o700); err != nil {
		return nil, err
	}
	p := &placer{s: s, gen: tmp, placed: map[string]bool{}, dirs: map[string]bool{}, res: &BackupResult{}, copyOnly: opts.copy}
	if len(gens) > 0 {
		p.prev = gens[len(gens)-1]
	}

	// (1) Pin every body the store has now.
	now, err := s.bodySizes(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range now {
		if err := p.place(b.id, b.size); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err // a vanished one was expunged: not needed
		}
	}
	// (2) and (3): snapshot, then save what is new in it, until a
	// snapshot's bodies are all saved.
	dbPath := filepath.Join(tmp, backupDB)
	var snap *snapshot
	for attempt := 1; ; attempt++ {
		if attempt > backupAttempts {
			return nil, fmt.Errorf("bodies of %d snapshots in a row were expunged before they could be saved", backupAttempts)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p.res.Snapshots = attempt
		if err := os.Remove(dbPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if opts.beforeSnapshot != nil {
			opts.beforeSnapshot(attempt)
		}
		// A consistent snapshot of the WAL database, read while writers
		// go on (https://sqlite.org/lang_vacuum.html#vacuuminto).
		if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, dbPath); err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		p.res.Taken = time.Now()
		if opts.afterSnapshot != nil {
			opts.afterSnapshot(attempt)
		}
		snap, err = readSnapshot(ctx, dbPath)
		if err != nil {
			return nil, err
		}
		vanished := false
		for _, b := range snap.bodies {
			err := p.place(b.id, b.size)
			if errors.Is(err, fs.ErrNotExist) {
				vanished = true
				continue
			}
			if err != nil {
				return nil, err
			}
		}
		if !vanished {
			break
		}
	}
	// Drop what was pinned but expunged before the snapshot.
	inSnap := make(map[string]bool, len(snap.bodies))
	for _, b := range snap.bodies {
		inSnap[b.id] = true
	}
	for id := range p.placed {
		if !inSnap[id] {
			if err := os.Remove(p.path(id)); err != nil {
				return nil, err
			}
		}
	}
	if err := copyTree(s.dir, filepath.Join(tmp, backupFiles), notBackedUp); err != nil {
		return nil, err
	}

	res := p.res
	res.Accounts, res.Mailboxes, res.Messages = snap.accounts, snap.mailboxes, snap.messages
	res.Bodies = int64(len(snap.bodies))
	manifest := fmt.Sprintf("loft backup\ntaken %s\nschema %d\naccounts %d\nmailboxes %d\nmessages %d\nbodies %d\n",
		res.Taken.UTC().Format(time.RFC3339), snap.schema, res.Accounts, res.Mailboxes, res.Messages, res.Bodies)
	if err := writeFileSync(filepath.Join(tmp, backupManifest), []byte(manifest)); err != nil {
		return nil, err
	}
	// Everything on stable storage before the generation is complete:
	// VACUUM INTO does not fsync its output, and links need their
	// directories synced.
	if err := syncPath(dbPath); err != nil {
		return nil, err
	}
	for dir := range p.dirs {
		if err := syncPath(dir); err != nil {
			return nil, err
		}
	}
	for _, dir := range []string{filepath.Join(tmp, backupBlobs), tmp} {
		if err := syncPath(dir); err != nil {
			return nil, err
		}
	}
	final := filepath.Join(root, name)
	if err := os.Rename(tmp, final); err != nil {
		return nil, err
	}
	if err := syncPath(root); err != nil {
		return nil, err
	}
	res.Dir = final
	return res, nil
}

// BackupGenerations lists the complete generations in a backup directory,
// oldest first.
func BackupGenerations(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	type gen struct {
		base string
		n    int
		name string
	}
	var gens []gen
	for _, e := range entries {
		m := generationName.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, e.Name(), backupDB)); err != nil {
			continue
		}
		n := 1
		if m[2] != "" {
			n, _ = strconv.Atoi(m[2])
		}
		gens = append(gens, gen{m[1], n, e.Name()})
	}
	slices.SortFunc(gens, func(a, b gen) int {
		return cmp.Or(strings.Compare(a.base, b.base), cmp.Compare(a.n, b.n))
	})
	out := make([]string, len(gens))
	for i, g := range gens {
		out[i] = filepath.Join(root, g.name)
	}
	return out, nil
}

// newGenerationName names a generation after the time, with a suffix if a
// generation of the same second exists.
func newGenerationName(root string, t time.Time) (string, error) {
	base := t.UTC().Format(backupTimeForm)
	for n := 1; n < 1000; n++ {
		name := base
		if n > 1 {
			name = fmt.Sprintf("%s-%d", base, n)
		}
		if _, err := os.Lstat(filepath.Join(root, name)); errors.Is(err, fs.ErrNotExist) {
			return name, nil
		}
	}
	return "", fmt.Errorf("too many generations named %s", base)
}

// removePartial removes generations that a backup left unfinished.
func removePartial(root string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), partialSuffix); ok && generationName.MatchString(name) {
			if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

type bodySize struct {
	id   string
	size int64
}

// bodySizes lists the bodies the store has now.
func (s *Store) bodySizes(ctx context.Context) ([]bodySize, error) {
	return querySizes(ctx, s.db)
}

func querySizes(ctx context.Context, db *sql.DB) ([]bodySize, error) {
	rows, err := db.QueryContext(ctx, `SELECT blob, size FROM bodies`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []bodySize
	for rows.Next() {
		var b bodySize
		if err := rows.Scan(&b.id, &b.size); err != nil {
			return nil, err
		}
		if !blob.ValidID(b.id) {
			return nil, fmt.Errorf("body row %q does not have the form of a body id (run loft check)", b.id)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// snapshot is what a backup's database holds.
type snapshot struct {
	bodies                        []bodySize
	accounts, mailboxes, messages int64
	schema                        int
}

func readSnapshot(ctx context.Context, path string) (*snapshot, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	snap := &snapshot{}
	if snap.bodies, err = querySizes(ctx, db); err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	err = db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM mailboxes),
		(SELECT count(*) FROM messages)`).Scan(&snap.accounts, &snap.mailboxes, &snap.messages)
	if err == nil {
		err = db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&snap.schema)
	}
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	return snap, nil
}

// placer saves bodies into a generation: a hard link to the previous
// generation's file if it has the body, else a hard link to the data
// directory's file, else (another filesystem) a copy.
type placer struct {
	s        *Store
	gen      string // the generation being written
	prev     string // the previous generation, or ""
	placed   map[string]bool
	dirs     map[string]bool // directories created, to fsync
	copyOnly bool            // linking from the data directory failed once: do not try again
	res      *BackupResult
}

// backupBlobPath is where a body lives in a generation: spread over 256
// directories by the id's last (random) hex digits, whatever layout the
// data directory uses.
func backupBlobPath(id string) string {
	return filepath.Join(backupBlobs, id[len(id)-2:], id)
}

func (p *placer) path(id string) string { return filepath.Join(p.gen, backupBlobPath(id)) }

// place saves one body. It returns an error satisfying fs.ErrNotExist
// when the body is gone from the data directory.
func (p *placer) place(id string, size int64) error {
	if p.placed[id] {
		return nil
	}
	dst := p.path(id)
	if dir := filepath.Dir(dst); !p.dirs[dir] {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		p.dirs[dir] = true
	}
	if p.prev != "" {
		src := filepath.Join(p.prev, backupBlobPath(id))
		if fi, err := os.Stat(src); err == nil && fi.Size() == size && os.Link(src, dst) == nil {
			p.placed[id] = true
			p.res.Reused++
			return nil
		}
	}
	src := p.s.blobs.Path(id)
	if !p.copyOnly {
		err := os.Link(src, dst)
		switch {
		case err == nil:
			p.placed[id] = true
			p.res.Linked++
			return nil
		case errors.Is(err, fs.ErrNotExist):
			return err
		}
		// EXDEV (another filesystem), EPERM (fs.protected_hardlinks), …
		p.copyOnly = true
	}
	n, err := copyFile(src, dst, 0o600)
	if err != nil {
		return err
	}
	p.placed[id] = true
	p.res.Copied++
	p.res.CopiedBytes += n
	return nil
}

// copyFile copies src to a new file dst, durably. An open file stays
// readable when its name is removed, so a copy that started is complete.
func copyFile(src, dst string, perm fs.FileMode) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return n, err
	}
	return n, nil
}

// copyTree copies the regular files under src (but the top-level names in
// skip) to dst, keeping their permissions. dst is created only if there is
// something to copy.
func copyTree(src, dst string, skip []string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		if !strings.Contains(rel, string(filepath.Separator)) && slices.Contains(skip, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // directories come with their files; no links, sockets
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return err
		}
		if _, err := copyFile(path, target, fi.Mode().Perm()); err != nil {
			return err
		}
		return syncPath(filepath.Dir(target))
	})
}

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// From is a backup directory (its newest generation is restored) or
	// one generation in it.
	From string
	// Dir is the data directory to rebuild: absent, or empty but for a
	// filesystem's lost+found and the server's lock file.
	Dir string

	copy bool // test switch: copy bodies as from another filesystem
}

// RestoreResult describes a finished restore.
type RestoreResult struct {
	From           string // the generation restored
	Bodies         int
	Linked, Copied int
	// Check is the check of the restored store.
	Check *Report
}

// Restore rebuilds a data directory from a backup generation: the same
// accounts, mailboxes, UIDVALIDITY, UIDs, modseqs and flags, so that IMAP
// and POP3 clients see no change. Bodies are hard-linked from the backup
// when it is on the same filesystem (they are never modified), else
// copied; the database is always copied. The database comes last, so an
// interrupted restore leaves no store that looks complete. The caller
// must keep a server off the directory meanwhile.
func Restore(ctx context.Context, opts RestoreOptions) (*RestoreResult, error) {
	res, err := restore(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("store: restore %s: %w", opts.From, err)
	}
	return res, nil
}

func restore(ctx context.Context, opts RestoreOptions) (*RestoreResult, error) {
	gen := opts.From
	if _, err := os.Stat(filepath.Join(gen, backupDB)); err != nil {
		gens, err := BackupGenerations(opts.From)
		if err != nil {
			return nil, err
		}
		if len(gens) == 0 {
			return nil, errors.New("no complete backup generation in it")
		}
		gen = gens[len(gens)-1]
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		if e.Name() != "lost+found" && e.Name() != "serve.lock" {
			return nil, fmt.Errorf("data directory %s is not empty (it has %s): restore only into a new or empty one", dir, e.Name())
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	res := &RestoreResult{From: gen}
	done := false
	defer func() {
		if !done { // leave the directory as empty as it was
			for _, name := range []string{"loft.db.restoring", "blobs"} {
				os.RemoveAll(filepath.Join(dir, name))
			}
			if fe, err := os.ReadDir(filepath.Join(gen, backupFiles)); err == nil {
				for _, e := range fe {
					os.RemoveAll(filepath.Join(dir, e.Name()))
				}
			}
		}
	}()

	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		return nil, err
	}
	defer blobs.Close()
	dirs := map[string]bool{blobs.Dir(): true, dir: true}
	copyOnly := opts.copy
	err = filepath.WalkDir(filepath.Join(gen, backupBlobs), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !blob.ValidID(d.Name()) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		dst := blobs.Path(d.Name())
		if sub := filepath.Dir(dst); !dirs[sub] {
			if err := os.MkdirAll(sub, 0o700); err != nil {
				return err
			}
			dirs[sub] = true
		}
		res.Bodies++
		if !copyOnly {
			if os.Link(path, dst) == nil {
				res.Linked++
				return nil
			}
			copyOnly = true
		}
		if _, err := copyFile(path, dst, 0o600); err != nil {
			return err
		}
		res.Copied++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(gen, backupFiles)); err == nil {
		if err := copyTree(filepath.Join(gen, backupFiles), dir, nil); err != nil {
			return nil, err
		}
	}
	for d := range dirs {
		if err := syncPath(d); err != nil {
			return nil, err
		}
	}
	tmp := filepath.Join(dir, "loft.db.restoring")
	if _, err := copyFile(filepath.Join(gen, backupDB), tmp, 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "loft.db")); err != nil {
		return nil, err
	}
	if err := syncPath(dir); err != nil {
		return nil, err
	}
	done = true

	s, err := Open(ctx, Options{Dir: dir, DefaultQuota: Unlimited})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if res.Check, err = s.CheckWith(ctx, CheckOptions{Stopped: true}); err != nil {
		return nil, err
	}
	return res, nil
}

// within reports whether path is dir or lies below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// lockFile takes an exclusive lock on path (created if need be), or fails
// at once with busy as the message; unlock releases it.
func lockFile(path, busy string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, errors.New(busy)
	}
	return func() { f.Close() }, nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncPath fsyncs a file or directory.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
