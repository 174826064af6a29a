package imap

import (
	"bytes"
	"strings"
	"testing"
)

// A writer holds a buffer only while it has something to send: park gives
// it back once all is flushed, and the next write takes one again.
func TestWriterParksItsBufferWhenIdle(t *testing.T) {
	var out bytes.Buffer
	w := newWriter(&out, false, nil)
	if w.bw != nil {
		t.Fatal("a new writer holds a buffer")
	}
	w.WriteString("* OK hello\r\n")
	w.park() // something buffered: kept
	if w.bw == nil {
		t.Fatal("park dropped a buffer holding unsent data")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	w.park()
	if w.bw != nil {
		t.Error("an idle writer kept its buffer")
	}
	w.WriteByte('*')
	w.Write([]byte(" 1 EXISTS"))
	w.ReadFrom(strings.NewReader("\r\n"))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "* OK hello\r\n* 1 EXISTS\r\n" {
		t.Errorf("sent %q", got)
	}
}

func TestWriterQuotedEscapes(t *testing.T) {
	for in, want := range map[string]string{
		``:              `""`,
		`plain`:         `"plain"`,
		`say "hi"`:      `"say \"hi\""`,
		`C:\dir\`:       `"C:\\dir\\"`,
		`"\`:            `"\"\\"`,
		"ünïcode \"x\"": "\"ünïcode \\\"x\\\"\"",
	} {
		var out bytes.Buffer
		w := newWriter(&out, true, nil)
		w.quoted(in)
		w.Flush()
		if out.String() != want {
			t.Errorf("quoted(%q) = %s, want %s", in, out.String(), want)
		}
	}
}
