package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestSplitMboxSplitsUnescapesAndUsesCRLF(t *testing.T) {
	mbox := "" +
		"From alice@example.com Mon Jan  1 00:00:00 2024\n" +
		"Subject: one\n" +
		"\n" +
		"body\n" +
		"\n" +
		"From the start, a body line.\n" + // a From_ line: starts a new message (mbox rule)
		"\n" +
		"From bob@example.org Tue Jan  2 00:00:00 2024\n" +
		"Subject: two\r\n" + // CRLF input stays CRLF
		"\n" +
		">From here on, escaped.\n" +
		">>From stays once escaped.\n" +
		" From not at line start.\n" +
		"\n" +
		"From carol@example.net Wed Jan  3 00:00:00 2024\n" +
		"Subject: three\n" +
		"\n" +
		"no final newline"
	got := splitMbox([]byte(mbox))
	want := []string{
		"Subject: one\r\n\r\nbody\r\n",
		"",
		"Subject: two\r\n\r\nFrom here on, escaped.\r\n>>From stays once escaped.\r\n From not at line start.\r\n",
		"Subject: three\r\n\r\nno final newline\r\n",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d messages %q, want %d", len(got), got, len(want))
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("message %d:\n got %q\nwant %q", i, got[i], want[i])
		}
	}
}

func TestSplitMboxIgnoresTextBeforeFirstFromLine(t *testing.T) {
	got := splitMbox([]byte("junk\n\nFrom x Mon Jan  1 00:00:00 2024\nA: b\n\nbody\n"))
	if len(got) != 1 || string(got[0]) != "A: b\r\n\r\nbody\r\n" {
		t.Fatalf("got %q", got)
	}
	if got := splitMbox([]byte("no from line at all\n")); len(got) != 0 {
		t.Fatalf("got %q, want no messages", got)
	}
}

func TestDotStuff(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ".\r\n"},
		{"a\r\n", "a\r\n.\r\n"},
		{".\r\n", "..\r\n.\r\n"},
		{".a\r\nb.\r\n..\r\n", "..a\r\nb.\r\n...\r\n.\r\n"},
		{"x\r\n.\r\ny\r\n", "x\r\n..\r\ny\r\n.\r\n"}, // a lone dot must not end DATA early
		{"no newline", "no newline\r\n.\r\n"},
		{".no newline", "..no newline\r\n.\r\n"},
		{"a\r\n\r\n.", "a\r\n\r\n..\r\n.\r\n"},
	} {
		if got := string(dotStuff([]byte(tc.in))); got != tc.want {
			t.Errorf("dotStuff(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLoadMboxKeepsSizeOfUnstuffedMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.mbox")
	os.WriteFile(path, []byte("From x Mon Jan  1 00:00:00 2024\nA: b\n\n.dot\n"), 0o644)
	msgs, err := loadMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].size != len("A: b\r\n\r\n.dot\r\n") ||
		!bytes.Equal(msgs[0].wire, []byte("A: b\r\n\r\n..dot\r\n.\r\n")) {
		t.Fatalf("got %+v", msgs)
	}
	os.WriteFile(path, []byte("not an mbox\n"), 0o644)
	if _, err := loadMbox(path); err == nil {
		t.Fatal("loadMbox of a file without From_ lines: no error")
	}
}
