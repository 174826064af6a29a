// Package blob keeps message bodies on disk: one immutable file per body,
// written once and fsync'd (file and directory) before anyone may refer to it.
//
// Layout: DIR/ab/abcdef0123456789abcdef0123456789 where "ab" is the first two
// hex digits of the id. A body being written lives at the same path with the
// suffix ".tmp" until it is complete and synced; Sweep removes such leftovers.
// The metadata that refers to a blob is committed only after Create's Commit
// returned, so a crash leaves at worst an unreferenced file, never a
// reference to a missing or partial one.
package blob

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// idLen is the length of a blob id in hex digits: 128 random bits, so ids
// never collide and need no coordination between writers or nodes.
const idLen = 32

// Store is a directory of message bodies.
type Store struct {
	dir string
}

// Open returns the store rooted at dir, creating it if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("blob: create %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

// Dir is the store's root directory.
func (s *Store) Dir() string { return s.dir }

// Path is the file of the blob with the given id.
func (s *Store) Path(id string) string {
	return filepath.Join(s.dir, id[:2], id)
}

// ValidID reports whether id has the form of a blob id, so that a corrupt
// database row can never name a path outside the store.
func ValidID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// writers recycles the write buffers of new bodies.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// Writer receives one new body. Write to it, then Commit or Abort.
type Writer struct {
	ID   string
	s    *Store
	f    *os.File
	bw   *bufio.Writer
	size int64
	done bool
}

// Create starts a new blob.
func (s *Store) Create() (*Writer, error) {
	var b [idLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("blob: random id: %w", err)
	}
	id := hex.EncodeToString(b[:])
	sub := filepath.Join(s.dir, id[:2])
	f, err := os.OpenFile(s.Path(id)+".tmp", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(sub, 0o750); err == nil {
			// The new directory's own entry must be durable too.
			err = syncDir(s.dir)
		}
		if err == nil {
			f, err = os.OpenFile(s.Path(id)+".tmp", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("blob: create %s: %w", id, err)
	}
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(f)
	return &Writer{ID: id, s: s, f: f, bw: bw}, nil
}

// Write appends p to the body.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.bw.Write(p)
	w.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("blob: write %s: %w", w.ID, err)
	}
	return n, nil
}

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.size }

// Commit makes the body durable under its final name: the file is flushed
// and fsync'd, renamed into place, and the directory fsync'd, in that order,
// so that once Commit returns the body survives a crash or power loss.
func (w *Writer) Commit() error {
	if w.done {
		return fmt.Errorf("blob: commit %s: already finished", w.ID)
	}
	w.done = true
	final := w.s.Path(w.ID)
	err := w.bw.Flush()
	w.release()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(final+".tmp", final)
	}
	if err == nil {
		err = syncDir(filepath.Dir(final))
	}
	if err != nil {
		os.Remove(final + ".tmp")
		os.Remove(final)
		return fmt.Errorf("blob: commit %s: %w", w.ID, err)
	}
	return nil
}

// Abort discards an unfinished body. It is safe to call after Commit (it
// then does nothing), so callers can defer it.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.release()
	w.f.Close()
	os.Remove(w.s.Path(w.ID) + ".tmp")
}

func (w *Writer) release() {
	w.bw.Reset(nil)
	writers.Put(w.bw)
	w.bw = nil
}

// Open opens a body for reading.
func (s *Store) Open(id string) (*os.File, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("blob: open: invalid id %q", id)
	}
	f, err := os.Open(s.Path(id))
	if err != nil {
		return nil, fmt.Errorf("blob: open %s: %w", id, err)
	}
	return f, nil
}

// Remove deletes a body. A body that is already gone is not an error:
// removal after an expunge may be retried after a crash.
func (s *Store) Remove(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("blob: remove: invalid id %q", id)
	}
	if err := os.Remove(s.Path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: remove %s: %w", id, err)
	}
	return nil
}

// Sweep removes leftovers of interrupted writes (".tmp" files) and every
// committed blob for which referenced returns false: bodies written for a
// delivery whose metadata never committed, or whose removal after an
// expunge was cut short. It must run only while no writer is active (at
// start-up, under the data directory's lock). It returns the number of
// files removed.
func (s *Store) Sweep(referenced func(id string) (bool, error)) (int, error) {
	subs, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("blob: sweep %s: %w", s.dir, err)
	}
	removed := 0
	for _, sub := range subs {
		if !sub.IsDir() || len(sub.Name()) != 2 {
			continue
		}
		dir := filepath.Join(s.dir, sub.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			return removed, fmt.Errorf("blob: sweep %s: %w", dir, err)
		}
		for _, e := range entries {
			name := e.Name()
			drop := strings.HasSuffix(name, ".tmp")
			if !drop {
				if !ValidID(name) {
					continue // not ours; leave it for an operator
				}
				ok, err := referenced(name)
				if err != nil {
					return removed, fmt.Errorf("blob: sweep: %w", err)
				}
				drop = !ok
			}
			if drop {
				if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return removed, fmt.Errorf("blob: sweep: %w", err)
				}
				removed++
			}
		}
	}
	return removed, nil
}

// IDs calls fn for every committed blob, for consistency checks.
func (s *Store) IDs(fn func(id string) error) error {
	subs, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("blob: list %s: %w", s.dir, err)
	}
	for _, sub := range subs {
		if !sub.IsDir() || len(sub.Name()) != 2 {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(s.dir, sub.Name()))
		if err != nil {
			return fmt.Errorf("blob: list: %w", err)
		}
		for _, e := range entries {
			if ValidID(e.Name()) {
				if err := fn(e.Name()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// copyBufs recycles CopyCRLF's read buffers: deliveries run all the time
// and a fresh 32 KiB buffer each would be garbage at once.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// CopyCRLF copies src to dst converting bare LF line endings to CRLF, so
// that every stored body has the line endings IMAP and POP3 serve, and its
// size is the size they announce. Lines already ending in CRLF pass
// unchanged, so SMTP-delivered mail is stored byte for byte.
func CopyCRLF(dst io.Writer, src io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var written int64
	prevCR := false
	write := func(p []byte) error {
		n, err := dst.Write(p)
		written += int64(n)
		return err
	}
	for {
		n, rerr := src.Read(buf)
		chunk := buf[:n]
		for len(chunk) > 0 {
			i := bytes.IndexByte(chunk, '\n')
			if i < 0 {
				if err := write(chunk); err != nil {
					return written, err
				}
				prevCR = chunk[len(chunk)-1] == '\r'
				break
			}
			bare := (i == 0 && !prevCR) || (i > 0 && chunk[i-1] != '\r')
			if bare {
				if err := write(chunk[:i]); err != nil {
					return written, err
				}
				if err := write(crlf); err != nil {
					return written, err
				}
			} else if err := write(chunk[:i+1]); err != nil {
				return written, err
			}
			prevCR = false
			chunk = chunk[i+1:]
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

var crlf = []byte("\r\n")
