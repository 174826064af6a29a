package pop3

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestPOP3RetrTranscript(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.login(a.Address)
	c.cmd("RETR 2").expectBody("+OK 62 octets",
		"From: bob@example.org", "Subject: second", "", "Line one", "Line two")
	c.cmd("RETR 3").expect("-ERR No such message: there are 2 messages")
}

func TestPOP3DotStuffing(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.addAccount("alice@example.org")
	msg := ".starts with a dot\r\nSubject: dots\r\n\r\n.\r\n..two\r\nmiddle . dot\r\n.\r\nend"
	ts.deliver(a.Address, msg)
	c := ts.login(a.Address)
	// LIST counts the message as stored, before stuffing.
	c.cmd("LIST 1").expect(fmt.Sprintf("+OK 1 %d", len(msg)))
	// Every line starting with "." gets another; a message not ending in
	// CRLF gets one before the terminating ".".
	c.cmd("RETR 1").expectBody(fmt.Sprintf("+OK %d octets", len(msg)),
		"..starts with a dot", "Subject: dots", "", "..", "...two", "middle . dot", "..", "end")
	c.cmd("TOP 1 1").expectBody("+OK Top of message follows",
		"..starts with a dot", "Subject: dots", "", "..")
}

func TestPOP3DotStuffingAcrossReadChunks(t *testing.T) {
	// Lines starting with "." exactly at a chunk boundary of the copy.
	var b bytes.Buffer
	b.WriteString("Subject: chunks\r\n\r\n")
	for b.Len() < 3*copyBufferSize {
		b.WriteString(strings.Repeat("x", 61) + "\r\n.dot\r\n")
	}
	msg := b.String()
	for _, bufSize := range []int{1, 2, 7, 64, copyBufferSize} {
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		if err := writeStuffed(w, strings.NewReader(msg), int64(len(msg)), make([]byte, bufSize)); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		want := strings.ReplaceAll(msg, "\r\n.", "\r\n..") + ".\r\n"
		if out.String() != want {
			t.Fatalf("buffer %d: stuffed output differs", bufSize)
		}
	}
}

func TestPOP3BareLFMessageSizesAgree(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.addAccount("alice@example.org")
	ts.deliver(a.Address, "Subject: unix\n\nline one\nline two\n")
	_, msgs := ts.inbox(a)
	size := msgs[0].Size // what IMAP announces as RFC822.SIZE
	const crlf = "Subject: unix\r\n\r\nline one\r\nline two\r\n"
	if size != int64(len(crlf)) {
		t.Fatalf("stored size %d, want %d", size, len(crlf))
	}
	c := ts.login(a.Address)
	c.cmd("LIST 1").expect(fmt.Sprintf("+OK 1 %d", size))
	c.cmd("STAT").expect(fmt.Sprintf("+OK 1 %d", size))
	// Count the octets RETR sends between its first line and the ".".
	c.send("RETR 1")
	c.expectLine(fmt.Sprintf("+OK %d octets", size))
	var got bytes.Buffer
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == ".\r\n" {
			break
		}
		got.WriteString(line)
	}
	if got.String() != crlf {
		t.Fatalf("RETR sent %q, want %q", got.String(), crlf)
	}
}

func TestPOP3Top(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.addAccount("alice@example.org")
	ts.deliver(a.Address, "From: a@example.org\r\nSubject: top\r\n\r\nb1\r\nb2\r\nb3\r\n")
	ts.deliver(a.Address, "Subject: only a header\r\nX-No-Body: true\r\n")
	c := ts.login(a.Address)
	c.cmd("TOP 1 0").expectBody("+OK Top of message follows", "From: a@example.org", "Subject: top", "")
	c.cmd("TOP 1 2").expectBody("+OK Top of message follows", "From: a@example.org", "Subject: top", "", "b1", "b2")
	c.cmd("TOP 1 99").expectBody("+OK Top of message follows", "From: a@example.org", "Subject: top", "", "b1", "b2", "b3")
	c.cmd("TOP 2 5").expectBody("+OK Top of message follows", "Subject: only a header", "X-No-Body: true")
	c.cmd("TOP 1").expect("-ERR TOP needs a message number and a number of lines")
	c.cmd("TOP 1 x").expect("-ERR Invalid number of lines")
	c.cmd("TOP 1 -1").expect("-ERR Invalid number of lines")
	c.cmd("TOP 9 1").expect("-ERR No such message: there are 2 messages")
}

func TestPOP3RetrMarksSeenTopDoesNot(t *testing.T) {
	ts, a := withMessages(t, nil)
	c := ts.login(a.Address)
	c.cmd("TOP 1 1").body()
	c.cmd("RETR 2").body()
	c.cmd("QUIT").expectPrefix("+OK")
	c.expectClosed()
	eventually(t, "RETR to mark message 2 seen", func() bool {
		_, msgs := ts.inbox(a)
		return msgs[1].HasFlag(`\Seen`)
	})
	if _, msgs := ts.inbox(a); msgs[0].HasFlag(`\Seen`) {
		t.Fatal("TOP marked message 1 seen")
	}
}

func TestPOP3RetrDoesNotMarkSeenWhenDisabled(t *testing.T) {
	ts, a := withMessages(t, func(o *Options) { o.MarkSeen = false })
	c := ts.login(a.Address)
	c.cmd("RETR 1").body()
	c.cmd("QUIT").expectPrefix("+OK")
	c.expectClosed()
	eventually(t, "the session to end", func() bool { return ts.sessions() == 0 })
	if _, msgs := ts.inbox(a); msgs[0].HasFlag(`\Seen`) {
		t.Fatal("RETR marked the message seen with MarkSeen off")
	}
}

func TestPOP3RetrStreamsLargeMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("large message")
	}
	ts := startServer(t, nil)
	a := ts.addAccount("alice@example.org")
	const size = 16 << 20
	line := strings.Repeat("0123456789", 7) + "\r\n"
	var b strings.Builder
	b.WriteString("Subject: big\r\n\r\n")
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	msg := b.String()
	ts.deliver(a.Address, msg)
	// The store indexes the text of new mail in the background; finish
	// that first, so that only the RETR's allocations are measured.
	if _, err := ts.st.IndexPending(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := ts.login(a.Address)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c.send("RETR 1")
	c.expectLine(fmt.Sprintf("+OK %d octets", len(msg)))
	n, err := io.Copy(io.Discard, &untilDot{r: c.r})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if n != int64(len(msg)) {
		t.Fatalf("received %d octets, want %d", n, len(msg))
	}
	// Client and server share the process: what both allocated while
	// 16 MiB went through must stay far below the message size.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
		t.Fatalf("allocated %d bytes while sending a %d-byte message", alloc, len(msg))
	}
}

// untilDot reads a multi-line body up to its terminating line, which it
// consumes but does not return. The test message has no stuffed lines.
type untilDot struct {
	r    *bufio.Reader
	done bool
}

func (u *untilDot) Read(p []byte) (int, error) {
	if u.done {
		return 0, io.EOF
	}
	line, err := u.r.ReadSlice('\n')
	if err != nil && err != bufio.ErrBufferFull {
		return 0, err
	}
	if string(line) == ".\r\n" {
		u.done = true
		return 0, io.EOF
	}
	n := copy(p, line)
	if n < len(line) {
		return 0, fmt.Errorf("read buffer of %d too small", len(p))
	}
	return n, nil
}
