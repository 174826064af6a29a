// Package blob keeps message bodies on disk: one immutable file per body,
// written once and fsync'd before anyone may refer to it.
//
// Layout: DIR/<bucket>/<id>. An id is 32 hex digits: 8 naming the hour it
// was written in (its bucket directory) and 24 random. Bodies written at
// about the same time share a directory, so the directory fsync that makes
// their names durable is shared too: Commit makes the file's content
// durable, and SyncDirs, called once per group commit for all the bodies in
// it, makes their directory entries durable. The metadata that refers to a
// body is committed only after both, so a crash leaves at worst an
// unreferenced (possibly partial) file, never a reference to a missing or
// partial one; Sweep removes such files at the next start.
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
	"slices"
	"strings"
	"sync"
	"time"
)

// idLen is the length of a blob id in hex digits; bucketLen of them name
// its directory. 96 random bits make ids that never collide and need no
// coordination between writers or nodes.
const (
	idLen     = 32
	bucketLen = 8
)

// Store is a directory of message bodies.
type Store struct {
	dir string

	mu   sync.Mutex
	dirs map[string]*os.File // open bucket directories, for fsync
}

// Open returns the store rooted at dir, creating it if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blob: create %s: %w", dir, err)
	}
	return &Store{dir: dir, dirs: make(map[string]*os.File)}, nil
}

// Close releases the directories held open for fsync.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for b, d := range s.dirs {
		d.Close()
		delete(s.dirs, b)
	}
	return nil
}

// Dir is the store's root directory.
func (s *Store) Dir() string { return s.dir }

// Path is the file of the blob with the given id.
func (s *Store) Path(id string) string {
	return filepath.Join(s.dir, id[:bucketLen], id)
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
	var b [(idLen - bucketLen) / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("blob: random id: %w", err)
	}
	id := fmt.Sprintf("%08x%s", uint32(time.Now().Unix()/3600), hex.EncodeToString(b[:]))
	f, err := os.OpenFile(s.Path(id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err = s.makeBucket(id[:bucketLen]); err == nil {
			f, err = os.OpenFile(s.Path(id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("blob: create %s: %w", id, err)
	}
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(f)
	return &Writer{ID: id, s: s, f: f, bw: bw}, nil
}

// makeBucket creates a bucket directory, durably: a body's directory entry
// is only as durable as the directory's own entry in its parent.
func (s *Store) makeBucket(bucket string) error {
	if err := os.Mkdir(filepath.Join(s.dir, bucket), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(s.dir)
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

// Commit makes the body's content durable (flush and fsync). Its name
// becomes durable with SyncDirs, which the caller must call before it
// commits anything that refers to the body.
func (w *Writer) Commit() error {
	if w.done {
		return fmt.Errorf("blob: commit %s: already finished", w.ID)
	}
	w.done = true
	err := w.bw.Flush()
	w.release()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(w.s.Path(w.ID))
		return fmt.Errorf("blob: commit %s: %w", w.ID, err)
	}
	return nil
}

// SyncDirs fsyncs, once each, the directories holding the given bodies, so
// that their names survive a crash. A group commit calls it once for all its
// new bodies, which mostly share one directory.
func (s *Store) SyncDirs(ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var done []string
	for _, id := range ids {
		if !ValidID(id) {
			return fmt.Errorf("blob: sync: invalid id %q", id)
		}
		bucket := id[:bucketLen]
		if slices.Contains(done, bucket) {
			continue
		}
		done = append(done, bucket)
		d, err := s.dirFile(bucket)
		if err == nil {
			err = d.Sync()
		}
		if err != nil {
			return fmt.Errorf("blob: sync directory %s: %w", bucket, err)
		}
	}
	return nil
}

// dirFile returns the bucket directory, kept open: opening it for every
// group commit would cost a path lookup each time. s.mu is held.
func (s *Store) dirFile(bucket string) (*os.File, error) {
	if d, ok := s.dirs[bucket]; ok {
		return d, nil
	}
	d, err := os.Open(filepath.Join(s.dir, bucket))
	if err != nil {
		return nil, err
	}
	// Only the current hour's bucket receives new bodies; drop the others.
	for b, old := range s.dirs {
		old.Close()
		delete(s.dirs, b)
	}
	s.dirs[bucket] = d
	return d, nil
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
	os.Remove(w.s.Path(w.ID))
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

// Sweep removes every body for which referenced returns false: bodies
// (complete or not) written for a delivery whose metadata never committed,
// or whose removal after an expunge was cut short. It must run only while no writer is active (at
// start-up, under the data directory's lock). It returns the number of
// files removed.
func (s *Store) Sweep(referenced func(id string) (bool, error)) (int, error) {
	subs, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("blob: sweep %s: %w", s.dir, err)
	}
	removed := 0
	for _, sub := range subs {
		if !sub.IsDir() || !isBucket(sub.Name()) {
			continue
		}
		dir := filepath.Join(s.dir, sub.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			return removed, fmt.Errorf("blob: sweep %s: %w", dir, err)
		}
		for _, e := range entries {
			name := e.Name()
			if !ValidID(name) {
				continue // not ours; leave it for an operator
			}
			ok, err := referenced(name)
			if err != nil {
				return removed, fmt.Errorf("blob: sweep: %w", err)
			}
			if !ok {
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
		if !sub.IsDir() || !isBucket(sub.Name()) {
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

func isBucket(name string) bool {
	return len(name) == bucketLen && ValidID(name+strings.Repeat("0", idLen-bucketLen))
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
