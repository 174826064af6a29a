package blob

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestCopyCRLF(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"a\r\nb\r\n", "a\r\nb\r\n"},
		{"a\nb\n", "a\r\nb\r\n"},
		{"\n\n", "\r\n\r\n"},
		{"mixed\r\nbare\nend", "mixed\r\nbare\r\nend"},
		{"cr alone\rx\n", "cr alone\rx\r\n"},
		{"\r\n", "\r\n"},
	}
	for _, c := range cases {
		for name, r := range map[string]io.Reader{
			"whole":    strings.NewReader(c.in),
			"bytewise": iotest.OneByteReader(strings.NewReader(c.in)),
		} {
			var out bytes.Buffer
			n, err := CopyCRLF(&out, r)
			if err != nil || out.String() != c.want || n != int64(len(c.want)) {
				t.Errorf("%s %q: got %q (%d, %v), want %q", name, c.in, out.String(), n, err, c.want)
			}
		}
	}
}

func TestCommitAbortSweep(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.Create()
	w.Write([]byte("kept"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncDirs([]string{w.ID, w.ID}); err != nil {
		t.Fatal(err)
	}
	w.Abort() // harmless after Commit
	f, err := s.Open(w.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "kept" {
		t.Errorf("read %q", b)
	}
	a, _ := s.Create()
	a.Write([]byte("gone"))
	a.Abort()
	if _, err := os.Stat(s.Path(a.ID)); !os.IsNotExist(err) {
		t.Errorf("aborted write left a file: %v", err)
	}
	orphan, _ := s.Create()
	orphan.Write([]byte("orphan"))
	orphan.Commit()
	partial, _ := s.Create()
	partial.Write(bytes.Repeat([]byte("p"), 100<<10))
	n, err := s.Sweep(func(id string) (bool, error) { return id == w.ID, nil })
	if err != nil || n != 2 {
		t.Errorf("sweep removed %d (%v), want 2", n, err)
	}
	left, _ := filepath.Glob(filepath.Join(s.Dir(), "*", "*"))
	if len(left) != 1 || filepath.Base(left[0]) != w.ID {
		t.Errorf("left %v", left)
	}
	if _, err := s.Open("../../etc/passwd"); err == nil {
		t.Error("opened a path outside the store")
	}
}
